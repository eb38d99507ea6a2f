{{ config(materialized='table', enabled=('mixpanel' in (var('direct_destinations', []) or []))) }}
-- Replay events not sent to Mixpanel, with the reason: with mixpanel_events, the whole
-- replay set.

select
    replay_key,
    event_type,
    mixpanel_event,
    timestamp_unixtime_ms,
    skip_reason
from {{ ref('int_mixpanel__mapped') }}
where skip_reason is not null
