{{ config(enabled=demo_fix_enabled()) }}
-- "promo_banner_click" was never planned and nobody downstream uses it: do not replay it.
-- The events stay in the chain, skipped with this fix's reason.

with events as (
    select * from {{ fix_input() }}
),

fixed as (
    select
        * replace (
            {{ skip_events("event_name = 'promo_banner_click'", 'unplanned event, not wanted downstream') }}
        ),
    from events
)

select * from fixed
