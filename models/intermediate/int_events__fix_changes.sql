-- Which fix changed which row, and which columns: each fix's output compared with its
-- input, on replay_key. Fixes are tables, so each comparison reads two stored steps.

{% set fixes = fix_chain() %}

{% if fixes | length == 0 %}
select
    cast(null as varchar) as replay_key,
    cast(null as varchar) as fix_name,
    cast(null as integer) as fix_position,
    cast(null as varchar[]) as changed_columns,
where false
{% else %}
{% set columns = fix_chain_column_names() %}
{% for fix in fixes %}
select
    replay_key,
    '{{ fix }}' as fix_name,
    {{ loop.index }} as fix_position,
    changed_columns,
from (
    select
        fixed.replay_key,
        {{ fix_changed_columns('fixed', 'original', columns) }} as changed_columns,
    from {{ ref(fix) }} as fixed
    inner join {{ fix_chain_input(fix) }} as original on fixed.replay_key = original.replay_key
)
where len(changed_columns) > 0
{% if not loop.last %}union all{% endif %}
{% endfor %}
{% endif %}
