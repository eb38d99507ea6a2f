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
    limits.other_limits,
    limits.source_url,
    limits.checked_on
from named
left join limits on named.integration = limits.integration
