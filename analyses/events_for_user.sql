-- What will be sent for one user: every replay event of the user, grouped the way the
-- loader packs them (one batch = one user_key and one context_key), with the batch-level
-- JSON, the event JSON as sent, and the fixes that changed it.
--
--   loader sql analyses/events_for_user.sql --set user_key='mpid:8000000000000000001'
--   duckdb backfill.duckdb -c "set variable user_key = 'mpid:1'" -c ".read analyses/events_for_user.sql"
--
-- Without user_key: the user with the most events.

with chosen as (
    select coalesce(
        getvariable('user_key'),
        (select user_key from replay_events group by user_key order by count(*) desc, user_key limit 1)
    ) as user_key
)

select
    replay_events.context_key,
    replay_events.event_time,
    replay_events.event_type,
    replay_events.event_name,
    replay_events.identity_risk,
    replay_events.fixes_applied,
    replay_events.replay_key,
    replay_events.event_json,
    replay_events.batch_context,
from replay_events
inner join chosen on replay_events.user_key = chosen.user_key
order by replay_events.context_key, replay_events.timestamp_unixtime_ms, replay_events.replay_key
