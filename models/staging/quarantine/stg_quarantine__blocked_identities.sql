-- block_metadata.blocked_user_identities (identity types, keys of user_identities) and
-- blocked_device_identities (keys of device_info) unnested: one row per batch and blocked
-- identity, with whether the batch carried a value for it.

with batches as (
    select * from {{ ref('base_quarantine__batches_parsed') }}
),

normalized as (
    select * from {{ ref('stg_quarantine__batches') }}
),

user_identities as (
    select
        batch_key,
        'user' as identity_kind,
        {{ json_text_items('block_metadata', '$.blocked_user_identities') }} as identity_type
    from batches
    where block_metadata is not null
),

device_identities as (
    select
        batch_key,
        'device' as identity_kind,
        {{ json_text_items('block_metadata', '$.blocked_device_identities') }} as identity_type
    from batches
    where block_metadata is not null
),

blocked as (
    select distinct * from user_identities
    union
    select distinct * from device_identities
)

select
    blocked.batch_key,
    blocked.identity_kind,
    blocked.identity_type,
    case
        when blocked.identity_kind = 'user'
            then {{ has_identity_value('normalized.user_identities', 'blocked.identity_type') }}
        else {{ has_identity_value('normalized.device_info', 'blocked.identity_type') }}
    end as has_value
from blocked
inner join normalized on blocked.batch_key = normalized.batch_key
