-- Events that were delivered but lost some attributes to the data plan. Replaying one
-- re-sends the whole event (a downstream duplicate), so they replay only when var
-- replay_attribute_only_events is true.

with classified as (
    select * from {{ ref('int_events__classified') }}
)

select
    replay_key,
    user_key,
    batch_key as batch_id,
    event_id,
    event_type,
    event_name,
    timestamp_unixtime_ms,
    blocked_attributes,
    {{ list_len("blocked_attributes") }} as blocked_attribute_count,
    skip_reason is null as will_replay,
    skip_reason
from classified
where not is_blocked_event
