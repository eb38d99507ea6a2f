-- The destination as a column. Earlier releases recorded a direct destination's events
-- under `<destination>:<replay_key>` (Amplitude's as `amplitude:<replay_key>`) and told
-- the destinations apart by that prefix; now each batch names its destination (its
-- run's) and replay keys are stored as they are in the replay set.
-- (DuckDB alters a table with an index only before updating it in the same transaction)
alter table batches add column if not exists destination varchar;
update runs set destination = 'events_api' where destination is null;
update batches set destination = r.destination
from runs r
where r.run_id = batches.run_id and batches.destination is null;
update batch_events set replay_key = substr(replay_key, length(b.destination) + 2)
from batches b
where b.source_request_id = batch_events.source_request_id
    and b.destination <> 'events_api'
    and starts_with(batch_events.replay_key, b.destination || ':');
-- Those releases also superseded every destination's open batches whose keys were not in
-- the replay set a push planned, so a push to one destination settled the other's open
-- batches as `superseded`. Such a batch (superseded while a run to another destination
-- planned: the latest run started before it was settled) is open again, as it was
-- (`failed` when sent, else `planned`), unless a later batch of its own destination holds
-- one of its events. Its message was the supersede's; the next push sends it again.
update batches set
    status = case when batches.first_sent_at is null then 'planned' else 'failed' end,
    error = null,
    error_code = null,
    error_reason = null,
    settled_at = null
from (
    select b.source_request_id
    from batches b
    asof join runs r on b.settled_at >= r.started_at
    where b.status = 'superseded' and r.destination <> b.destination
        and not exists (
            select 1
            from batch_events mine
            join batch_events later on later.replay_key = mine.replay_key
            join batches other on other.source_request_id = later.source_request_id
            where mine.source_request_id = b.source_request_id
                and other.destination = b.destination
                and other.source_request_id <> b.source_request_id
                and other.planned_at >= b.settled_at
        )
) wrongly
where batches.source_request_id = wrongly.source_request_id;
