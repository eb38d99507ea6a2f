-- Every identity the data plan blocked (user or device) has an outcome: replayed with the
-- events of its batch, or skipped with a reason.
with blocked as (
    select batch_key, identity_kind, identity_type
    from {{ ref('stg_quarantine__blocked_identities') }}
),

outcomes as (
    select * from {{ ref('blocked_identities__outcomes') }}
)

select 'blocked identity without an outcome' as problem, blocked.batch_key as batch_id,
    blocked.identity_type
from blocked
anti join outcomes on blocked.batch_key = outcomes.batch_id
    and blocked.identity_kind = outcomes.identity_kind
    and blocked.identity_type = outcomes.identity_type
union all
select 'no reason for a skipped identity', batch_id, identity_type
from outcomes
where outcome = 'skipped' and skip_reason is null
union all
select 'replayed identity without a replay event', batch_id, identity_type
from outcomes
where outcome = 'replay' and replay_events = 0
