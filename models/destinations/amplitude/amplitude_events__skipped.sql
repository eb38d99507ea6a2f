{{ config(materialized='table') }}
-- Replay events Amplitude would refuse, with the reason: with amplitude_events, the whole
-- replay set (a test checks that nothing is lost between them).

select
    replay_key,
    event_type,
    amplitude_event_type,
    timestamp_unixtime_ms,
    skip_reason
from {{ ref('int_amplitude__mapped') }}
where skip_reason is not null
