-- What failed and why. First the reasons, grouped by a stable code and reason (the code
-- of mParticle's message for a 400, of the local check's message for a batch refused
-- before sending, of the last error for a batch the run gave up on), with who refused
-- (refused_by: loader or mparticle) and one full message; then every event not
-- acknowledged because of them, with its batch's full message. Only
-- failures that still matter: an event sent again since (after a fix) counts where its
-- latest batch stands. Both read the ledger's views (`failures`, `failed_batches`), as
-- `loader status` and `loader report` do.
-- Failed batches are sent again by the next `loader push` (same source_request_id);
-- rejected ones (HTTP 400) only once a fix changes their content.
--
--   loader sql analyses/failures.sql

select
    status,
    refused_by,
    code,
    reason,
    batches,
    events,
    example_error,
    example_source_request_id,
from ledger.failures
order by events desc, code, reason;

select
    failed.status,
    failed.refused_by,
    failed.code,
    failed.reason,
    failed.error,
    failed.attempts,
    failed.last_sent_at,
    failed.source_request_id,
    states.replay_key,
    replay.user_key,
    replay.event_type,
    replay.event_name,
    replay.event_time,
from ledger.failed_batches as failed
inner join ledger.event_states as states using (source_request_id, destination)
inner join ledger.batch_events as batch_events using (source_request_id, replay_key)
left join replay_events as replay on replay.replay_key = states.replay_key
order by failed.status, failed.code, failed.source_request_id, batch_events.position;
