-- Every event that lost something to the data plan (the whole event or some attributes),
-- with its replay decision. This is where the fix chain starts; its post-hook records the
-- build, as each fix's does (macros/fix_change_log.sql).
{{ config(post_hook="{{ record_relation_build() }}") }}

with events as (
    select * from {{ ref('stg_quarantine__events') }}
),

batches as (
    select * from {{ ref('stg_quarantine__batches') }}
),

contexts as (
    select * from {{ ref('int_batches__replay_context') }}
),

-- users any of whose batches matches the suppression list: all their events are skipped
suppressed_users as (
    select
        user_key,
        min(suppressed_by) as suppressed_by
    from contexts
    where suppressed_by is not null
    group by user_key
),

blocked_ids as (
    select * from {{ ref('stg_quarantine__blocked_event_ids') }}
),

blocked_user_attributes as (
    select * from {{ ref('int_users__blocked_user_attributes') }}
),

blocked_attributes as (
    select
        batch_key,
        event_id,
        {{ list_agg('coalesce(attribute_name, attribute_path)', 'attribute_path') }} as blocked_attributes
    from {{ ref('stg_quarantine__blocked_event_attributes') }}
    group by all
),

affected as (
    select
        events.*,
        blocked_ids.event_id is not null as is_blocked_event,
        coalesce(blocked_attributes.blocked_attributes, {{ empty_list() }}) as blocked_attributes,
        -- 1 for the first event with its event_id in the batch, 2 for a repeat, ... (every
        -- occurrence of an affected event_id is affected, so counting here counts them all)
        case when events.event_id is not null then row_number() over (
            partition by events.batch_key, events.event_id order by events.event_index
        ) end as event_id_occurrence
    from events
    left join blocked_ids
        on events.batch_key = blocked_ids.batch_key and events.event_id = blocked_ids.event_id
    left join blocked_attributes
        on events.batch_key = blocked_attributes.batch_key
        and events.event_id = blocked_attributes.event_id
    where blocked_ids.event_id is not null or blocked_attributes.event_id is not null
),

classified as (
    select
        -- a repeated event_id in one batch: the repeats add their position in the batch
        affected.batch_key || ':' || coalesce(affected.event_id, '#' || affected.event_index)
            || case when affected.event_id_occurrence > 1 then '#' || affected.event_index else '' end
            as replay_key,
        contexts.user_key,
        contexts.mpid,
        affected.batch_key,
        affected.event_id,
        affected.event_index,
        batches.source_file,
        batches.line_number,
        affected.event_type,
        affected.event_name,
        affected.custom_event_type,
        affected.timestamp_unixtime_ms,
        affected.custom_attributes,
        affected.event_data,
        cast(case when {{ var('replay_blocked_user_attributes') }}
            then blocked_user_attributes.user_attributes
        end as {{ json_type_name() }}) as user_attributes,
        affected.is_blocked_event,
        affected.blocked_attributes,
        case when affected.is_blocked_event then 'blocked_event' else 'blocked_attributes' end
            as replay_reason,
        cast(({{ reference_time_ms() }} - affected.timestamp_unixtime_ms) / 86400000.0 as double)
            as event_age_days,
        case
            when suppressed_users.user_key is not null then 'suppressed_user'
            when not affected.is_blocked_event and not {{ var('replay_attribute_only_events') }}
                then 'attributes_only_not_opted_in'
            when affected.event_type is null then 'missing_event_type'
            when contexts.invalid_mpid is not null then 'invalid_mpid'
            when affected.timestamp_unixtime_ms is null then 'missing_or_invalid_timestamp'
            when affected.timestamp_unixtime_ms
                    > {{ reference_time_ms() }} + {{ future_tolerance_ms() }}
                then 'timestamp_in_future'
            when ({{ reference_time_ms() }} - affected.timestamp_unixtime_ms)
                    > {{ var('max_event_age_days') }}::bigint * 86400000
                and not {{ var('allow_events_older_than_max_age') }}
                then 'older_than_max_age'
            when {{ var('exclude_high_risk_users') }} and contexts.identity_risk = 'high'
                then 'high_identity_risk'
        end as skip_reason
    from affected
    inner join batches on affected.batch_key = batches.batch_key
    inner join contexts on affected.batch_key = contexts.batch_key
    left join blocked_user_attributes on contexts.user_key = blocked_user_attributes.user_key
    left join suppressed_users on contexts.user_key = suppressed_users.user_key
)

select * from classified
