{% macro reference_time_ms() -%}
    {#- Unix ms that event ages are measured from: var replay_reference_time_ms, else now. -#}
    {%- set fixed = var('replay_reference_time_ms', none) -%}
    {%- if fixed is none -%} {{ now_unix_ms() }} {%- else -%} cast({{ fixed }} as bigint) {%- endif -%}
{%- endmacro %}

{% macro future_tolerance_ms() -%}
    {#- How far past the reference time an event may be and still replay: 1 day, for clocks
        that run ahead or local times written as UTC (up to 14 hours). Later events are
        skipped with reason timestamp_in_future. -#}
    86400000
{%- endmacro %}

{% macro data_plan_context(plan_id_column, plan_version_column) -%}
    {#- The `context` object sent with a replay batch, per var data_plan_policy. -#}
    {%- set policy = var('data_plan_policy', 'keep') -%}
    {%- if policy == 'keep' -%}
        case when {{ plan_id_column }} is not null then {{ json_object_sql([('data_plan', json_parsed(json_object_sql([
            ('plan_id', json_value_sql(plan_id_column)), ('plan_version', json_value_sql(plan_version_column))
        ])))]) }} end
    {%- elif policy == 'drop' -%}
        cast(null as {{ json_type_name() }})
    {%- elif policy == 'set' -%}
        {%- set override = var('data_plan_override', {}) -%}
        {%- if not override.get('plan_id') -%}
            {{ exceptions.raise_compiler_error("data_plan_policy 'set' needs var data_plan_override: {plan_id: ..., plan_version: ...}") }}
        {%- endif -%}
        {{ json_object_sql([('data_plan', json_parsed(json_object_sql([
            ('plan_id', json_value_sql("'" ~ override.plan_id ~ "'")),
            ('plan_version', json_value_sql(override.plan_version if override.plan_version is not none else 'cast(null as bigint)'))
        ])))]) }}
    {%- else -%}
        {{ exceptions.raise_compiler_error("var data_plan_policy must be keep, drop or set, not '" ~ policy ~ "'") }}
    {%- endif -%}
{%- endmacro %}

{% macro data_plan_note(plan_id_column, plan_version_column) -%}
    {%- set policy = var('data_plan_policy', 'keep') -%}
    {%- if policy == 'keep' -%}
        case when {{ plan_id_column }} is not null then
            'keeps plan ' || {{ plan_id_column }} || ' v' || coalesce(cast({{ plan_version_column }} as string), '?')
            || ': may be blocked again unless that plan version now allows the data'
        end
    {%- elif policy == 'drop' -%}
        'data plan dropped'
    {%- else -%}
        'data plan set to {{ var("data_plan_override").plan_id }} v{{ var("data_plan_override").plan_version }}'
    {%- endif -%}
{%- endmacro %}
