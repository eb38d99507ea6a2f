{#
    int_events__fix_changes on DuckDB: one comparison per fix, each kept while neither the
    fix nor its input was rebuilt.

    A fix's rows in the change log depend only on the fix's table and its input's table (the
    previous fix, or int_events__classified) and on its place in the chain. Those tables
    record the invocation that built them (post-hook record_relation_build), so each fix's
    comparison has a fingerprint: the md5 of the fix's name and position and of those two
    invocations, kept in meta.fix_change_inputs. When the table was built by the same SQL
    (the same chain and columns), a build compares again only the fixes whose fingerprint
    changed, and keeps the rows of the others: editing the last fixes of a long chain
    compares those fixes only. Anything else rebuilds the table whole.
#}

{% macro fix_changes_sql(fixes) -%}
    {#- The change log of `fixes` (names, each compared with its input in the chain). -#}
    {%- set chain = fix_chain() -%}
    {%- if fixes | length == 0 %}
select
    cast(null as string) as replay_key,
    cast(null as string) as fix_name,
    cast(null as integer) as fix_position,
    cast(null as {{ text_list_type() }}) as changed_columns
where false
    {%- else -%}
    {%- set columns = fix_chain_column_names() -%}
    {%- for fix in fixes %}
select
    replay_key,
    '{{ fix }}' as fix_name,
    {{ chain.index(fix) + 1 }} as fix_position,
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
    {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{% macro fix_comparison_fingerprints() -%}
    {#- Each fix of the chain -> the fingerprint of its comparison (see above), or none when
        the fix or its input has no recorded build. -#}
    {%- set chain = fix_chain() -%}
    {%- set fingerprints = {} -%}
    {%- for fix in chain -%}
        {%- set input = fix_chain_input(fix).identifier -%}
        {%- set fix_by = relation_build_column(fix, 'invocation_id') -%}
        {%- set input_by = relation_build_column(input, 'invocation_id') -%}
        {%- do fingerprints.update({fix: local_md5(fix ~ '|' ~ loop.index ~ '|' ~ fix_by ~ '|' ~ input_by)
            if fix_by is not none and input_by is not none else none}) -%}
    {%- endfor -%}
    {{ return(fingerprints) }}
{%- endmacro %}

{% macro record_fix_comparisons(fingerprints) -%}
    create or replace table meta.fix_change_inputs as
    select * from (values
        {%- for fix, fingerprint in fingerprints.items() %}
        ('{{ fix }}', {{ "'" ~ fingerprint ~ "'" if fingerprint else 'null::varchar' }}){{ ',' if not loop.last }}
        {%- endfor %}
        {%- if not fingerprints %} (null, null){% endif %}
    ) as t(fix_name, fingerprint)
    {%- if not fingerprints %} where false{% endif %};
{%- endmacro %}

{% materialization fix_change_log, adapter='duckdb' %}
    {%- set existing = load_cached_relation(this) -%}
    {%- set fingerprint = local_md5(compiled_code) -%}
    {%- set fingerprints = fix_comparison_fingerprints() -%}
    {%- set patch = existing is not none and not should_full_refresh()
        and relation_build_column(this.identifier, 'fingerprint') == fingerprint -%}
    {%- set kept = [] -%}
    {%- if patch -%}
        {%- set recorded = run_query('select fix_name, fingerprint from meta.fix_change_inputs') -%}
        {%- for row in recorded.rows -%}
            {%- if row[1] is not none and fingerprints.get(row[0]) == row[1] -%}
                {%- do kept.append(row[0]) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}

    {%- if not patch -%}
        {{ return(build_whole_table(fingerprint, record_fix_comparisons(fingerprints))) }}
    {%- endif -%}

    {%- set compared = fix_chain() | reject('in', kept) | list -%}
    {{ log(this.identifier ~ ": " ~ (compared | length) ~ " of " ~ (fix_chain() | length)
        ~ " fixes compared again (the others were not rebuilt)", info=true) }}
    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}
    {%- call statement('main') -%}
        delete from {{ this }} where not list_contains({{ sql_string_list(kept) }}, fix_name);
        {%- if compared %}
        insert into {{ this }} by name {{ fix_changes_sql(compared) }};
        {%- endif %}
        {{ record_fix_comparisons(fingerprints) }}
        {{ record_relation_build(fingerprint) }}
    {%- endcall -%}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [this]}) }}
{% endmaterialization %}
