-- Every blocked user identity and device identity and what happens to it.
--
-- Var replay_blocked_identities (default true) decides whether a replay batch carries the
-- identities its source batch had blocked (int_batches__replay_context). Either way
-- mParticle resolves the user from the identities a batch carries
-- (https://docs.mparticle.com/developers/server/json-reference/ , mpid): sent, a blocked
-- login identity it has not stored may create a new profile (an extra MTU,
-- https://docs.mparticle.com/guides/idsync/components/) or match another user's; left
-- out, the batch may resolve to another profile than the original did
-- (https://docs.mparticle.com/guides/data-master/blocked-data-backfill-guide/).
--
-- An identity rides only in the replay batches of its own batch: a batch none of whose
-- events is replayed (one that blocked only identities or attributes) has nothing to carry
-- it, and an identity is never moved to another batch of the user. Skipped, in this order:
-- the batch held no value for it, its user is suppressed, a context fix removed it or put
-- another value in its place (that value is sent, not the blocked one), no event of its
-- batch is replayed, the var is off (so that reason names exactly the identities the var
-- would send). A replay that names the same data plan version may have
-- it blocked again (data_plan_note in replay_events).

{% set fixed_value -%}
    case when blocked.identity_kind = 'user' then fixed_batches.user_identities
        else fixed_batches.device_info end
{%- endset %}
{% set source_value -%}
    case when blocked.identity_kind = 'user' then source_batches.user_identities
        else source_batches.device_info end
{%- endset %}

with blocked as (
    select * from {{ ref('stg_quarantine__blocked_identities') }}
),

contexts as (
    select * from {{ ref('int_batches__replay_context') }}
),

-- the batches after the context fixes, and as they came
fixed_batches as (
    select * from {{ context_fix_chain_output() }}
),

source_batches as (
    select * from {{ ref('stg_quarantine__batches') }}
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
            when not {{ has_identity_value(fixed_value, 'blocked.identity_type') }}
                then 'removed_by_a_context_fix'
            when cast({{ json_member(fixed_value, 'blocked.identity_type') }} as string)
                    <> cast({{ json_member(source_value, 'blocked.identity_type') }} as string)
                then 'changed_by_a_context_fix'
            when replay_counts.replay_events is null then 'no_event_of_the_batch_replayed'
            when not {{ var('replay_blocked_identities') }}
                then 'var replay_blocked_identities is false'
        end as skip_reason
    from blocked
    inner join contexts on blocked.batch_key = contexts.batch_key
    inner join fixed_batches on blocked.batch_key = fixed_batches.batch_key
    inner join source_batches on blocked.batch_key = source_batches.batch_key
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
