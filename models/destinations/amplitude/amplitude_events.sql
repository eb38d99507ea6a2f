{{ config(materialized='table') }}
-- The Amplitude replay set: one row per event to send to Amplitude's Batch Event Upload
-- API, in the columns `loader push --destination amplitude` reads (the same contract as
-- replay_events: replay_key, user_key, context_key, event_type, timestamp_unixtime_ms,
-- event_json, batch_context, data_plan_note, identity_risk).

select
    replay_key,
    amplitude_user_key as user_key,
    'amplitude' as context_key,
    event_type,
    amplitude_event_type,
    user_id,
    device_id,
    insert_id,
    timestamp_unixtime_ms,
    event_json,
    {{ fix_json_literal({}) }} as batch_context,
    data_plan_note,
    identity_risk
from {{ ref('int_amplitude__mapped') }}
where skip_reason is null
