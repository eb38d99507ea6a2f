-- Which fix changed which row, and which columns: each fix's output compared with its
-- input, on replay_key. Fixes are tables, so each comparison reads two stored steps.
-- A 64-bit hash of each row finds the changed rows (a change hiding in a hash collision
-- has odds of about 1 in 10^19 per row); only those are compared column by column.
-- The same comparison finds what a fix may not do (add, remove or duplicate an event,
-- change its user_key or timestamp): such a row has `problem` set, and data test
-- assert_fixes_keep_keys_and_timestamps fails on it.

{% set fixes = fix_chain() %}

{% if fixes | length == 0 %}
select
    cast(null as string) as replay_key,
    cast(null as string) as fix_name,
    cast(null as integer) as fix_position,
    cast(null as {{ text_list_type() }}) as changed_columns,
    cast(null as string) as problem
where false
{% else %}
{% set columns = fix_chain_column_names() %}
{% for fix in fixes %}
select
    replay_key,
    '{{ fix }}' as fix_name,
    {{ loop.index }} as fix_position,
    changed_columns,
    problem
from (
    -- a narrow join of every row (a key, its copies, a hash), then the columns of the
    -- changed rows only: the wide comparison reads the few rows a fix touched
    with fixed as (
        select
            replay_key,
            count(*) as copies,
            any_value(user_key) as user_key,
            any_value(timestamp_unixtime_ms) as timestamp_unixtime_ms,
            any_value(row_hash) as row_hash
        from (
            select replay_key, user_key, timestamp_unixtime_ms, {{ fix_row_hash(columns) }} as row_hash
            from {{ ref(fix) }}
        ) as hashed
        group by replay_key
    ),

    original as (
        select replay_key, user_key, timestamp_unixtime_ms, {{ fix_row_hash(columns) }} as row_hash
        from {{ fix_chain_input(fix) }}
    ),

    compared as (
        select
            coalesce(fixed.replay_key, original.replay_key) as replay_key,
            case
                when fixed.replay_key is null then 'event removed (or its replay_key changed); set skip_reason instead'
                when original.replay_key is null then 'event added (or its replay_key changed)'
                when fixed.copies > 1 then 'event duplicated'
                when fixed.user_key is distinct from original.user_key then 'user_key changed'
                when fixed.timestamp_unixtime_ms is distinct from original.timestamp_unixtime_ms
                    then 'timestamp_unixtime_ms changed'
            end as problem
        from fixed
        full outer join original on fixed.replay_key = original.replay_key
        where fixed.replay_key is null
            or original.replay_key is null
            or fixed.copies > 1
            or fixed.row_hash <> original.row_hash
    ),

    touched as (
        select replay_key from compared where problem is null
    ),

    column_changes as (
        select
            fixed.replay_key,
            {{ fix_changed_columns('fixed', 'original', columns) }} as changed_columns,
            cast(null as string) as problem
        from (select * from {{ ref(fix) }} semi join touched using (replay_key)) as fixed
        inner join (select * from {{ fix_chain_input(fix) }} semi join touched using (replay_key)) as original
            on fixed.replay_key = original.replay_key
    )

    select * from column_changes where {{ list_len('changed_columns') }} > 0
    union all
    select replay_key, {{ empty_text_list() }} as changed_columns, problem
    from compared
    where problem is not null
) as fix_changes
{% if not loop.last %}union all{% endif %}
{% endfor %}
{% endif %}
