with batches as (
    select * from {{ ref('base_quarantine__batches_parsed') }}
),

per_event as (
    select
        batch_key,
        {{ json_items('block_metadata', '$.blocked_event_attributes') }} as entry
    from batches
    where block_metadata is not null
),

per_attribute as (
    select
        batch_key,
        {{ json_string('entry', '$.event_id') }} as event_id,
        {{ json_text_items('entry', '$.event_attributes') }} as attribute_path
    from per_event
),

parsed as (
    select
        batch_key,
        event_id,
        attribute_path,
        nullif(regexp_extract(attribute_path, '^[.]/data/custom_attributes/(.+)$', 1), '')
            as attribute_name
    from per_attribute
)

select distinct * from parsed
