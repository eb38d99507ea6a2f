{{ config(enabled=demo_fix_enabled()) }}
-- "Search" is planned with custom_event_type 'search'; the app sent some as 'other', and
-- the data plan blocked those. Send them with the planned type.

with events as (
    select * from {{ fix_input() }}
),

fixed as (
    select
        * replace (
            {{ set_custom_event_type('search', where="event_name = 'Search' and custom_event_type = 'other'") }}
        ),
    from events
)

select * from fixed
