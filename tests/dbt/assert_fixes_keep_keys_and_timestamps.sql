-- A fix may change content, never the replay key, the user key or the original timestamp,
-- and may not add or remove events (to skip one, set skip_reason).
with before_fixes as (
    select replay_key, user_key, timestamp_unixtime_ms from {{ fix_chain_start() }}
),

after_fixes as (
    select replay_key, user_key, timestamp_unixtime_ms from {{ ref('int_events__fixed') }}
)

select coalesce(b.replay_key, a.replay_key) as replay_key
from before_fixes as b
full outer join after_fixes as a on b.replay_key = a.replay_key
where b.replay_key is null
    or a.replay_key is null
    or b.user_key is distinct from a.user_key
    or b.timestamp_unixtime_ms is distinct from a.timestamp_unixtime_ms
