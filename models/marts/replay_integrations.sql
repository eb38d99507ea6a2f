-- The integrations this backfill feeds (var integrations), with what each accepts of
-- historical data (seed integration_limits). A name the seed does not know fails the
-- relationships test on `integration`: add the integration to the seed, with its source.

with named as (
    {{ integrations_list_sql() }}
),

limits as (
    select * from {{ ref('integration_limits') }}
)

select
    named.integration,
    named.position,
    limits.max_event_age_days,
    limits.max_event_age_days is not null as limit_known,
    limits.historical_events_accepted,
    limits.historical_events_source_url,
    limits.other_limits,
    limits.source_url,
    limits.checked_on,
    limits.dedup_key,
    limits.dedup_window_days,
    limits.dedup_key_source_url,
    limits.dedup_window_source_url,
    limits.bad_event_fails_request,
    limits.bad_event_source_url,
    limits.historical_attributes_overwrite,
    limits.attributes_source_url,
    limits.can_trigger_messages,
    limits.messages_source_url
from named
left join limits on named.integration = limits.integration
