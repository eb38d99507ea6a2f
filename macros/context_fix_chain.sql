{#
    The context fix chain: fixes to the batch-level context (environment, identities,
    MPID, device ids, data plan) that event fixes cannot reach. var('context_fixes') lists
    context fix models (models/context_fixes/) in the order they apply; each selects from
    {{ context_fix_input() }}: the previous context fix, or the staged source batches
    (one row per batch) for the first. int_batches__replay_context reads the chain's end,
    so user_key, identity_risk and batch_context (hence packing) follow the fixed context.
    A context fix may change the user key's inputs (mpid, user_identities, device_info,
    mp_deviceid) only with `meta: {changes_identity: true}`; test
    assert_context_fixes_keep_keys enforces it and that every batch passes through once.
#}

{% macro context_fix_chain() -%}
    {%- set fixes = var('context_fixes', []) or [] -%}
    {%- if not var_is_name_list(fixes) -%}
        {{ exceptions.raise_compiler_error(var_problem('context_fixes', fixes, 'fix_names')) }}
    {%- endif -%}
    {{ return(fixes) }}
{%- endmacro %}

{% macro context_fix_chain_start() -%}
    {{ return(ref('stg_quarantine__batches')) }}
{%- endmacro %}

{% macro context_fix_chain_input(fix) -%}
    {%- set fixes = context_fix_chain() -%}
    {%- set position = fixes.index(fix) -%}
    {{ return(context_fix_chain_start() if position == 0 else ref(fixes[position - 1])) }}
{%- endmacro %}

{% macro context_fix_input() -%}
    {%- set name = fix_model_name() -%}
    {%- if name not in context_fix_chain() -%}
        {{ exceptions.raise_compiler_error(
            "Context fix model '" ~ name ~ "' is not in var 'context_fixes' in dbt_project.yml. "
            ~ "Add it to the list where it belongs in the chain.") }}
    {%- endif -%}
    {%- if model.get('tested_node_unique_id') -%} {{ context_fix_chain_start() }} {%- else -%} {{ context_fix_chain_input(name) }} {%- endif -%}
{%- endmacro %}

{% macro context_fix_chain_output() -%}
    {%- set fixes = context_fix_chain() -%}
    {%- if fixes | length == 0 -%} {{ context_fix_chain_start() }} {%- else -%} {{ ref(fixes[-1]) }} {%- endif -%}
{%- endmacro %}

{% macro context_fix_column_names() -%}
    {%- if not execute -%} {{ return([]) }} {%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(context_fix_chain_start()) -%}
    {{ return(columns | map(attribute='name') | list) }}
{%- endmacro %}

{% macro context_fix_identity_columns() -%}
    {#- The user key's inputs (see int_batches__replay_context). -#}
    {{ return(['mpid', 'invalid_mpid', 'user_identities', 'device_info', 'mp_deviceid']) }}
{%- endmacro %}

{% macro context_fix_changes_identity(fix) -%}
    {#- True when context fix `fix` declares meta changes_identity: true. -#}
    {%- if not execute -%} {{ return(false) }} {%- endif -%}
    {%- set node = graph.nodes.get('model.' ~ project_name ~ '.' ~ fix) -%}
    {%- if node is none -%} {{ return(false) }} {%- endif -%}
    {%- set meta = node.config.get('meta') or node.get('meta') or {} -%}
    {{ return(meta.get('changes_identity') is sameas true) }}
{%- endmacro %}
