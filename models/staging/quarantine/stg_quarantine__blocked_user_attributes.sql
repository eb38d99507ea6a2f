with batches as (
    select * from {{ ref('stg_quarantine__batches') }}
),

blocked as (
    select
        batch_id,
        unnest(json_extract_string(block_metadata, '$.blocked_user_attributes[*]'))
            as attribute_name,
        user_attributes,
    from batches
    where block_metadata is not null
)

select distinct
    batch_id,
    attribute_name,
    {{ json_member('user_attributes', 'attribute_name') }} as attribute_value,
from blocked
