-- Which fix changed which row, and which columns: each fix's output compared with its
-- input, on replay_key. Fixes are tables, so each comparison reads two stored steps.
-- A 64-bit hash of each row finds the changed rows (a change hiding in a hash collision
-- has odds of about 1 in 10^19 per row); only those are compared column by column.

{% set fixes = fix_chain() %}

{% if fixes | length == 0 %}
select
    cast(null as string) as replay_key,
    cast(null as string) as fix_name,
    cast(null as integer) as fix_position,
    cast(null as {{ text_list_type() }}) as changed_columns
where false
{% else %}
{% set columns = fix_chain_column_names() %}
{% for fix in fixes %}
select
    replay_key,
    '{{ fix }}' as fix_name,
    {{ loop.index }} as fix_position,
    changed_columns
from (
    -- rows whose content hash differs first (a narrow join of every row), then the
    -- columns of those rows only: the wide comparison reads the few changed rows
    with touched as (
        select fixed.replay_key
        from (select replay_key, {{ fix_row_hash(columns) }} as row_hash from {{ ref(fix) }}) as fixed
        inner join (
            select replay_key, {{ fix_row_hash(columns) }} as row_hash from {{ fix_chain_input(fix) }}
        ) as original
            on fixed.replay_key = original.replay_key
        where fixed.row_hash <> original.row_hash
    )
    select
        fixed.replay_key,
        {{ fix_changed_columns('fixed', 'original', columns) }} as changed_columns
    from (select * from {{ ref(fix) }} semi join touched using (replay_key)) as fixed
    inner join (select * from {{ fix_chain_input(fix) }} semi join touched using (replay_key)) as original
        on fixed.replay_key = original.replay_key
)
where {{ list_len('changed_columns') }} > 0
{% if not loop.last %}union all{% endif %}
{% endfor %}
{% endif %}
