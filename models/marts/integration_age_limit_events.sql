-- Per integration of var integrations and per event day: replay events, and how many are
-- older than the integration accepts at the build's reference time (var
-- replay_reference_time_ms, else now). An event exactly max_event_age_days old is within
-- the limit. events_over_limit is null where the integration's limit is unknown.

with integrations as (
    select * from {{ ref('replay_integrations') }}
),

replay as (
    select
        event_time::date as event_date,
        {{ reference_time_ms() }} - timestamp_unixtime_ms as age_ms
    from {{ ref('replay_events') }}
),

counted as (
    select
        integrations.integration,
        replay.event_date,
        integrations.max_event_age_days,
        count(*) as events,
        count(*) filter (
            where replay.age_ms > integrations.max_event_age_days::bigint * 86400000
        ) as over_limit
    from integrations
    cross join replay
    group by all
)

select
    integration,
    event_date,
    max_event_age_days,
    events,
    case when max_event_age_days is not null then over_limit end as events_over_limit
from counted
order by integration, event_date
