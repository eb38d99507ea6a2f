-- App 4.2.0 sent "Checkout Complete" as "Chekout Complete"; the data plan blocked it.
-- Rename it so the replay matches the planned event.

with events as (
    select * from {{ fix_input() }}
),

fixed as (
    select
        * replace (
            case
                when event_name = 'Chekout Complete' then 'Checkout Complete'
                else event_name
            end as event_name
        ),
    from events
)

select * from fixed
