{{ config(materialized='ephemeral') }}
-- Test-only (not in the fix chain): map_attribute with a mapping, then with an expression.

with events as (
    select * from {{ ref('int_events__classified') }}
),

tiers_mapped as (
    select * replace (
        {{ map_attribute('tier', values={'gold': 'Gold', 'silver': 'Silver', 'none': none}) }}
    ),
    from events
),

seconds_to_ms as (
    select * replace (
        {{ map_attribute('duration', expression='try_cast(value as hugeint) * 1000') }}
    ),
    from tiers_mapped
)

select * from seconds_to_ms
