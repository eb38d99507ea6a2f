-- The replay set: one row per event to send, with everything the loader needs to build
-- Events API batches. The loader decides nothing about content; this model does.

with fixed as (
    select * from {{ ref('int_events__fixed') }}
),

contexts as (
    select * from {{ ref('int_batches__replay_context') }}
),

fix_changes as (
    select
        replay_key,
        list(fix_name order by fix_position) as fixes_applied,
    from {{ ref('int_events__fix_changes') }}
    group by all
),

to_send as (
    select * from fixed where skip_reason is null
),

assembled as (
    select
        to_send.*,
        json_object(
            'event_type', to_send.event_type,
            'data', json_merge_patch(
                json_merge_patch(to_send.event_data, '{"event_id": null, "custom_attributes": null}'),
                json_object(
                    'event_name', to_send.event_name,
                    'custom_event_type', to_send.custom_event_type,
                    'timestamp_unixtime_ms', to_send.timestamp_unixtime_ms,
                    'custom_attributes', {{ marked_custom_attributes('to_send.custom_attributes') }}
                )
            )
        ) as event_json,
        case
            when to_send.user_attributes is null then contexts.batch_context
            else json_merge_patch(
                contexts.batch_context, json_object('user_attributes', to_send.user_attributes)
            )
        end as send_context,
        contexts.data_plan_note,
        contexts.identity_risk,
        coalesce(fix_changes.fixes_applied, []) as fixes_applied,
    from to_send
    inner join contexts on to_send.batch_key = contexts.batch_key
    left join fix_changes on to_send.replay_key = fix_changes.replay_key
)

select
    replay_key,
    user_key,
    md5(send_context::varchar) as context_key,
    mpid,
    event_type,
    event_name,
    timestamp_unixtime_ms,
    make_timestamp(timestamp_unixtime_ms * 1000) as event_time,
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
    line_number,
from assembled
