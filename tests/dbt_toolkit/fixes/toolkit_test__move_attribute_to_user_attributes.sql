{{ config(materialized='ephemeral') }}
-- Test-only (not in the fix chain): move_attribute_to_user_attributes.

with events as (
    select * from {{ ref('int_events__classified') }}
)

select
    * replace (
        {{ move_attribute_to_user_attributes('loyalty_tier') }}
    ),
from events
