-- Blocked event ids that no event of their batch carries: skipped as
-- 'event_not_found_in_batch' in blocked_events__outcomes. Apart from the fix chain, so that
-- editing a fix does not search every event of every batch again.

{{ config(
    materialized=delivery_materialization(),
    incremental_strategy='append',
    delivery_follows=['base_quarantine__batches_parsed', 'stg_quarantine__events'],
) }}

with new_batches as (
    -- the batches first delivered in the files this build adds (a daily build: those since
    -- the last one, macros/delivery.sql)
    select batch_key from {{ ref('base_quarantine__batches_parsed') }}
    where source_file in (select source_file from {{ delivery_new_files() }})
),

blocked_ids as (
    select * from {{ ref('stg_quarantine__blocked_event_ids') }}
    where batch_key in (select batch_key from new_batches)
),

events as (
    select * from {{ ref('stg_quarantine__events') }}
    where batch_key in (select batch_key from new_batches)
)

select
    blocked_ids.batch_key,
    blocked_ids.event_id
from blocked_ids
anti join events
    on blocked_ids.batch_key = events.batch_key and blocked_ids.event_id = events.event_id
