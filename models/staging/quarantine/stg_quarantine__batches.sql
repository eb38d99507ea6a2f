{{ config(materialized='table') }}

with lines as (
    select * from {{ source('quarantine', 'quarantine_lines') }}
),

parsed as (
    select
        source_file,
        line_number,
        ingested_at,
        batch_json,
        {{ json_text('batch_json', '$.batch_id') }} as source_batch_id,
        coalesce(
            {{ json_get('batch_json', '$.context.data_plan.block_metadata') }},
            {{ json_get('batch_json', '$.context.block_metadata') }}
        ) as block_metadata,
        {{ json_get('batch_json', '$.user_identities') }} as raw_user_identities,
    from lines
),

keyed as (
    select
        *,
        -- a batch without batch_id is keyed by where it was read
        coalesce(source_batch_id, 'line:' || source_file || ':' || line_number) as batch_id,
        {{ json_text('block_metadata', '$.dto_version') }} as dto_version,
    from parsed
),

deduplicated as (
    select
        *,
        count(*) over (partition by batch_id) as delivery_count,
    from keyed
    qualify row_number() over (
        partition by batch_id order by ingested_at, source_file, line_number
    ) = 1
),

checked as (
    select
        *,
        case
            when block_metadata is not null and dto_version is distinct from '1'
                then error(
                    'Unsupported block_metadata dto_version ' || coalesce(dto_version, '(missing)')
                    || ' in ' || source_file || ' line ' || line_number
                    || ': this project reads dto_version 1 only. Check that the file is mParticle '
                    || 'Quarantine Output, and report the new format with an example batch.'
                )
        end as dto_version_check,
    from deduplicated
),

normalized as (
    select
        batch_id,
        source_batch_id,
        source_file,
        line_number,
        delivery_count,
        ingested_at,
        {{ json_text('batch_json', '$.mpid') }} as mpid,
        {{ json_text('batch_json', '$.mp_deviceid') }} as mp_deviceid,
        {{ json_text('batch_json', '$.environment') }} as environment,
        try_cast({{ json_text('batch_json', '$.timestamp_unixtime_ms') }} as bigint) as batch_timestamp_ms,
        case json_type(raw_user_identities)
            when 'OBJECT' then raw_user_identities
            when 'ARRAY' then to_json(map_from_entries(list_transform(
                json_extract(raw_user_identities, '$[*]'),
                lambda item: {
                    'k': json_extract_string(item, '$.identity_type'),
                    'v': json_extract_string(item, '$.identity')
                }
            )))
            else '{}'::json
        end as user_identities,
        {{ json_object_or_empty(json_get('batch_json', '$.device_info')) }} as device_info,
        {{ json_object_or_empty(json_get('batch_json', '$.application_info')) }} as application_info,
        {{ json_object_or_empty(json_get('batch_json', '$.user_attributes')) }} as user_attributes,
        {{ json_get('batch_json', '$.consent_state') }} as consent_state,
        {{ json_get('batch_json', '$.integration_attributes') }} as integration_attributes,
        {{ json_get('batch_json', '$.partner_identities') }} as partner_identities,
        nullif(trim({{ json_text('batch_json', '$.ip') }}), '') as ip,
        {{ json_text('batch_json', '$.context.data_plan.plan_id') }} as data_plan_id,
        try_cast({{ json_text('batch_json', '$.context.data_plan.plan_version') }} as bigint) as data_plan_version,
        block_metadata,
        coalesce(json_extract(batch_json, '$.events[*]'), []) as events,
    from checked
    where dto_version_check is null
)

select * from normalized
