-- Blocked events that never reached mParticle: skipped (by a replay policy or a fix, with
-- its reason), or meant to be replayed but not acknowledged yet (failed, rejected with
-- mParticle's message, or not sent). Events that only lost attributes were delivered
-- without them; they are listed only when opted in to replay.
-- First a count per reason, then the events.
--
--   loader sql analyses/blocked_never_replayed.sql

create or replace temp view never_replayed as
select
    outcomes.replay_key,
    outcomes.blocked_kind,
    outcomes.event_type,
    outcomes.event_name,
    make_timestamp(outcomes.timestamp_unixtime_ms * 1000) as event_time,
    case
        when outcomes.outcome = 'skipped' then 'skipped: ' || outcomes.skip_reason
        when states.state in ('failed', 'rejected') then states.state
        else 'not sent yet'
    end as why,
    case when states.state in ('failed', 'rejected') then states.error end as error,
from blocked_events__outcomes as outcomes
left join (  -- each event's latest batch to the Events API
    select * from ledger.event_states where destination = 'events_api'
) as states using (replay_key)
where (outcomes.blocked_kind = 'blocked_event' or outcomes.outcome = 'replay')
    and outcomes.replay_key not in (
        select replay_key from ledger.acknowledged_events where destination = 'events_api'
    );

select why, count(*) as events from never_replayed group by all order by events desc, why;

select * from never_replayed order by why, event_time, replay_key;
