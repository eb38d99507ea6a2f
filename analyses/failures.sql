-- What failed and why. First the reasons (mParticle's message for a 400; the last error for
-- a batch the run gave up on), then every event not acknowledged because of them.
-- Failed batches are sent again by the next `loader push` (same source_request_id);
-- rejected ones (HTTP 400) only once a fix changes their content.
--
--   loader sql analyses/failures.sql

select
    status,
    error,
    count(*) as batches,
    sum(event_count) as events,
    min(source_request_id) as example_source_request_id,
from ledger.batches
where status in ('failed', 'rejected')
group by all
order by events desc, error;

select
    batches.status,
    batches.error,
    batches.attempts,
    batches.last_sent_at,
    batches.source_request_id,
    batch_events.replay_key,
    replay.user_key,
    replay.event_type,
    replay.event_name,
    replay.event_time,
from ledger.batches as batches
inner join ledger.batch_events as batch_events using (source_request_id)
left join replay_events as replay using (replay_key)
where batches.status in ('failed', 'rejected')
    and batch_events.replay_key not in (select replay_key from ledger.acknowledged_events)
order by batches.status, batches.error, batches.source_request_id, batch_events.position;
