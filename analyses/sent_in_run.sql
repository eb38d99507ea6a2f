-- What was sent in a run: every event of every batch that run got acknowledged (HTTP 2xx),
-- with the batch's source_request_id (mParticle's de-duplication key) and whether the
-- event in the replay set is still what was sent.
--
--   loader sql analyses/sent_in_run.sql --set run_id=2      (default: the latest run)

with chosen as (
    select coalesce(
        try_cast(getvariable('run_id') as integer),
        (select max(run_id) from ledger.runs)
    ) as run_id
)

select
    batches.last_run_id as run_id,
    batches.settled_at as acknowledged_at,
    batches.source_request_id,
    batches.user_key,
    batch_events.position,
    batch_events.replay_key,
    replay.event_type,
    replay.event_name,
    replay.event_time,
    case
        when replay.replay_key is null then 'no longer in the replay set'
        when batch_events.content_hash
            = md5(replay.batch_context::varchar || chr(10) || replay.event_json::varchar)
            then 'as sent'
        else 'changed since'
    end as replay_set_now,
from ledger.batches as batches
inner join ledger.batch_events as batch_events using (source_request_id)
left join replay_events as replay using (replay_key)
where batches.status = 'acknowledged'
    and batches.last_run_id = (select run_id from chosen)
order by batches.settled_at, batches.source_request_id, batch_events.position
