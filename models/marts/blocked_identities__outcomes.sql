-- Every blocked user identity and device identity and what happens to it.
--
-- A replay batch keeps its source batch's user_identities and device_info whole, the
-- "blocked" ones too: dropping a login identity can make mParticle mint a new MPID (a
-- second profile, an extra MTU). So a blocked identity is replayed exactly when an event
-- of its batch is: it goes in each of those replay batches. It is skipped when no event of
-- its batch is replayed (a batch that blocked only identities or attributes), when the
-- batch held no value for it, or when a context fix removed it. A replay that names the
-- same data plan version may have it blocked again (data_plan_note in replay_events).

with blocked as (
    select * from {{ ref('stg_quarantine__blocked_identities') }}
),

contexts as (
    select * from {{ ref('int_batches__replay_context') }}
),

-- users on the suppression list, as int_events__classified finds them
suppressed_users as (
    select distinct user_key
    from contexts
    where suppressed_by is not null
),

replay_counts as (
    select
        batch_id,
        count(*) as replay_events
    from {{ ref('replay_events') }}
    group by all
),

decided as (
    select
        blocked.batch_key as batch_id,
        contexts.user_key,
        blocked.identity_kind,
        blocked.identity_type,
        coalesce(replay_counts.replay_events, 0) as replay_events,
        case
            when not blocked.has_value then 'no_value_in_batch'
            when suppressed_users.user_key is not null then 'suppressed_user'
            when blocked.identity_kind = 'user' and not {{ has_identity_value(
                json_at('contexts.batch_context', '$.user_identities'), 'blocked.identity_type') }}
                then 'removed_by_a_context_fix'
            when blocked.identity_kind = 'device' and not {{ has_identity_value(
                json_at('contexts.batch_context', '$.device_info'), 'blocked.identity_type') }}
                then 'removed_by_a_context_fix'
            when replay_counts.replay_events is null then 'no_event_of_the_batch_replayed'
        end as skip_reason
    from blocked
    inner join contexts on blocked.batch_key = contexts.batch_key
    left join suppressed_users on contexts.user_key = suppressed_users.user_key
    left join replay_counts on blocked.batch_key = replay_counts.batch_id
)

select
    batch_id,
    user_key,
    identity_kind,
    identity_type,
    case when skip_reason is null then 'replay' else 'skipped' end as outcome,
    skip_reason,
    replay_events
from decided
