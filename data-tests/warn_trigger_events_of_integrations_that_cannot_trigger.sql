-- A row of seed trigger_events whose integration, by its facts in seed
-- integration_limits, cannot trigger messages (can_trigger_messages = false, with its
-- page): its events are still counted and held back by `loader push`. Correct the row, or
-- the fact with the page that says otherwise.
{{ config(severity='warn') }}

select
    triggers.integration,
    triggers.event_type,
    triggers.event_name,
    limits.messages_source_url
from {{ ref('trigger_events') }} as triggers
inner join {{ ref('integration_limits') }} as limits
    on triggers.integration = limits.integration
where limits.can_trigger_messages = false
