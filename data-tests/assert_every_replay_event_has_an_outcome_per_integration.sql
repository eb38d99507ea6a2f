-- Every replay event has exactly one verdict per integration of var integrations in
-- replay_integration_outcomes: a failing row names the event and integration missing or
-- repeated.
with expected as (
    select replay_events.replay_key, integrations.integration
    from {{ ref('replay_events') }} as replay_events
    cross join {{ ref('replay_integrations') }} as integrations
),

judged as (
    select replay_key, integration, count(*) as verdicts
    from {{ ref('replay_integration_outcomes') }}
    group by replay_key, integration
)

select
    coalesce(expected.replay_key, judged.replay_key) as replay_key,
    coalesce(expected.integration, judged.integration) as integration,
    case
        when judged.replay_key is null then 'no verdict'
        when expected.replay_key is null then 'verdict for an event or integration not replayed'
        else 'more than one verdict'
    end as problem
from expected
full outer join judged
    on expected.replay_key = judged.replay_key and expected.integration = judged.integration
where judged.replay_key is null or expected.replay_key is null or judged.verdicts <> 1
