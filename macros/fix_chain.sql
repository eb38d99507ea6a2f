{#
    The fix chain. var('fixes') in dbt_project.yml lists fix models in the order they
    apply; each fix selects from {{ fix_input() }}, which is the previous fix (or the
    classified events for the first). Adding a fix never means editing another one, not
    even its unit tests: in a unit test, fix_input() is ref('int_events__classified').
    Every fix is a table, so each step is computed once whatever the chain's length.
#}

{% macro fix_chain() -%}
    {#- The fix model names in chain order: the one place var 'fixes' is read. Checked here
        as well as in check_project_vars, since models call this while dbt parses them. -#}
    {%- set fixes = var('fixes', []) or [] -%}
    {%- if not var_is_name_list(fixes) -%}
        {{ exceptions.raise_compiler_error(var_problem('fixes', fixes, 'fix_names')) }}
    {%- endif -%}
    {{ return(fixes) }}
{%- endmacro %}

{% macro demo_fix_enabled() -%}
    {#- A demo fix (models/demo/fixes/) is built only when var 'fixes' lists it: the demo's
        vars do (examples/demo_vars.yml); the default chain, and yours, do not. -#}
    {{ return(fix_model_name() in fix_chain()) }}
{%- endmacro %}

{% macro is_demo_fix() -%}
    {{ return(model.get('fqn', [])[1:2] == ['demo']) }}
{%- endmacro %}

{% macro fix_chain_start() -%}
    {{ return(ref('int_events__classified')) }}
{%- endmacro %}

{% macro fix_chain_input(fix) -%}
    {#- The relation fix `fix` reads: the previous fix in the chain, or the chain's start. -#}
    {%- set fixes = fix_chain() -%}
    {%- set position = fixes.index(fix) -%}
    {{ return(fix_chain_start() if position == 0 else ref(fixes[position - 1])) }}
{%- endmacro %}

{% macro fix_model_name() -%}
    {#- The fix being built; in a unit test, `model` is the test and the fix is the node it tests. -#}
    {{ return((model.get('tested_node_unique_id') or model.name).split('.')[-1]) }}
{%- endmacro %}

{% macro fix_input() -%}
    {%- set name = fix_model_name() -%}
    {%- if name not in fix_chain() and is_demo_fix() -%}
        {#- a demo fix left out of the chain is disabled (demo_fix_enabled): never built -#}
        {{ return(fix_chain_start()) }}
    {%- elif name not in fix_chain() -%}
        {{ exceptions.raise_compiler_error(
            "Fix model '" ~ name ~ "' is not in var 'fixes' in dbt_project.yml. "
            ~ "Add it to the list where it belongs in the chain.") }}
    {%- endif -%}
    {#- a unit test gives rows of the chain's start, whatever the fix's place in the chain -#}
    {%- if model.get('tested_node_unique_id') -%} {{ fix_chain_start() }} {%- else -%} {{ fix_chain_input(name) }} {%- endif -%}
{%- endmacro %}

{% macro fix_chain_output() -%}
    {%- set fixes = fix_chain() -%}
    {%- if fixes | length == 0 -%} {{ fix_chain_start() }} {%- else -%} {{ ref(fixes[-1]) }} {%- endif -%}
{%- endmacro %}

{% macro fix_chain_column_names() -%}
    {#- The chain's columns (those of its start), read from the warehouse when dbt executes. -#}
    {%- if not execute -%} {{ return([]) }} {%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(fix_chain_start()) -%}
    {{ return(columns | map(attribute='name') | list) }}
{%- endmacro %}

{% macro fix_changed_columns(after, before, columns) -%}
    {#- The names of `columns` whose values differ between two aligned rows, as a list. -#}
    {%- set items = [] -%}
    {%- for column in columns if column != 'replay_key' -%}
        {%- do items.append("case when " ~ after ~ "." ~ column ~ " is distinct from " ~ before ~ "."
            ~ column ~ " then '" ~ column ~ "' end") -%}
    {%- endfor -%}
    {{ list_where(list_of(items), 'name', 'name is not null') }}
{%- endmacro %}

{% macro fix_row_hash(columns) -%}
    {#- A 64-bit hash of a row's `columns` (replay_key aside), null-safe: a changed row's
        hash differs but for a collision (odds about 2^-64). -#}
    {{ row_hash(columns | reject('equalto', 'replay_key') | list) }}
{%- endmacro %}

{% macro fix_chain_suspects() -%}
    {#- The fixes whose output differs from their input in row count, or in the sum of a
        hash of (replay_key, user_key, timestamp_unixtime_ms): those that may break the
        chain's rules. Every fix while dbt only parses or compiles. -#}
    {%- set fixes = fix_chain() -%}
    {%- if not execute or fixes | length == 0 -%} {{ return(fixes) }} {%- endif -%}
    {%- set steps = [fix_chain_start()] -%}
    {%- for fix in fixes -%} {%- do steps.append(ref(fix)) -%} {%- endfor -%}
    {%- set summaries -%}
        {%- for step in steps -%}
        select {{ loop.index0 }} as position, count(*) as row_count,
            cast(sum(cast({{ row_hash(['replay_key', 'user_key', 'timestamp_unixtime_ms']) }} as decimal(38, 0))) as string) as hash_sum
        from {{ step }}
        {% if not loop.last %}union all {% endif -%}
        {%- endfor -%}
    {%- endset -%}
    {%- set rows = run_query('select * from (' ~ summaries ~ ') order by position').rows -%}
    {%- set suspects = [] -%}
    {%- for fix in fixes -%}
        {%- set before, after = rows[loop.index0], rows[loop.index] -%}
        {%- if before['row_count'] != after['row_count'] or before['hash_sum'] != after['hash_sum'] -%}
            {%- do suspects.append(fix) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(suspects) }}
{%- endmacro %}
