-- One row per distinct batch, parsed once: scalar fields as exact text (int64 numbers keep
-- every digit), free-form objects as JSON. The staging models read this, not each other.
-- Its events are not copied here: stg_quarantine__events reads them from the batch's line
-- (source_file, file_checksum, line_number), once per batch.
-- A redelivery merges only with identical content: a batch_id seen with other content is
-- kept as a batch of its own, keyed '<batch_id>~<content hash>'. In sample mode (var
-- dev_sample_users_pct) only the batches of the sampled users are kept.
-- A daily build (materialization delivery, macros/delivery.sql) reads the files ingested
-- since the last build, and the batches built before that they deliver again: those rows are
-- replaced (their delivery_count grows, or another content gets its own key).
{{ config(
    materialized=delivery_materialization(),
    incremental_strategy='delete+insert',
    unique_key='batch_key',
    delivery_incremental=sample_users_pct() is none,
    delivery_previous={
        'batch_key': 'string',
        'batch_id': 'string',
        'source_file': 'string',
        'file_checksum': 'string',
        'line_number': 'bigint',
        'delivery_count': 'bigint',
    },
) }}

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
} %}

{% set dto_version_message -%}
                    'Unsupported block_metadata dto_version ' || coalesce(dto_version, '(missing)')
                    || ' in ' || source_file || ' line ' || line_number
                    || ': this project reads dto_version 1 only. Check that the file is mParticle '
                    || 'Quarantine Output, and report the new format with an example batch.'
{%- endset %}

{%- set batch_identity -%}
    -- a batch without batch_id is identified by where it was read
    coalesce(nullif(batch.batch_id, ''), 'line:' || source_file || ':' || line_number)
{%- endset %}

with lines as (
    select * from {{ source('quarantine', 'quarantine_lines') }}
),

new_lines as (
    -- the lines of the files this build adds (a whole build: every completely loaded file;
    -- an interrupted load is redone by the next ingest)
    select
        source_file,
        file_checksum,
        line_number,
        ingested_at,
        batch_json,
        cast(1 as bigint) as deliveries
    from lines
    where file_checksum in (select file_checksum from {{ delivery_new_files() }})
),

parsed_new as (
    select
        *,
        {{ json_parse_shape('batch_json', batch_shape) }} as batch
    from new_lines
),

earlier_deliveries as (
    -- batches built before whose identity the new files deliver again (a daily build only):
    -- their first delivery read again, standing for all their deliveries so far
    select
        lines.source_file,
        lines.file_checksum,
        lines.line_number,
        lines.ingested_at,
        lines.batch_json,
        previous.delivery_count as deliveries
    from {{ delivery_previous() }} as previous
    inner join lines
        on previous.source_file = lines.source_file and previous.line_number = lines.line_number
        and previous.file_checksum = lines.file_checksum
    where coalesce(previous.batch_id, previous.batch_key) in (
        select {{ batch_identity }} from parsed_new
    )
),

parsed as (
    select * from parsed_new
    union all
    select
        *,
        {{ json_parse_shape('batch_json', batch_shape) }} as batch
    from earlier_deliveries
),

identified as (
    select
        {{ batch_identity }} as batch_identity,
        *
    from parsed
),

hashed as (
    select
        * except (batch_json),
        -- the content, minified (a copy differing only in whitespace is the same batch);
        -- hashed only for a batch identity delivered more than once
        case when count(*) over (partition by batch_identity) > 1
            then md5({{ json_minified('batch_json') }})
        end as content_hash
    from identified
),

keyed as (
    select
        -- the first content delivered under a batch identity keeps it as its key (keys
        -- already sent stay the same); other contents add their hash
        case
            when content_hash is null or content_hash = first_value(content_hash) over (
                partition by batch_identity order by ingested_at, source_file, line_number
            )
                then batch_identity
            else batch_identity || '~' || left(content_hash, 12)
        end as batch_key,
        nullif(batch.batch_id, '') as batch_id,
        source_file,
        file_checksum,
        line_number,
        ingested_at,
        batch.mpid,
        batch.mp_deviceid,
        batch.environment,
        batch.timestamp_unixtime_ms,
        batch.ip,
        batch.user_identities,
        batch.device_info,
        batch.application_info,
        batch.user_attributes,
        batch.consent_state,
        batch.integration_attributes,
        batch.partner_identities,
        batch.context,
        coalesce(
            {{ json_get('batch.context', '$.data_plan.block_metadata') }},
            {{ json_get('batch.context', '$.block_metadata') }}
        ) as block_metadata,
        deliveries
    from hashed
),

deduplicated as (
    select
        * except (deliveries),
        cast(sum(deliveries) over (partition by batch_key) as bigint) as delivery_count
    from keyed
    qualify row_number() over (
        partition by batch_key order by ingested_at, source_file, line_number
    ) = 1
),

checked as (
    select
        *,
        {{ json_text('block_metadata', '$.dto_version') }} as dto_version,
        case
            when block_metadata is not null and dto_version is distinct from '1'
                then {{ stop_query(dto_version_message) }}
        end as dto_version_check
    from deduplicated
),

sampled as (
    -- sample mode (var dev_sample_users_pct): the batches of a deterministic share of users
    select * from checked
    {%- if sample_users_pct() is not none %}
    where {{ in_user_sample(user_key(
        valid_mpid('mpid'),
        user_identity_pairs(user_identities_object('user_identities')),
        device_id_pairs(json_object_or_empty('device_info'), "nullif(mp_deviceid, '')"),
        'batch_key'
    )) }}
    {%- endif %}
)

select * except (dto_version, dto_version_check) from sampled
where dto_version_check is null
