-- Users whose blocked user attributes can be replayed: what would be sent, and whether it
-- is (var replay_blocked_user_attributes, and an event of theirs to carry it). A replayed
-- value overwrites the profile's current one, which may be newer than the blocked value.

with attributes as (
    select * from {{ ref('int_users__blocked_user_attributes') }}
),

identities as (
    select distinct user_key, identity_risk from {{ ref('int_batches__replay_context') }}
),

replay_counts as (
    select
        user_key,
        count(*) as events_to_replay
    from {{ ref('replay_events') }}
    group by all
),

decided as (
    select
        attributes.user_key,
        identities.identity_risk,
        attributes.attribute_names,
        attributes.attribute_count,
        attributes.user_attributes,
        {{ timestamp_from_unix_ms('attributes.latest_value_time_ms') }} as latest_value_time,
        coalesce(replay_counts.events_to_replay, 0) as events_to_replay,
        case
            when not {{ var('replay_blocked_user_attributes') }}
                then 'var replay_blocked_user_attributes is false'
            when replay_counts.events_to_replay is null
                then 'no event of this user is replayed to carry them'
        end as not_sent_reason
    from attributes
    inner join identities on attributes.user_key = identities.user_key
    left join replay_counts on attributes.user_key = replay_counts.user_key
),

flagged as (
    select
        *,
        not_sent_reason is null as will_send,
        case when not_sent_reason is null then
            {{ sql_text("overwrites the profile's current value of ") }} || {{ list_join('attribute_names', "', '") }}
            || ', which may be newer than the blocked value (from '
            || coalesce({{ utc_minute_text('latest_value_time') }}, 'an unknown time')
            || ')'
        end as warning
    from decided
)

select * from flagged
