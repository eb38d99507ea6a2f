{{ config(materialized='table') }}

{#- Each line is parsed once: scalar fields as exact text (int64 numbers keep every digit),
    free-form objects as JSON. -#}
{% set batch_shape = {
    'batch_id': 'VARCHAR',
    'mpid': 'VARCHAR',
    'mp_deviceid': 'VARCHAR',
    'environment': 'VARCHAR',
    'timestamp_unixtime_ms': 'VARCHAR',
    'ip': 'VARCHAR',
    'user_identities': 'JSON',
    'device_info': 'JSON',
    'application_info': 'JSON',
    'user_attributes': 'JSON',
    'consent_state': 'JSON',
    'integration_attributes': 'JSON',
    'partner_identities': 'JSON',
    'context': 'JSON',
    'events': 'JSON[]',
} %}

with lines as (
    select * from {{ source('quarantine', 'quarantine_lines') }}
),

loaded_files as (
    -- files whose load completed (an interrupted load is redone by the next ingest)
    select file_checksum from {{ source('quarantine', 'ingested_files') }}
),

parsed as (
    select
        source_file,
        line_number,
        ingested_at,
        from_json(batch_json, '{{ tojson(batch_shape) }}') as batch,
    from lines
    semi join loaded_files using (file_checksum)
),

keyed as (
    select
        * exclude (batch),
        batch.*,
        -- a batch without batch_id is keyed by where it was read
        coalesce(nullif(batch.batch_id, ''), 'line:' || source_file || ':' || line_number)
            as batch_key,
        coalesce(
            {{ json_get('batch.context', '$.data_plan.block_metadata') }},
            {{ json_get('batch.context', '$.block_metadata') }}
        ) as block_metadata,
    from parsed
),

deduplicated as (
    select
        *,
        count(*) over (partition by batch_key) as delivery_count,
    from keyed
    qualify row_number() over (
        partition by batch_key order by ingested_at, source_file, line_number
    ) = 1
),

checked as (
    select
        *,
        {{ json_text('block_metadata', '$.dto_version') }} as dto_version,
    from deduplicated
),

normalized as (
    select
        batch_key as batch_id,
        nullif(batch_id, '') as source_batch_id,
        source_file,
        line_number,
        delivery_count,
        ingested_at,
        nullif(mpid, '') as mpid,
        nullif(mp_deviceid, '') as mp_deviceid,
        environment,
        try_cast(timestamp_unixtime_ms as bigint) as batch_timestamp_ms,
        case json_type(user_identities)
            when 'OBJECT' then user_identities
            when 'ARRAY' then to_json(map_from_entries(list_transform(
                json_extract(user_identities, '$[*]'),
                lambda item: {
                    'k': json_extract_string(item, '$.identity_type'),
                    'v': json_extract_string(item, '$.identity')
                }
            )))
            else '{}'::json
        end as user_identities,
        {{ json_object_or_empty('device_info') }} as device_info,
        {{ json_object_or_empty('application_info') }} as application_info,
        {{ json_object_or_empty('user_attributes') }} as user_attributes,
        consent_state,
        integration_attributes,
        partner_identities,
        nullif(trim(ip), '') as ip,
        {{ json_text('context', '$.data_plan.plan_id') }} as data_plan_id,
        try_cast({{ json_text('context', '$.data_plan.plan_version') }} as bigint)
            as data_plan_version,
        block_metadata,
        coalesce(events, []) as events,
        case
            when block_metadata is not null and dto_version is distinct from '1'
                then error(
                    'Unsupported block_metadata dto_version ' || coalesce(dto_version, '(missing)')
                    || ' in ' || source_file || ' line ' || line_number
                    || ': this project reads dto_version 1 only. Check that the file is mParticle '
                    || 'Quarantine Output, and report the new format with an example batch.'
                )
        end as dto_version_check,
    from checked
)

select * exclude (dto_version_check) from normalized
where dto_version_check is null
