{{ config(materialized='table', enabled=('mixpanel' in (var('direct_destinations', []) or []))) }}
-- The Mixpanel replay set: one row per event to send to Mixpanel's Import Events API, in
-- the columns `loader push --destination mixpanel` reads (the same contract as
-- replay_events: replay_key, user_key, context_key, event_type, timestamp_unixtime_ms,
-- event_json, batch_context, data_plan_note, identity_risk).

select
    replay_key,
    mixpanel_user_key as user_key,
    'mixpanel' as context_key,
    event_type,
    mixpanel_event,
    distinct_id,
    insert_id,
    timestamp_unixtime_ms,
    event_json,
    {{ fix_json_literal({}) }} as batch_context,
    data_plan_note,
    identity_risk
from {{ ref('int_mixpanel__mapped') }}
where skip_reason is null
