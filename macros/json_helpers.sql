{% macro json_get(json_expr, path) -%}
    {#- The JSON value at `path`, or SQL null when it is missing or JSON null. -#}
    nullif(json_extract({{ json_expr }}, '{{ path }}'), 'null'::json)
{%- endmacro %}

{% macro json_text(json_expr, path) -%}
    {#- The value at `path` as exact text (int64 numbers keep every digit), null when absent. -#}
    nullif(json_extract_string({{ json_expr }}, '{{ path }}'), '')
{%- endmacro %}

{% macro json_object_or_empty(json_expr) -%}
    {#- `json_expr` when it is a JSON object, else '{}'. -#}
    case when json_type({{ json_expr }}) = 'OBJECT' then {{ json_expr }} else '{}'::json end
{%- endmacro %}

{% macro json_drop_nulls(json_expr) -%}
    {#- Removes members whose value is null (RFC 7396 merge-patch semantics). -#}
    json_merge_patch('{}', {{ json_expr }})
{%- endmacro %}

{% macro json_member(json_expr, key_expr) -%}
    {#- The member of a JSON object named by a SQL expression (any characters, via JSON Pointer). -#}
    json_extract({{ json_expr }}, '/' || replace(replace({{ key_expr }}, '~', '~0'), '/', '~1'))
{%- endmacro %}

{% macro sql_string_list(values) -%}
    {#- A Jinja list of strings as a SQL varchar[] literal. -#}
    [{% for value in values %}{{ fix_sql_string(value) }}{{ ', ' if not loop.last }}{% endfor %}]::varchar[]
{%- endmacro %}

{% macro is_int64_text(text_expr) -%}
    {#- True when `text_expr` is a signed 64-bit integer written as plain digits, false when it
        is something else, null when it is null or empty. No float on the way. -#}
    case
        when nullif({{ text_expr }}, '') is null then null
        else regexp_full_match({{ text_expr }}, '-?[0-9]{1,19}')
            and try_cast({{ text_expr }} as bigint) is not null
    end
{%- endmacro %}

{% macro unix_ms_from_text(text_expr) -%}
    {#- A Unix-ms time written as plain digits, as an exact BIGINT; null when it is missing, not
        an integer (a fraction or an exponent is never rounded) or outside
        1970-01-01..9999-12-31 (253402300799999), where date arithmetic cannot overflow. -#}
    case
        when regexp_full_match({{ text_expr }}, '[0-9]{1,15}')
            and {{ text_expr }}::bigint <= 253402300799999
            then {{ text_expr }}::bigint
    end
{%- endmacro %}
