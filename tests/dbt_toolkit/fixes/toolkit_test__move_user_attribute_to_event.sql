{{ config(materialized='ephemeral') }}
-- Test-only (not in the fix chain): move_user_attribute_to_event, under another name.

with events as (
    select * from {{ ref('int_events__classified') }}
)

select
    * replace (
        {{ move_user_attribute_to_event('loyalty_tier', to='tier_at_event') }}
    ),
from events
