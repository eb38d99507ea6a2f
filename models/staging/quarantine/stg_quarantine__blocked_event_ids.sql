with batches as (
    select * from {{ ref('stg_quarantine__batches') }}
),

blocked as (
    select
        batch_id,
        unnest(json_extract_string(block_metadata, '$.blocked_event_ids[*]')) as event_id,
    from batches
    where block_metadata is not null
)

select distinct * from blocked
