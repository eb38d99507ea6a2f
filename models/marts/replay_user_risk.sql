-- One row per user with a blocked event: how mParticle will find their profile, and how
-- many of their events replay. A high-risk user (device ids only, or no identity at all)
-- may land on a new profile: an extra MTU on the bill, and their data on the wrong user.

with contexts as (
    select * from {{ ref('int_batches__replay_context') }}
),

fixed as (
    select * from {{ ref('int_events__fixed') }}
),

users as (
    select
        user_key,
        identity_class,
        identity_risk,
        any_value(mpid) as mpid,
        {{ list_union_agg('login_identity_types') }} as login_identity_types,
        {{ list_union_agg('device_id_types') }} as device_id_types,
        count(*) as quarantine_batches
    from contexts
    group by all
),

event_counts as (
    select
        user_key,
        count(*) as events_affected,
        count(*) filter (where skip_reason = 'high_identity_risk') as events_excluded_for_risk,
        -- the events of replay_events: the fixed ones without a skip_reason
        count(*) filter (where skip_reason is null) as events_to_replay
    from fixed
    group by all
),

joined as (
    select
        users.user_key,
        users.identity_class,
        users.identity_risk,
        users.mpid,
        users.login_identity_types,
        users.device_id_types,
        users.quarantine_batches,
        event_counts.events_affected,
        event_counts.events_to_replay,
        event_counts.events_excluded_for_risk
    from users
    inner join event_counts on users.user_key = event_counts.user_key
)

select * from joined
