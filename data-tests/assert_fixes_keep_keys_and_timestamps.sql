-- A fix may change content, never the replay key, the user key or the original timestamp,
-- and may not add, remove or duplicate events (to skip one, set skip_reason).
-- int_events__fix_changes compares each fix with its input and sets `problem` on a row
-- that breaks these rules, so a failing row names the fix; dbt's output lists each fix
-- and rule broken, with a count and an example replay_key.

{% set problems %}
select fix_name, replay_key, problem from {{ ref('int_events__fix_changes') }}
where problem is not null
{% endset %}

{{ print_test_messages(
    "select fix_name || ': ' || problem || ' - ' || count(*) || ' event'"
    ~ " || case when count(*) > 1 then 's' else '' end || ', e.g. ' || min(replay_key) as message"
    ~ " from (" ~ problems ~ ") group by fix_name, problem"
) }}

{{ problems }}
