-- The replay set: one row per event to send, with everything the loader needs to build
-- Events API batches. The loader decides nothing about content; this model does.
-- On Spark, var replay_set_path also writes it as Parquet (macros/spark_quarantine_source.sql).
-- On DuckDB, an edit of the fix chain patches the table instead of rebuilding it
-- (materialization replay_set, macros/replay_set.sql).
{{ config(
    materialized=('replay_set' if target.type == 'duckdb' else 'table'),
    post_hook="{{ replay_set_parquet() }}",
) }}

with fixed as (
    select * from {{ ref('int_events__fixed') }}
),

contexts as (
    select * from {{ ref('int_batches__replay_context') }}
),

fix_changes as (
    select
        replay_key,
        {{ list_agg('fix_name', 'fix_position') }} as fixes_applied
    from {{ ref('int_events__fix_changes') }}
    group by all
),

assembled_before_fixes as (
    select * from {{ ref('int_events__assembled') }}
),

to_send as (
    select * from fixed where skip_reason is null
),

-- the events no fix changed: as assembled before the fix chain (unchanged, so still to send)
unchanged as (
    select
        assembled_before_fixes.*,
        {{ empty_text_list() }} as fixes_applied
    from assembled_before_fixes
    anti join fix_changes on assembled_before_fixes.replay_key = fix_changes.replay_key
),

-- the events a fix changed: their JSON built again from the fixed columns
changed as (
    select
        to_send.*,
        {{ replay_event_json('to_send') }} as event_json,
        {{ replay_send_context('to_send', 'contexts') }} as send_context,
        contexts.data_plan_note,
        contexts.identity_risk,
        fix_changes.fixes_applied
    from to_send
    inner join fix_changes on to_send.replay_key = fix_changes.replay_key
    inner join contexts on to_send.batch_key = contexts.batch_key
),

{%- set assembled_columns = [
    'replay_key', 'user_key', 'send_context', 'mpid', 'event_type', 'event_name',
    'timestamp_unixtime_ms', 'event_json', 'replay_reason', 'event_age_days', 'data_plan_note',
    'identity_risk', 'fixes_applied', 'batch_key', 'event_id', 'source_file', 'line_number',
] %}

assembled as (
    select {{ assembled_columns | join(', ') }} from unchanged
    union all
    select {{ assembled_columns | join(', ') }} from changed
)

select
    replay_key,
    user_key,
    md5(cast(send_context as string)) as context_key,
    mpid,
    event_type,
    event_name,
    timestamp_unixtime_ms,
    {{ timestamp_from_unix_ms('timestamp_unixtime_ms') }} as event_time,
    event_json,
    send_context as batch_context,
    replay_reason,
    event_age_days,
    data_plan_note,
    identity_risk,
    fixes_applied,
    batch_key as batch_id,
    event_id,
    source_file,
    line_number
from assembled
