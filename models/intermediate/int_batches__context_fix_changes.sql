-- Which context fix changed which batch, and which columns: each context fix's output
-- compared with its input, on batch_key (var context_fixes).

{% set fixes = context_fix_chain() %}

{% if fixes | length == 0 %}
select
    cast(null as string) as batch_key,
    cast(null as string) as fix_name,
    cast(null as integer) as fix_position,
    cast(null as {{ text_list_type() }}) as changed_columns
where false
{% else %}
{% set columns = context_fix_column_names() | reject('equalto', 'events') | list %}
{% for fix in fixes %}
select
    batch_key,
    '{{ fix }}' as fix_name,
    {{ loop.index }} as fix_position,
    changed_columns
from (
    select
        fixed.batch_key,
        {{ fix_changed_columns('fixed', 'original', columns | reject('equalto', 'batch_key') | list) }}
            as changed_columns
    from {{ ref(fix) }} as fixed
    inner join {{ context_fix_chain_input(fix) }} as original on fixed.batch_key = original.batch_key
)
where {{ list_len('changed_columns') }} > 0
{% if not loop.last %}union all{% endif %}
{% endfor %}
{% endif %}
