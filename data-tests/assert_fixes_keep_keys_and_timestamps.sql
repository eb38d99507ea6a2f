-- A fix may change content, never the replay key, the user key or the original timestamp,
-- and may not add, remove or duplicate events (to skip one, set skip_reason). Each fix is
-- compared with its input, so a failing row names the fix; dbt's output lists each fix and
-- rule broken, with a count and an example replay_key.
-- First a cheap check: a fix that keeps the rules keeps the count of its input's rows and
-- the sum of a hash of each row's (replay_key, user_key, timestamp_unixtime_ms); a broken
-- rule changes one of them (but for a hash collision, odds about 2^-64). Only the fixes
-- whose count or sum differs are compared row by row, to name the events.
{% set fixes = fix_chain_suspects() %}

{% set problems %}
{% if fixes | length == 0 %}
select null as fix_name, null as replay_key, null as problem where false
{% else %}
{% for fix in fixes %}
select
    '{{ fix }}' as fix_name,
    coalesce(before_fix.replay_key, after_fix.replay_key) as replay_key,
    case
        when after_fix.replay_key is null then 'event removed (or its replay_key changed); set skip_reason instead'
        when before_fix.replay_key is null then 'event added (or its replay_key changed)'
        when after_fix.copies > 1 then 'event duplicated'
        when before_fix.user_key is distinct from after_fix.user_key then 'user_key changed'
        else 'timestamp_unixtime_ms changed'
    end as problem
from (select replay_key, user_key, timestamp_unixtime_ms from {{ fix_chain_input(fix) }}) as before_fix
full outer join (
    select
        replay_key,
        user_key,
        timestamp_unixtime_ms,
        count(*) over (partition by replay_key) as copies
    from {{ ref(fix) }}
) as after_fix
    on before_fix.replay_key = after_fix.replay_key
where before_fix.replay_key is null
    or after_fix.replay_key is null
    or after_fix.copies > 1
    or before_fix.user_key is distinct from after_fix.user_key
    or before_fix.timestamp_unixtime_ms is distinct from after_fix.timestamp_unixtime_ms
{% if not loop.last %}union all{% endif %}
{% endfor %}
{% endif %}
{% endset %}

{{ print_test_messages(
    "select fix_name || ': ' || problem || ' - ' || count(*) || ' event'"
    ~ " || case when count(*) > 1 then 's' else '' end || ', e.g. ' || min(replay_key) as message"
    ~ " from (" ~ problems ~ ") group by fix_name, problem"
) }}

{{ problems }}
