-- Every event the data plan blocked is replayed or skipped with a reason: none is missing
-- from blocked_events__outcomes, none is 'missing' there, and the replay set agrees.
with blocked as (
    select batch_key, event_id from {{ ref('stg_quarantine__blocked_event_ids') }}
),

outcomes as (
    select * from {{ ref('blocked_events__outcomes') }}
),

replay as (
    select replay_key from {{ ref('replay_events') }}
)

select 'blocked event without an outcome' as problem, blocked.batch_key || ':' || blocked.event_id as replay_key
from blocked
anti join outcomes on blocked.batch_key = outcomes.batch_id and blocked.event_id = outcomes.event_id
union all
select 'no reason for ' || outcome, replay_key
from outcomes
where outcome = 'missing' or (outcome = 'skipped' and skip_reason is null)
union all
select 'outcome replay but not in replay_events', replay_key
from (select replay_key from outcomes where outcome = 'replay')
anti join replay using (replay_key)
union all
select 'in replay_events without outcome replay', replay_key
from replay
anti join (select replay_key from outcomes where outcome = 'replay') using (replay_key)
