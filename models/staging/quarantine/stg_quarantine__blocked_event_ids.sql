with batches as (
    select * from {{ ref('base_quarantine__batches_parsed') }}
),

blocked as (
    select
        batch_key,
        {{ json_text_items('block_metadata', '$.blocked_event_ids') }} as event_id
    from batches
    where block_metadata is not null
)

select distinct * from blocked
