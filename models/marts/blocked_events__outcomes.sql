-- Every blocked event (whole, or attributes only) and what happens to it: replayed, or
-- skipped with a reason. A singular test fails if a blocked event is missing here.

with classified as (
    select * from {{ ref('int_events__classified') }}
),

fixed as (
    select * from {{ ref('int_events__fixed') }}
),

known_events as (
    select
        classified.replay_key,
        classified.batch_key as batch_id,
        classified.event_id,
        classified.replay_reason as blocked_kind,
        classified.event_type,
        coalesce(fixed.event_name, classified.event_name) as event_name,
        classified.event_name as original_event_name,
        classified.timestamp_unixtime_ms,
        -- replay_events is the fixed events without a skip_reason (a data test checks it)
        case
            when fixed.replay_key is null then 'missing'
            when fixed.skip_reason is null then 'replay'
            else 'skipped'
        end as outcome,
        case
            when fixed.replay_key is null then 'removed_by_a_fix_without_reason'
            else fixed.skip_reason
        end as skip_reason
    from classified
    left join fixed on classified.replay_key = fixed.replay_key
),

ids_without_event as (
    select
        batch_key || ':' || event_id as replay_key,
        batch_key as batch_id,
        event_id,
        'blocked_event' as blocked_kind,
        cast(null as string) as event_type,
        cast(null as string) as event_name,
        cast(null as string) as original_event_name,
        cast(null as bigint) as timestamp_unixtime_ms,
        'skipped' as outcome,
        'event_not_found_in_batch' as skip_reason
    from {{ ref('int_events__blocked_without_event') }}
)

select * from known_events
union all
select * from ids_without_event
