{{ config(materialized='ephemeral') }}
-- Test-only (not in the fix chain): rename_attribute with a name holding '/', '~', '"' and
-- a space, limited by a predicate.

with events as (
    select * from {{ ref('int_events__classified') }}
)

select
    * replace (
        {{ rename_attribute('old/name ~"1"', 'new name', where="event_name is distinct from 'Keep'") }}
    ),
from events
