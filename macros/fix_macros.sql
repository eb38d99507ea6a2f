{#
    The fix toolkit. Each macro returns items for `select * replace (...)` in a fix model:

        fixed as (
            select
                * replace (
                    {{ rename_event('Chekout Complete', 'Checkout Complete') }}
                ),
            from events
        )

    `where` (optional unless said otherwise) is a SQL predicate on the chain's columns that
    limits the rows a macro changes; rows it does not select keep every value. Attribute
    names may contain any character. Two macros that change the same column go in two
    CTEs, one after the other. See docs/fixes.md.
#}

{% macro rename_event(old_name, new_name, where=none) -%}
    {#- event_name `old_name` becomes `new_name`. -#}
    case
        when event_name = {{ fix_sql_string(old_name) }}{{ fix_and(where) }}
            then {{ fix_sql_string(new_name) }}
        else event_name
    end as event_name
{%- endmacro %}

{% macro set_custom_event_type(custom_event_type, where) -%}
    {#- custom_event_type of the custom events matching `where` (required). -#}
    {%- set allowed = custom_event_types() -%}
    {%- if allowed and custom_event_type not in allowed -%}
        {{ exceptions.raise_compiler_error(
            "set_custom_event_type: '" ~ custom_event_type ~ "' is not a custom_event_type; use one of "
            ~ allowed | join(', ')) }}
    {%- endif -%}
    case
        when event_type = 'custom_event' and ({{ where }})
            then {{ fix_sql_string(custom_event_type) }}
        else custom_event_type
    end as custom_event_type
{%- endmacro %}

{% macro custom_event_types() -%}
    {#-
        The custom_event_type values (seed events_api_custom_event_types), read from the
        warehouse when dbt executes; an empty list when the seed is not loaded yet (a
        compile before any build) and in a unit test (whose inputs are only the chain's
        rows), so the check runs at build time and in `loader lint`.
    -#}
    {%- if model.get('tested_node_unique_id') -%} {{ return([]) }} {%- endif -%}
    {%- set seed = ref('events_api_custom_event_types') -%}
    {%- if not execute or adapter.get_relation(seed.database, seed.schema, seed.identifier) is none -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set result = run_query('select custom_event_type from ' ~ seed ~ ' order by custom_event_type') -%}
    {{ return(result.columns[0].values() | list) }}
{%- endmacro %}

{% macro skip_events(where, reason) -%}
    {#-
        Events matching `where` are not replayed: skip_reason 'fix:<fix model>: <reason>'.
        The row stays (every blocked event keeps an outcome); an event already skipped
        keeps its first reason.
    -#}
    case
        when skip_reason is null and ({{ where }})
            then {{ fix_sql_string('fix:' ~ fix_model_name() ~ ': ' ~ reason) }}
        else skip_reason
    end as skip_reason
{%- endmacro %}

{% macro rename_attribute(old_name, new_name, where=none) -%}
    {#- Custom attribute `old_name` becomes `new_name` (replacing a `new_name` already there). -#}
    case
        when {{ fix_json_member('custom_attributes', old_name) }} is not null{{ fix_and(where) }}
            then {{ fix_json_set(
                fix_json_remove('custom_attributes', [old_name]),
                new_name,
                fix_json_member('custom_attributes', old_name)) }}
        else custom_attributes
    end as custom_attributes
{%- endmacro %}

{% macro drop_attributes(names, where=none) -%}
    {#- Removes custom attributes `names` (one name or a list), e.g. PII before a replay. -#}
    {%- set names = fix_names(names) -%}
    case
        when (
            {%- for name in names %}
            {{ fix_json_member('custom_attributes', name) }} is not null{% if not loop.last %} or{% endif %}
            {%- endfor %}
        ){{ fix_and(where) }}
            then {{ fix_json_remove('custom_attributes', names) }}
        else custom_attributes
    end as custom_attributes
{%- endmacro %}

{% macro fix_cast_value(name, to) -%}
    {#- The attribute `name` converted to JSON type `to`; null when it does not convert. -#}
    {%- set text = fix_json_member_text('custom_attributes', name) -%}
    {%- set kind = json_kind(fix_json_member('custom_attributes', name)) -%}
    {%- set spark = target.type == 'spark' -%}
    {%- if to == 'string' -%}
        case when {{ kind }} not in ('VARCHAR', 'OBJECT', 'ARRAY', 'NULL') then
            {{ 'to_json(cast(' ~ text ~ ' as variant))' if spark else 'to_json(' ~ text ~ ')' }} end
    {%- elif to == 'integer' -%}
        case when {{ kind }} = 'VARCHAR' and {{ regexp_full('trim(' ~ text ~ ')', '-?(0|[1-9][0-9]*)') }}
            then {{ 'trim(' ~ text ~ ')' if spark else 'json(trim(' ~ text ~ '))' }} end
    {%- elif to == 'number' -%}
        case when {{ kind }} = 'VARCHAR'
                and {{ regexp_full('trim(' ~ text ~ ')', '-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?') }}
            then {{ 'trim(' ~ text ~ ')' if spark else 'json(trim(' ~ text ~ '))' }} end
    {%- elif to == 'boolean' -%}
        case
            when {{ kind }} in ('BOOLEAN', 'OBJECT', 'ARRAY', 'NULL') then null
            when lower(trim({{ text }})) in ('true', '1') then {{ fix_json_literal(true) }}
            when lower(trim({{ text }})) in ('false', '0') then {{ fix_json_literal(false) }}
        end
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "cast_attribute: 'to' must be string, integer, number or boolean, not '" ~ to ~ "'") }}
    {%- endif -%}
{%- endmacro %}

{% macro cast_attribute(name, to, where=none) -%}
    {#-
        Custom attribute `name` as JSON type `to`: 'string' (numbers and booleans become
        their exact text), 'integer' or 'number' (from text holding one, digits kept
        exactly), 'boolean' (from true/false/1/0). A value that does not convert, or
        already has the type, is left as it is.
    -#}
    {%- set converted = fix_cast_value(name, to) -%}
    case
        when ({{ converted }}) is not null{{ fix_and(where) }}
            then {{ fix_json_set('custom_attributes', name, converted) }}
        else custom_attributes
    end as custom_attributes
{%- endmacro %}

{% macro map_attribute(name, values=none, expression=none, where=none) -%}
    {#-
        New values for custom attribute `name`. Either `values`, a mapping from the old
        value's text to the new value ({'yes': true, 'gold': 'Gold'}: unmapped values are
        left as they are), or `expression`, SQL computing the new value from `value`, the
        old value as exact text ("upper(value)", "value::hugeint * 1000"); a SQL null
        result leaves the value as it is. A JSON-typed result is kept as is, other types
        go through to_json (strings stay strings, integers and decimals keep every digit).
    -#}
    {%- set text = fix_json_member_text('custom_attributes', name) -%}
    {%- if values is not none and expression is none -%}
        {%- set mapped -%}
            case {{ text }}
                {%- for old, new in values.items() %}
                when {{ fix_sql_string(old) }} then {{ fix_json_literal(new) }}
                {%- endfor %}
            end
        {%- endset -%}
    {%- elif expression is not none and values is none -%}
        {%- set mapped -%}
            {%- if target.type == 'spark' -%}
            transform(array({{ text }}), value -> to_json(cast(({{ expression }}) as variant)))[0]
            {%- else -%}
            list_transform([{{ text }}], lambda value: to_json({{ expression }}))[1]
            {%- endif -%}
        {%- endset -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error("map_attribute: give either values or expression") }}
    {%- endif -%}
    case
        when {{ fix_json_member('custom_attributes', name) }} is not null
            and ({{ mapped }}) is not null{{ fix_and(where) }}
            then {{ fix_json_set('custom_attributes', name, mapped) }}
        else custom_attributes
    end as custom_attributes
{%- endmacro %}

{% macro move_attribute_to_user_attributes(name, to=none, where=none, copy=false) -%}
    {#-
        Custom attribute `name` becomes user attribute `to` (default: the same name), sent
        with the event's replay batch. copy=true keeps it on the event too.
    -#}
    {%- set condition = fix_json_member('custom_attributes', name) ~ ' is not null' ~ fix_and(where) -%}
    case
        when {{ condition }}
            then {{ fix_json_remove('custom_attributes', [name]) if not copy else 'custom_attributes' }}
        else custom_attributes
    end as custom_attributes,
    case
        when {{ condition }}
            then {{ fix_json_set('user_attributes', to or name, fix_json_member('custom_attributes', name)) }}
        else user_attributes
    end as user_attributes
{%- endmacro %}

{% macro move_user_attribute_to_event(name, to=none, where=none, copy=false) -%}
    {#-
        User attribute `name` (of the chain's user_attributes, the ones sent with the
        event's batch) becomes custom attribute `to` (default: the same name). copy=true
        keeps it as a user attribute too.
    -#}
    {%- set condition = fix_json_member('user_attributes', name) ~ ' is not null' ~ fix_and(where) -%}
    case
        when {{ condition }}
            then {{ fix_json_set('custom_attributes', to or name, fix_json_member('user_attributes', name)) }}
        else custom_attributes
    end as custom_attributes,
    case
        when {{ condition }}
            then {{ "nullif(" ~ fix_json_remove('user_attributes', [name]) ~ ", " ~ fix_json_literal({}) ~ ")" if not copy else 'user_attributes' }}
        else user_attributes
    end as user_attributes
{%- endmacro %}
