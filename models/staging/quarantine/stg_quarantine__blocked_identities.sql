with batches as (
    select * from {{ ref('stg_quarantine__batches') }}
),

user_identities as (
    select
        batch_id,
        'user' as identity_kind,
        unnest(json_extract_string(block_metadata, '$.blocked_user_identities[*]'))
            as identity_type,
    from batches
    where block_metadata is not null
),

device_identities as (
    select
        batch_id,
        'device' as identity_kind,
        unnest(json_extract_string(block_metadata, '$.blocked_device_identities[*]'))
            as identity_type,
    from batches
    where block_metadata is not null
)

select distinct * from user_identities
union all by name
select distinct * from device_identities
