-- One row per user: the user attributes the data plan blocked, each at its latest value.
-- "Latest" is by the batch's own timestamp (its upload time), else its newest event. Every
-- replay event of the user carries the same object, so the user's batches still pack
-- together. Attributes without a value (absent or JSON null) are left out.

with blocked as (
    select * from {{ ref('stg_quarantine__blocked_user_attributes') }}
),

batches as (
    select * from {{ ref('stg_quarantine__batches') }}
),

contexts as (
    select * from {{ ref('int_batches__replay_context') }}
),

event_times as (
    select
        batch_key,
        max(timestamp_unixtime_ms) as latest_event_ms
    from {{ ref('stg_quarantine__events') }}
    group by all
),

valued as (
    select
        contexts.user_key,
        blocked.batch_key,
        blocked.attribute_name,
        blocked.attribute_value,
        coalesce(batches.batch_timestamp_ms, event_times.latest_event_ms) as value_time_ms
    from blocked
    inner join contexts on blocked.batch_key = contexts.batch_key
    inner join batches on blocked.batch_key = batches.batch_key
    left join event_times on blocked.batch_key = event_times.batch_key
    where blocked.attribute_value is not null
        and {{ json_kind('blocked.attribute_value') }} <> 'NULL'
),

latest as (
    select *
    from valued
    qualify row_number() over (
        partition by user_key, attribute_name
        order by value_time_ms desc nulls last, batch_key desc
    ) = 1
),

per_user as (
    select
        user_key,
        {{ json_object_agg('attribute_name', 'attribute_value') }} as user_attributes,
        {{ list_agg('attribute_name', 'attribute_name') }} as attribute_names,
        count(*) as attribute_count,
        max(value_time_ms) as latest_value_time_ms,
        count(distinct batch_key) as source_batches
    from latest
    group by all
)

select * from per_user
