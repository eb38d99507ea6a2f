-- What each integration of var integrations will do with each replay event, by the facts
-- of seed integration_limits (model replay_integrations), at the event's expected send time
-- (model replay_send_order): one row per (replay event, integration).
--   too_old_at_send       older at its expected send than the integration's known limit
--   dropped_as_duplicate  an attribute-only replay whose dedup key is its original's, sent
--                         within the window: its blocked attributes will not land there
--   duplicated            an attribute-only replay the integration keeps beside its
--                         original: no dedup, a key a fix changed, or past the window
--   lands                 a blocked event, never delivered, within what the integration takes
--   unknown               a fact the verdict needs is unknown; reason says which
-- An age is accepted when it is within max_event_age_days, or when that is unknown but a
-- page says the integration takes historical events (historical_events_accepted).

with replay as (
    select
        replay_key, user_key, context_key, event_name, event_id, timestamp_unixtime_ms,
        replay_reason
    from {{ ref('replay_events') }}
),

send_times as (
    select user_key, context_key, expected_send_at_ms from {{ ref('replay_send_order') }}
),

integrations as (
    select * from {{ ref('replay_integrations') }}
),

-- attribute-only replays: the copy mParticle forwarded before (when mParticle received its
-- batch, else at the event's time) and the replayed copy, in the fields a dedup key takes
copies as (
    select
        original.replay_key,
        original.event_name as original_event_name,
        original.timestamp_unixtime_ms as original_timestamp_ms,
        original.event_id as original_event_id,
        {{ json_text('original.event_data', '$.session_start_unixtime_ms') }} as original_session_start,
        {{ json_text('replayed.event_data', '$.session_start_unixtime_ms') }} as replayed_session_start,
        coalesce(batches.batch_timestamp_ms, original.timestamp_unixtime_ms) as original_sent_ms,
        {{ list_join('original.blocked_attributes', "', '") }} as blocked_attributes
    from {{ ref('int_events__classified') }} as original
    inner join {{ ref('int_events__fixed') }} as replayed
        on original.replay_key = replayed.replay_key
    left join {{ ref('stg_quarantine__batches') }} as batches
        on original.batch_key = batches.batch_key
    where not original.is_blocked_event
),

-- the fixes that changed a field a dedup key may take, by replay event
key_fixes as (
    select
        replay_key,
        {{ list_join(list_agg('fix_name', 'fix_position'), "', '") }} as fix_names
    from {{ ref('int_events__fix_changes') }}
    where {{ list_len(list_where('changed_columns', 'c',
        "c in ('event_name', 'timestamp_unixtime_ms', 'event_id', 'event_data')")) }} > 0
    group by replay_key
),

facts as (
    select
        replay.replay_key,
        replay.replay_reason,
        integrations.integration,
        integrations.position,
        integrations.source_url is not null as integration_known,
        integrations.max_event_age_days,
        integrations.historical_events_accepted,
        integrations.dedup_key,
        integrations.dedup_window_days,
        integrations.bad_event_fails_request,
        integrations.source_url,
        integrations.historical_events_source_url,
        integrations.dedup_key_source_url,
        integrations.dedup_window_source_url,
        send_times.expected_send_at_ms,
        send_times.expected_send_at_ms - replay.timestamp_unixtime_ms as age_at_send_ms,
        send_times.expected_send_at_ms - copies.original_sent_ms as after_original_ms,
        copies.replay_key is not null and replay.replay_reason = 'blocked_attributes' as is_copy,
        copies.blocked_attributes,
        key_fixes.fix_names as key_fix_names,
        concat_ws(', ',
            case when integrations.dedup_key like '%event_name%'
                and replay.event_name is distinct from copies.original_event_name
                then 'event name' end,
            case when integrations.dedup_key like '%event_timestamp%'
                and replay.timestamp_unixtime_ms is distinct from copies.original_timestamp_ms
                then 'timestamp' end,
            case when integrations.dedup_key like '%session_start%'
                and copies.replayed_session_start is distinct from copies.original_session_start
                then 'session start' end,
            case when integrations.dedup_key like '%event_id%'
                and replay.event_id is distinct from copies.original_event_id
                then 'event id' end
        ) as changed_key_fields,
        case
            when integrations.max_event_age_days is not null
                then send_times.expected_send_at_ms - replay.timestamp_unixtime_ms
                    <= cast(integrations.max_event_age_days as bigint) * {{ day_ms() }}
            when integrations.historical_events_accepted then true
        end as age_accepted
    from replay
    cross join integrations
    inner join send_times
        on replay.user_key = send_times.user_key and replay.context_key = send_times.context_key
    left join copies on replay.replay_key = copies.replay_key
    left join key_fixes on replay.replay_key = key_fixes.replay_key
),

worded as (
    select
        *,
        changed_key_fields <> '' as key_changed,
        concat(cast(round(age_at_send_ms / 86400000.0, 1) as string), ' days old') as age_text,
        concat(cast(round(after_original_ms / 86400000.0, 1) as string), ' days') as after_text,
        case
            when max_event_age_days is not null
                then concat(integration, ' takes events up to ',
                    cast(max_event_age_days as string), ' days old')
            else concat(integration, ' takes historical events (no age limit stated)')
        end as age_rule_text
    from facts
),

judged as (
    select
        *,
        case
            when not integration_known then 'unknown'
            when age_accepted = false then 'too_old_at_send'
            when is_copy and dedup_key is null then 'unknown'
            when is_copy and dedup_key <> 'none' and not key_changed and dedup_window_days is null
                then 'unknown'
            when is_copy and dedup_key <> 'none' and not key_changed
                and after_original_ms <= cast(dedup_window_days as bigint) * {{ day_ms() }}
                then 'dropped_as_duplicate'
            when age_accepted is null then 'unknown'
            when is_copy then 'duplicated'
            else 'lands'
        end as verdict
    from worded
)

select
    replay_key,
    integration,
    verdict,
    case
        when not integration_known
            then concat(integration, ' is not in seeds/integration_limits.csv')
        when verdict = 'too_old_at_send'
            then concat(age_rule_text, '; this event is ', age_text, ' at its expected send (',
                {{ duration_text('age_at_send_ms - cast(max_event_age_days as bigint) * ' ~ day_ms()) }},
                ' past the limit)',
                case when bad_event_fails_request
                    then ', and one too-old event fails the whole request it is in' else '' end)
        when is_copy and dedup_key is null
            then concat('no public page states the key ', integration,
                ' deduplicates events forwarded by mParticle on, so whether this copy of an ',
                'event delivered before is dropped or kept twice is unknown')
        when verdict = 'unknown' and is_copy and dedup_key <> 'none' and not key_changed
                and dedup_window_days is null
            then concat('the copy has its original''s ', dedup_key, ', but how long ',
                integration, ' drops a repeated key is unknown')
        when verdict = 'dropped_as_duplicate'
            then concat(integration, ' drops a repeated ', dedup_key, ' within ',
                cast(dedup_window_days as string), ' days; this copy has its original''s and is sent ',
                after_text, ' after it, so its blocked attributes (', blocked_attributes,
                ') will not land there')
        else concat(
            case
                when is_copy and dedup_key = 'none'
                    then concat(integration, ' does not deduplicate events: it keeps this copy ',
                        'beside the one delivered before')
                when is_copy and key_changed
                    then concat(coalesce(concat('fix ', key_fix_names), 'the replay'), ' changed the ',
                        changed_key_fields, ', so the copy''s ', dedup_key, ' differs from its ',
                        'original''s and ', integration, ' keeps both')
                when is_copy
                    then concat('sent ', after_text, ' after its original, past ', integration, '''s ',
                        cast(dedup_window_days as string), '-day window for a repeated ', dedup_key,
                        ': it keeps both copies')
                when verdict = 'unknown'
                    then concat('no public page states the oldest event ', integration,
                        ' takes; this event is ', age_text, ' at its expected send')
                else concat(age_rule_text, '; this event is ', age_text, ' at its expected send')
            end,
            case
                when verdict = 'unknown' and is_copy
                    then concat('; but no public page states the oldest event ', integration,
                        ' takes, and this one is ', age_text, ' at its expected send')
                when is_copy then concat('; ', age_rule_text, ' and this one is ', age_text)
                else ''
            end)
    end as reason,
    case
        when not integration_known then null
        when verdict = 'too_old_at_send' and max_event_age_days is not null then source_url
        when is_copy and verdict = 'dropped_as_duplicate' then dedup_key_source_url
        when is_copy and dedup_key is not null and not key_changed and dedup_key <> 'none'
            then coalesce(dedup_window_source_url, dedup_key_source_url)
        when is_copy and dedup_key is not null then dedup_key_source_url
        when max_event_age_days is not null then source_url
        when historical_events_accepted then historical_events_source_url
        else source_url
    end as source_url,
    {{ timestamp_from_unix_ms('expected_send_at_ms') }} as expected_send_at,
    expected_send_at_ms,
    replay_reason,
    position as integration_position
from judged
