-- The deadline-first send order of the replay set: one row per batch group (a user's events
-- of one batch-level context, as `loader push` packs them into Events API batches), first
-- the users whose events are closest to the strictest age deadline still ahead among the
-- integrations of var integrations, then the users with no such deadline; ties by
-- user_key, then context_key (a stable order). expected_send_at_ms counts one batch per
-- group at var expected_send_rate_batches_per_s from the build's reference time (macros
-- send_order.sql); a group over 128 KB is more than one batch, so it is a lower bound.

with replay as (
    select user_key, context_key, timestamp_unixtime_ms from {{ ref('replay_events') }}
),

limits as (
    select integration, max_event_age_days
    from {{ ref('replay_integrations') }}
    where max_event_age_days is not null
),

-- per user, the earliest deadline not yet passed at the reference time, over every event
-- and every integration with a known limit
user_deadlines as (
    select
        replay.user_key,
        min({{ send_deadline_ms('replay.timestamp_unixtime_ms', 'limits.max_event_age_days') }})
            as user_deadline_ms
    from replay
    cross join limits
    where {{ send_deadline_ms('replay.timestamp_unixtime_ms', 'limits.max_event_age_days') }}
        >= {{ reference_time_ms() }}
    group by replay.user_key
),

groups as (
    select user_key, context_key, count(*) as events
    from replay
    group by user_key, context_key
),

ordered as (
    select
        groups.user_key,
        groups.context_key,
        groups.events,
        user_deadlines.user_deadline_ms,
        row_number() over (
            order by
                case when user_deadlines.user_deadline_ms is null then 1 else 0 end,
                user_deadlines.user_deadline_ms,
                groups.user_key,
                groups.context_key
        ) as send_position
    from groups
    left join user_deadlines on groups.user_key = user_deadlines.user_key
)

select
    user_key,
    context_key,
    events,
    user_deadline_ms,
    send_position,
    {{ expected_send_at_ms('send_position') }} as expected_send_at_ms,
    {{ timestamp_from_unix_ms(expected_send_at_ms('send_position')) }} as expected_send_at
from ordered
