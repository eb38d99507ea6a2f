-- Every event the classification sends, with its Events API JSON, built once before the
-- fix chain (the columns replay_events takes, no more): replay_events takes these rows as they are for the events no fix changed, so
-- that editing a fix rebuilds only the events that fix touches. Its post-hook records the
-- build, so that replay_events is patched only while these rows are the ones it was built from.
{{ config(post_hook="{{ record_relation_build() }}") }}

with classified as (
    select * from {{ ref('int_events__classified') }}
),

contexts as (
    select * from {{ ref('int_batches__replay_context') }}
)

select
    -- the columns replay_events takes from here (not the chain's JSON columns: event_json
    -- holds what is sent)
    classified.replay_key,
    classified.user_key,
    classified.mpid,
    classified.batch_key,
    classified.event_id,
    classified.source_file,
    classified.line_number,
    classified.event_type,
    classified.event_name,
    classified.timestamp_unixtime_ms,
    classified.replay_reason,
    classified.event_age_days,
    {{ replay_event_json('classified') }} as event_json,
    {{ replay_send_context('classified', 'contexts') }} as send_context,
    contexts.data_plan_note,
    contexts.identity_risk
from classified
inner join contexts on classified.batch_key = contexts.batch_key
where classified.skip_reason is null
