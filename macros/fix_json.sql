{#
    SQL building blocks for the fix macros (fix_macros.sql). JSON values are never cast
    to DOUBLE: integers of any size keep every digit; text stays text.
#}

{% macro fix_sql_string(value) -%}
    {#- A Python/Jinja value as a SQL string literal. -#}
    '{{ (value ~ "") | replace("'", "''") }}'
{%- endmacro %}

{% macro fix_json_literal(value) -%}
    {#- A Jinja value (string, integer, boolean, none, list, mapping) as a SQL JSON literal. -#}
    {{ fix_sql_string(tojson(value)) }}{{ '::json' if target.type != 'spark' }}
{%- endmacro %}

{% macro fix_json_pointer(name) -%}
    {#- The JSON Pointer of a top-level member, as a SQL literal (any characters). -#}
    {%- set escaped = (name ~ '') | replace('~', '~0') | replace('/', '~1') -%}
    {{ fix_sql_string('/' ~ escaped) }}
{%- endmacro %}

{% macro fix_json_member(object_sql, name) -%}
    {#- The member `name` of a JSON object: JSON (JSON null included), SQL null when absent. -#}
    {%- if target.type == 'spark' -%}
    to_json(from_json({{ object_sql }}, 'map<string,variant>')[{{ fix_sql_string(name) }}])
    {%- else -%}
    json_extract({{ object_sql }}, {{ fix_json_pointer(name) }})
    {%- endif -%}
{%- endmacro %}

{% macro fix_json_member_text(object_sql, name) -%}
    {#- The member as exact text: strings unquoted, numbers with every digit. -#}
    {%- if target.type == 'spark' -%}
    cast(from_json({{ object_sql }}, 'map<string,variant>')[{{ fix_sql_string(name) }}] as string)
    {%- else -%}
    json_extract_string({{ object_sql }}, {{ fix_json_pointer(name) }})
    {%- endif -%}
{%- endmacro %}

{% macro fix_json_set(object_sql, name, value_sql) -%}
    {{ return(adapter.dispatch('fix_json_set', 'mparticle_backfill')(object_sql, name, value_sql)) }}
{%- endmacro %}

{% macro spark__fix_json_set(object_sql, name, value_sql) -%}
    {#- JSON text: the object's members but `name`, then `name` set to `value_sql`. -#}
    to_json(map_concat(
        map_filter(
            from_json(coalesce({{ object_sql }}, '{}'), 'map<string,variant>'),
            (k, v) -> k <> {{ fix_sql_string(name) }}
        ),
        map({{ fix_sql_string(name) }}, parse_json({{ value_sql }}))
    ))
{%- endmacro %}

{% macro duckdb__fix_json_set(object_sql, name, value_sql) -%}
    {#-
        `object_sql` (null counts as {}) with member `name` set to the JSON `value_sql`.
        Scalars and arrays go through json_merge_patch; JSON null and objects, which a
        merge patch would delete or merge, through a map so they are kept as they are.
    -#}
    case
        when json_type({{ value_sql }}) in ('OBJECT', 'NULL') then to_json(map_from_entries(
            list_filter(
                map_entries(json_transform(coalesce({{ object_sql }}, '{}'::json), '"MAP(VARCHAR, JSON)"')),
                lambda entry: entry.key <> {{ fix_sql_string(name) }}
            ) || [{'key': {{ fix_sql_string(name) }}, 'value': {{ value_sql }}}]
        ))
        else json_merge_patch(
            coalesce({{ object_sql }}, '{}'::json),
            json_object({{ fix_sql_string(name) }}, {{ value_sql }})
        )
    end
{%- endmacro %}

{% macro default__fix_json_set(object_sql, name, value_sql) -%}
    {{ unsupported_engine('fix_json_set') }}
{%- endmacro %}

{% macro fix_json_remove(object_sql, names) -%}
    {#- `object_sql` without the members `names` (a list). -#}
    {%- if target.type == 'spark' -%}
    to_json(map_filter(from_json({{ object_sql }}, 'map<string,variant>'), (k, v) -> k not in (
        {%- for name in names %}{{ fix_sql_string(name) }}{% if not loop.last %}, {% endif %}{% endfor -%}
    )))
    {%- else -%}
    json_merge_patch({{ object_sql }}, json_object(
        {%- for name in names %}{{ fix_sql_string(name) }}, null{% if not loop.last %}, {% endif %}{% endfor -%}
    ))
    {%- endif -%}
{%- endmacro %}

{% macro fix_and(where) -%}
    {#- ` and (<where>)`, or nothing when there is no predicate. -#}
    {%- if where %} and ({{ where }}){% endif -%}
{%- endmacro %}

{% macro fix_names(names) -%}
    {#- One name or a list of names, as a list. -#}
    {{ return([names] if names is string else names | list) }}
{%- endmacro %}
