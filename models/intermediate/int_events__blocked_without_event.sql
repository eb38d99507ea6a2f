-- Blocked event ids that no event of their batch carries: skipped as
-- 'event_not_found_in_batch' in blocked_events__outcomes. Apart from the fix chain, so that
-- editing a fix does not search every event of every batch again.

with blocked_ids as (
    select * from {{ ref('stg_quarantine__blocked_event_ids') }}
),

events as (
    select * from {{ ref('stg_quarantine__events') }}
)

select
    blocked_ids.batch_key,
    blocked_ids.event_id
from blocked_ids
anti join events
    on blocked_ids.batch_key = events.batch_key and blocked_ids.event_id = events.event_id
