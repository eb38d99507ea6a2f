{{ config(enabled=demo_fix_enabled()) }}
-- App 4.2.0 sent "Checkout Complete" as "Chekout Complete"; the data plan blocked it.
-- Rename it so the replay matches the planned event.

with events as (
    select * from {{ fix_input() }}
),

fixed as (
    select
        * replace (
            {{ rename_event('Chekout Complete', 'Checkout Complete') }}
        ),
    from events
)

select * from fixed
