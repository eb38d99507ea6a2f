-- A daily build (materialization delivery, macros/delivery.sql) adds the events of the
-- batches first delivered in the files ingested since: a batch's events never change.
-- event_data is the data object without the members that have a column here (each JSON
-- value is stored once: macro event_data_rest).
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
    select batch_key, source_file, file_checksum, line_number
    from {{ ref('base_quarantine__batches_parsed') }}
    where source_file in (select source_file from {{ delivery_new_files() }})
),

lines as (
    -- each batch's events read from its line (the parsed batches do not keep a copy of them)
    select
        batches.batch_key,
        {{ json_parse_shape('lines.batch_json', {'events': 'JSON[]'}) }} as batch
    from batches
    inner join {{ source('quarantine', 'quarantine_lines') }} as lines
        on batches.source_file = lines.source_file and batches.line_number = lines.line_number
        and batches.file_checksum = lines.file_checksum
),

unnested as (
    select
        batch_key,
        {{ with_index('batch.events', 'event_json', 'event_index') }}
    from lines
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
        {{ event_data_rest(json_object_or_empty('event.data')) }} as event_data,
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
