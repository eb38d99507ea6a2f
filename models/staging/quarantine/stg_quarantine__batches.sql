-- One row per distinct batch, its fields normalized: empty text is null, user identities
-- are a map whatever their shape, free-form objects are {} when absent, an MPID that is not
-- a signed 64-bit integer is set apart (invalid_mpid).

with batches as (
    select * from {{ ref('base_quarantine__batches_parsed') }}
),

normalized as (
    select
        batch_key,
        batch_id,
        source_file,
        line_number,
        delivery_count,
        ingested_at,
        -- an MPID is a signed 64-bit integer; anything else cannot be sent as one
        {{ valid_mpid('mpid') }} as mpid,
        case when not {{ is_int64_text('mpid') }} then mpid end as invalid_mpid,
        nullif(mp_deviceid, '') as mp_deviceid,
        environment,
        try_cast(timestamp_unixtime_ms as bigint) as batch_timestamp_ms,
        {{ user_identities_object('user_identities') }} as user_identities,
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
        block_metadata
    from batches
)

select * from normalized
