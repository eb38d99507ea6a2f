with batches as (
    select * from {{ ref('base_quarantine__batches_parsed') }}
),

blocked as (
    select
        batch_key,
        {{ json_text_items('block_metadata', '$.blocked_user_attributes') }}
            as attribute_name,
        {{ json_object_or_empty('user_attributes') }} as user_attributes
    from batches
    where block_metadata is not null
)

select distinct
    batch_key,
    attribute_name,
    {{ json_member('user_attributes', 'attribute_name') }} as attribute_value
from blocked
