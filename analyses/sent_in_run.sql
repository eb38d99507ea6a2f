-- What was sent in a run: every event of every batch that run got acknowledged (HTTP 2xx),
-- with the batch's source_request_id (mParticle's de-duplication key) and whether the
-- event in the replay set is still what was sent.
--
--   loader sql analyses/sent_in_run.sql --set run_id=2
--
-- Default: the latest run that sent something (a push with nothing left to send is
-- skipped). The first result says which run and why; a run_id the ledger does not hold
-- is an error that lists the runs it does.

set variable sent_in_run__run = (
    select case
        when getvariable('run_id') is null
            then (select max(last_run_id) from ledger.batches where status = 'acknowledged')
        when try_cast(getvariable('run_id') as integer) in (select run_id from ledger.runs)
            then try_cast(getvariable('run_id') as integer)
        else error(
            'run_id ' || getvariable('run_id') || ': no such run in the ledger (its runs: '
            || coalesce(
                (select string_agg(run_id::varchar, ', ' order by run_id) from ledger.runs),
                'none'
            )
            || ')'
        )
    end
);

select
    getvariable('sent_in_run__run') as run_id,
    case
        when getvariable('run_id') is not null then 'given with --set run_id'
        when getvariable('sent_in_run__run') is null then 'no run has sent anything yet'
        else 'the latest run that sent something'
    end as chosen;

select
    batches.last_run_id as run_id,
    batches.settled_at as acknowledged_at,
    batches.destination,
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
-- what the Events API was sent is replay_events' (a direct destination's, its own model's)
left join replay_events as replay
    on replay.replay_key = batch_events.replay_key and batches.destination = 'events_api'
where batches.status = 'acknowledged'
    and batches.last_run_id = getvariable('sent_in_run__run')
order by batches.settled_at, batches.source_request_id, batch_events.position
