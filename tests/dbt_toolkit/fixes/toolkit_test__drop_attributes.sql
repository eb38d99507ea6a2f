{{ config(materialized='ephemeral') }}
-- Test-only (not in the fix chain): drop_attributes with a list of names.

with events as (
    select * from {{ ref('int_events__classified') }}
)

select
    * replace (
        {{ drop_attributes(['email', 'debug_info']) }}
    ),
from events
