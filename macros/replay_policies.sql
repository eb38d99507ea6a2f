{% macro reference_time_ms() -%}
    {#- Unix ms that event ages are measured from: var replay_reference_time_ms, else now. -#}
    {%- set fixed = var('replay_reference_time_ms', none) -%}
    {%- if fixed is none -%} epoch_ms(now()::timestamp) {%- else -%} cast({{ fixed }} as bigint) {%- endif -%}
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
        case when {{ plan_id_column }} is not null then json_object('data_plan', json_object(
            'plan_id', {{ plan_id_column }}, 'plan_version', {{ plan_version_column }}
        )) end
    {%- elif policy == 'drop' -%}
        cast(null as json)
    {%- elif policy == 'set' -%}
        {%- set override = var('data_plan_override', {}) -%}
        {%- if not override.get('plan_id') -%}
            {{ exceptions.raise_compiler_error("data_plan_policy 'set' needs var data_plan_override: {plan_id: ..., plan_version: ...}") }}
        {%- endif -%}
        json_object('data_plan', json_object(
            'plan_id', '{{ override.plan_id }}',
            'plan_version', {{ override.plan_version if override.plan_version is not none else 'null' }}
        ))
    {%- else -%}
        {{ exceptions.raise_compiler_error("var data_plan_policy must be keep, drop or set, not '" ~ policy ~ "'") }}
    {%- endif -%}
{%- endmacro %}

{% macro data_plan_note(plan_id_column, plan_version_column) -%}
    {%- set policy = var('data_plan_policy', 'keep') -%}
    {%- if policy == 'keep' -%}
        case when {{ plan_id_column }} is not null then
            'keeps plan ' || {{ plan_id_column }} || ' v' || coalesce({{ plan_version_column }}::varchar, '?')
            || ': may be blocked again unless that plan version now allows the data'
        end
    {%- elif policy == 'drop' -%}
        'data plan dropped'
    {%- else -%}
        'data plan set to {{ var("data_plan_override").plan_id }} v{{ var("data_plan_override").plan_version }}'
    {%- endif -%}
{%- endmacro %}
