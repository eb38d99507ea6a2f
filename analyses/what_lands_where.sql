-- What will land where: per integration of var integrations, the replay events by verdict
-- (model replay_integration_outcomes), then the fixes whose changes will not land in an
-- integration (dropped as duplicates, too old at send, or unknown), then every event that
-- will not land or whose fate is unknown, with the reason and the page the rule comes from.
--
--   loader sql analyses/what_lands_where.sql
--   loader sql analyses/what_lands_where.sql --set integration=amplitude
--
-- Without integration: every integration.

create or replace temp view chosen_outcomes as
select outcomes.*
from replay_integration_outcomes as outcomes
where getvariable('integration') is null or outcomes.integration = getvariable('integration');

select
    integration,
    count(*) filter (where verdict = 'lands') as lands,
    count(*) filter (where verdict = 'dropped_as_duplicate') as dropped_as_duplicate,
    count(*) filter (where verdict = 'duplicated') as duplicated,
    count(*) filter (where verdict = 'too_old_at_send') as too_old_at_send,
    count(*) filter (where verdict = 'unknown') as unknown
from chosen_outcomes
group by integration
order by min(integration_position);

select
    changes.fix_name,
    outcomes.integration,
    outcomes.verdict,
    count(*) as events
from int_events__fix_changes as changes
join chosen_outcomes as outcomes using (replay_key)
where outcomes.verdict in ('dropped_as_duplicate', 'too_old_at_send', 'unknown')
group by all
order by min(changes.fix_position), min(outcomes.integration_position), outcomes.verdict;

select
    outcomes.integration,
    outcomes.verdict,
    replay_events.user_key,
    replay_events.event_name,
    replay_events.event_time,
    outcomes.expected_send_at,
    outcomes.reason,
    outcomes.source_url,
    outcomes.replay_key
from chosen_outcomes as outcomes
join replay_events using (replay_key)
where outcomes.verdict <> 'lands'
order by outcomes.integration_position, outcomes.verdict, outcomes.expected_send_at,
    outcomes.replay_key;
