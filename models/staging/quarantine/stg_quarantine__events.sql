-- A daily build (materialization delivery, macros/delivery.sql) adds the events of the
-- batches first delivered in the files ingested since: a batch's events never change.
{{ config(
    materialized=delivery_materialization(),
    incremental_strategy='append',
    delivery_follows=['base_quarantine__batches_parsed'],
) }}

{% set event_shape = {'event_type': 'VARCHAR', 'data': 'JSON'} %}
{% set data_shape = {
    'event_id': 'VARCHAR',
    'event_name': 'VARCHAR',
    'custom_event_type': 'VARCHAR',
    'timestamp_unixtime_ms': 'VARCHAR',
    'custom_attributes': 'JSON',
} %}

with batches as (
    -- the batches first delivered in the files this build adds
    select * from {{ ref('base_quarantine__batches_parsed') }}
    where source_file in (select source_file from {{ delivery_new_files() }})
),

unnested as (
    select
        batch_key,
        {{ with_index('events', 'event_json', 'event_index') }}
    from batches
),

parsed as (
    select
        batch_key,
        event_index,
        {{ json_parse_shape('event_json', event_shape) }} as event
    from unnested
),

with_data as (
    select
        batch_key,
        event_index,
        event.event_type,
        {{ json_object_or_empty('event.data') }} as event_data,
        {{ json_parse_shape('event.data', data_shape) }} as data
    from parsed
),

events as (
    select
        batch_key,
        event_index,
        nullif(data.event_id, '') as event_id,
        nullif(event_type, '') as event_type,
        data.event_name,
        data.custom_event_type,
        data.timestamp_unixtime_ms as timestamp_text,
        {{ unix_ms_from_text('data.timestamp_unixtime_ms') }} as timestamp_unixtime_ms,
        data.custom_attributes,
        event_data
    from with_data
)

select * from events
