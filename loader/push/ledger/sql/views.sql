-- The ledger's views: the one definition of each fact that status, the report, the
-- planner and analyses/ read. Every fact is per destination: a replay key acknowledged
-- by one destination is still to send to another.
create or replace view acknowledged_events as
select
    e.replay_key,
    arg_max(e.content_hash, b.settled_at) as content_hash,
    arg_max(b.source_request_id, b.settled_at) as source_request_id,
    arg_max(b.last_run_id, b.settled_at) as run_id,
    max(b.settled_at) as acknowledged_at,
    count(*) as times_acknowledged,
    b.destination,
from batch_events e
join batches b using (source_request_id)
where b.status = 'acknowledged'
group by b.destination, e.replay_key;

create or replace view event_batches as
select
    e.replay_key,
    e.content_hash,
    e.position,
    b.*,
from batch_events e
join batches b using (source_request_id);

create or replace view open_batch_events as
select
    b.source_request_id,
    b.user_key,
    b.context_key,
    b.first_sent_at is not null as was_sent,
    e.position,
    e.replay_key,
    e.content_hash,
    b.destination,
from batches b
join batch_events e using (source_request_id)
where b.status in ('planned', 'in_flight', 'failed');

create or replace view key_history as
select
    e.replay_key,
    arg_max(e.content_hash, b.settled_at) filter (where b.status = 'acknowledged')
        as acknowledged_hash,
    arg_max(e.content_hash, b.settled_at) filter (where b.status = 'rejected')
        as rejected_hash,
    coalesce(bool_or(b.status = 'superseded' and b.first_sent_at is not null), false)
        as sent_then_superseded,
    b.destination,
from batch_events e
join batches b using (source_request_id)
group by b.destination, e.replay_key;

create or replace view event_states as
with ranked as (
    select
        replay_key,
        destination,
        status,
        error,
        source_request_id,
        last_run_id,
        content_hash,
        planned_at,
        row_number() over (
            partition by destination, replay_key
            order by status = 'superseded', planned_at desc, source_request_id desc
        ) as rank,
    from event_batches
)
select
    ranked.replay_key,
    case
        when ranked.status in ('planned', 'in_flight') then 'pending'
        else ranked.status
    end as state,
    ranked.status as batch_status,
    ranked.error,
    ranked.source_request_id,
    ranked.last_run_id as run_id,
    ranked.content_hash,
    ranked.planned_at,
    acked.replay_key is not null as ever_acknowledged,
    acked.content_hash as acknowledged_hash,
    acked.acknowledged_at,
    ranked.destination,
from ranked
left join acknowledged_events as acked using (destination, replay_key)
where ranked.rank = 1;

create or replace view failed_batches as
select
    b.source_request_id,
    b.last_run_id as run_id,
    b.status,
    case
        when b.status = 'rejected' and b.first_sent_at is null then 'loader'
        -- who answers a run: mParticle for the Events API, a direct destination itself
        when b.status = 'rejected' and b.destination = 'events_api' then 'mparticle'
        when b.status = 'rejected' then b.destination
    end as refused_by,
    coalesce(b.error_code, 'other') as code,
    coalesce(b.error_reason, b.error) as reason,
    b.error,
    b.attempts,
    b.last_sent_at,
    count(*) as events,
    b.destination,
from batches b
join event_states s using (source_request_id)
where s.state in ('failed', 'rejected')
group by all;

create or replace view run_throughput as
-- the one measure of throughput: batches accepted over the send phase, from the first
-- attempt's sent_at to the last answer (sent_at plus latency) of the run
select
    run_id,
    count(*) as http_requests,
    count(*) filter (where outcome = 'rate_limited') as rate_limited,
    coalesce(sum(batch_count) filter (where outcome = 'accepted'), 0) as batches_accepted,
    min(sent_at) as first_sent_at,
    max(sent_at + to_milliseconds(coalesce(latency_ms, 0))) as last_answer_at,
    epoch(max(sent_at + to_milliseconds(coalesce(latency_ms, 0)))) - epoch(min(sent_at))
        as send_seconds,
    coalesce(sum(batch_count) filter (where outcome = 'accepted'), 0)
        / nullif(epoch(max(sent_at + to_milliseconds(coalesce(latency_ms, 0))))
            - epoch(min(sent_at)), 0) as batches_per_second,
from requests
group by run_id;

create or replace view failures as
select
    status,
    refused_by,
    code,
    reason,
    count(*) as batches,
    sum(events) as events,
    min(error) as example_error,
    min(source_request_id) as example_source_request_id,
from failed_batches
group by status, refused_by, code, reason;

create or replace view run_counts as
-- what the ledger itself records of each run, counted one way: its batches (those it
-- sent or settled last) and its HTTP attempts. A run killed before it wrote its counters
-- gets them from here.
with accepted as (
    select distinct run_id, unnest(source_request_ids) as source_request_id
    from requests where outcome = 'accepted'
),
mine as (
    select
        b.*,
        a.source_request_id is not null as accepted,
        b.status = 'rejected' and b.first_sent_at is null as refused_locally,
    from batches b
    left join accepted a on a.run_id = b.last_run_id and a.source_request_id = b.source_request_id
),
per_run as (
    select
        last_run_id as run_id,
        coalesce(sum(event_count) filter (where not refused_locally), 0) as events_planned,
        count(*) filter (where not refused_locally) as batches_planned,
        coalesce(sum(event_count) filter (where run_id < last_run_id), 0) as events_resumed,
        coalesce(sum(event_count) filter (where accepted), 0) as events_acknowledged,
        count(*) filter (where accepted) as batches_acknowledged,
        coalesce(sum(event_count) filter (where status = 'failed'), 0) as events_failed,
        count(*) filter (where status = 'failed') as batches_failed,
        coalesce(sum(event_count) filter (where status = 'rejected'), 0) as events_rejected,
        count(*) filter (where status = 'rejected') as batches_rejected,
    from mine
    group by last_run_id
),
attempts as (
    select run_id, count(*) as http_requests, max(sent_at) as last_sent_at
    from requests group by run_id
)
select
    runs.run_id,
    coalesce(p.events_planned, 0) as events_planned,
    coalesce(p.batches_planned, 0) as batches_planned,
    coalesce(p.events_resumed, 0) as events_resumed,
    coalesce(p.events_acknowledged, 0) as events_acknowledged,
    coalesce(p.batches_acknowledged, 0) as batches_acknowledged,
    coalesce(p.events_failed, 0) as events_failed,
    coalesce(p.batches_failed, 0) as batches_failed,
    coalesce(p.events_rejected, 0) as events_rejected,
    coalesce(p.batches_rejected, 0) as batches_rejected,
    coalesce(a.http_requests, 0) as http_requests,
    a.last_sent_at,
from runs
left join per_run p using (run_id)
left join attempts a using (run_id);
