{{ config(materialized='table') }}

with batches as (
    select * from {{ ref('stg_quarantine__batches') }}
),

unnested as (
    select
        batch_id,
        unnest(events) as event_json,
        generate_subscripts(events, 1) as event_index,
    from batches
),

events as (
    select
        batch_id,
        event_index,
        {{ json_text('event_json', '$.data.event_id') }} as event_id,
        {{ json_text('event_json', '$.event_type') }} as event_type,
        {{ json_text('event_json', '$.data.event_name') }} as event_name,
        {{ json_text('event_json', '$.data.custom_event_type') }} as custom_event_type,
        {{ json_text('event_json', '$.data.timestamp_unixtime_ms') }} as timestamp_text,
        try_cast({{ json_text('event_json', '$.data.timestamp_unixtime_ms') }} as bigint)
            as timestamp_unixtime_ms,
        {{ json_get('event_json', '$.data.custom_attributes') }} as custom_attributes,
        {{ json_object_or_empty(json_get('event_json', '$.data')) }} as event_data,
    from unnested
)

select * from events
