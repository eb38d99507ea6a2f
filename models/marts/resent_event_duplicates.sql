-- Events the replay re-sends whole although they were delivered before, without some
-- attributes (var replay_attribute_only_events): downstream then holds two copies. One
-- row per such replay event with what a downstream tool needs to find and delete the
-- earlier, incomplete copy. Empty when replay_attribute_only_events is false.

with replay as (
    select * from {{ ref('replay_events') }}
    where replay_reason = 'blocked_attributes'
),

classified as (
    select * from {{ ref('int_events__classified') }}
)

select
    replay.replay_key,
    replay.mpid,
    replay.user_key,
    {{ json_at('replay.batch_context', '$.user_identities') }} as user_identities,
    classified.event_type,
    classified.custom_event_type,
    classified.event_name as original_event_name,
    replay.event_name as replayed_event_name,
    replay.timestamp_unixtime_ms as original_timestamp_unixtime_ms,
    replay.event_time as original_event_time,
    {{ json_string('classified.event_data', '$.source_message_id') }} as source_message_id,
    replay.event_id,
    replay.batch_id,
    classified.blocked_attributes
from replay
inner join classified on replay.replay_key = classified.replay_key
