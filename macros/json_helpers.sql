{#
    JSON helpers, one per engine (adapter.dispatch): on DuckDB a JSON value is of type JSON;
    on Spark it is JSON text (STRING), read through VARIANT (parse_json, variant_get), which
    keeps int64 numbers exact and a JSON string apart from a number. docs/spark.md.
#}

{% macro json_get(json_expr, path) -%}
    {#- The JSON value at `path`, or SQL null when it is missing or JSON null. -#}
    {{ return(adapter.dispatch('json_get', 'mparticle_backfill')(json_expr, path)) }}
{%- endmacro %}

{% macro duckdb__json_get(json_expr, path) -%}
    nullif(json_extract({{ json_expr }}, '{{ path }}'), 'null'::json)
{%- endmacro %}

{% macro default__json_get(json_expr, path) -%}
    {{ unsupported_engine('json_get') }}
{%- endmacro %}

{% macro spark__json_get(json_expr, path) -%}
    nullif(to_json(try_variant_get(try_parse_json({{ json_expr }}), '{{ path }}')), 'null')
{%- endmacro %}

{% macro json_text(json_expr, path) -%}
    {#- The value at `path` as exact text (int64 numbers keep every digit), null when absent. -#}
    {{ return(adapter.dispatch('json_text', 'mparticle_backfill')(json_expr, path)) }}
{%- endmacro %}

{% macro duckdb__json_text(json_expr, path) -%}
    nullif(json_extract_string({{ json_expr }}, '{{ path }}'), '')
{%- endmacro %}

{% macro default__json_text(json_expr, path) -%}
    {{ unsupported_engine('json_text') }}
{%- endmacro %}

{% macro spark__json_text(json_expr, path) -%}
    nullif(try_variant_get(try_parse_json({{ json_expr }}), '{{ path }}', 'string'), '')
{%- endmacro %}

{% macro json_object_or_empty(json_expr) -%}
    {#- `json_expr` when it is a JSON object, else '{}'. -#}
    {{ return(adapter.dispatch('json_object_or_empty', 'mparticle_backfill')(json_expr)) }}
{%- endmacro %}

{% macro duckdb__json_object_or_empty(json_expr) -%}
    case when json_type({{ json_expr }}) = 'OBJECT' then {{ json_expr }} else '{}'::json end
{%- endmacro %}

{% macro default__json_object_or_empty(json_expr) -%}
    {{ unsupported_engine('json_object_or_empty') }}
{%- endmacro %}

{% macro spark__json_object_or_empty(json_expr) -%}
    case when {{ json_kind(json_expr) }} = 'OBJECT' then {{ json_expr }} else '{}' end
{%- endmacro %}

{% macro json_kind(json_expr) -%}
    {#- The JSON type of a value: OBJECT, ARRAY, VARCHAR, BOOLEAN, NULL or a number type
        (DuckDB: BIGINT, UBIGINT, DOUBLE; Spark: NUMBER). -#}
    {{ return(adapter.dispatch('json_kind', 'mparticle_backfill')(json_expr)) }}
{%- endmacro %}

{% macro duckdb__json_kind(json_expr) -%}
    json_type({{ json_expr }})
{%- endmacro %}

{% macro default__json_kind(json_expr) -%}
    {{ unsupported_engine('json_kind') }}
{%- endmacro %}

{% macro spark__json_kind(json_expr) -%}
    {#- JSON text starts with the mark of its type (valid JSON: it was parsed or built). -#}
    case left(ltrim({{ json_expr }}), 1)
        when '{' then 'OBJECT' when '[' then 'ARRAY' when '"' then 'VARCHAR'
        when 'n' then 'NULL' when 't' then 'BOOLEAN' when 'f' then 'BOOLEAN'
        when '' then null else 'NUMBER'
    end
{%- endmacro %}

{% macro json_drop_nulls(json_expr) -%}
    {#- Removes members whose value is null (RFC 7396 merge-patch semantics). -#}
    {{ return(adapter.dispatch('json_drop_nulls', 'mparticle_backfill')(json_expr)) }}
{%- endmacro %}

{% macro duckdb__json_drop_nulls(json_expr) -%}
    json_merge_patch('{}', {{ json_expr }})
{%- endmacro %}

{% macro default__json_drop_nulls(json_expr) -%}
    {{ unsupported_engine('json_drop_nulls') }}
{%- endmacro %}

{% macro spark__json_drop_nulls(json_expr) -%}
    {#- `json_expr` is SQL for an object from json_object_sql() (top-level members only). -#}
    to_json(map_filter(
        from_json({{ json_expr }}, 'map<string,variant>'), (k, v) -> not is_variant_null(v)
    ))
{%- endmacro %}

{% macro json_member(json_expr, key_expr) -%}
    {#- The member of a JSON object named by a SQL expression (any characters). -#}
    {{ return(adapter.dispatch('json_member', 'mparticle_backfill')(json_expr, key_expr)) }}
{%- endmacro %}

{% macro duckdb__json_member(json_expr, key_expr) -%}
    json_extract({{ json_expr }}, '/' || replace(replace({{ key_expr }}, '~', '~0'), '/', '~1'))
{%- endmacro %}

{% macro default__json_member(json_expr, key_expr) -%}
    {{ unsupported_engine('json_member') }}
{%- endmacro %}

{% macro spark__json_member(json_expr, key_expr) -%}
    to_json(from_json({{ json_expr }}, 'map<string,variant>')[{{ key_expr }}])
{%- endmacro %}

{% macro json_object_sql(pairs) -%}
    {#- A JSON object built from `pairs`, a list of (key, SQL); each SQL is a JSON column
        wrapped in json_parsed() or a SQL scalar wrapped in json_value_sql(). Null members
        are kept as JSON null. -#}
    {{ return(adapter.dispatch('json_object_sql', 'mparticle_backfill')(pairs)) }}
{%- endmacro %}

{% macro duckdb__json_object_sql(pairs) -%}
    json_object({% for key, value in pairs %}'{{ key }}', {{ value }}{{ ', ' if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro default__json_object_sql(pairs) -%}
    {{ unsupported_engine('json_object_sql') }}
{%- endmacro %}

{% macro spark__json_object_sql(pairs) -%}
    to_json(map({% for key, value in pairs %}'{{ key }}', {{ value }}{{ ', ' if not loop.last }}{% endfor %}))
{%- endmacro %}

{% macro json_value_sql(sql_expr) -%}
    {#- A SQL scalar (text, number, boolean) as a member of json_object_sql. -#}
    {{ return(adapter.dispatch('json_value_sql', 'mparticle_backfill')(sql_expr)) }}
{%- endmacro %}

{% macro duckdb__json_value_sql(sql_expr) -%}
    {{ sql_expr }}
{%- endmacro %}

{% macro default__json_value_sql(sql_expr) -%}
    {{ unsupported_engine('json_value_sql') }}
{%- endmacro %}

{% macro spark__json_value_sql(sql_expr) -%}
    cast({{ sql_expr }} as variant)
{%- endmacro %}

{% macro json_parsed(json_expr) -%}
    {#- A JSON column as a member of json_object_sql. -#}
    {{ return(adapter.dispatch('json_parsed', 'mparticle_backfill')(json_expr)) }}
{%- endmacro %}

{% macro duckdb__json_parsed(json_expr) -%}
    {{ json_expr }}
{%- endmacro %}

{% macro default__json_parsed(json_expr) -%}
    {{ unsupported_engine('json_parsed') }}
{%- endmacro %}

{% macro spark__json_parsed(json_expr) -%}
    parse_json({{ json_expr }})
{%- endmacro %}

{% macro json_without_keys(json_expr, keys_expr) -%}
    {#- A JSON object without the members named in `keys_expr` (SQL for a list of text);
        the object unchanged when the list is null. Values keep their exact JSON text. -#}
    {{ return(adapter.dispatch('json_without_keys', 'mparticle_backfill')(json_expr, keys_expr)) }}
{%- endmacro %}

{% macro duckdb__json_without_keys(json_expr, keys_expr) -%}
    case when {{ keys_expr }} is null then {{ json_expr }} else to_json(map_from_entries(list_filter(
        map_entries(json_transform({{ json_expr }}, '"MAP(VARCHAR, JSON)"')),
        lambda entry: not list_contains({{ keys_expr }}, entry.key)
    ))) end
{%- endmacro %}

{% macro default__json_without_keys(json_expr, keys_expr) -%}
    {{ unsupported_engine('json_without_keys') }}
{%- endmacro %}

{% macro spark__json_without_keys(json_expr, keys_expr) -%}
    case when {{ keys_expr }} is null then {{ json_expr }} else to_json(map_filter(
        from_json({{ json_expr }}, 'map<string,variant>'),
        (k, v) -> not array_contains({{ keys_expr }}, k)
    )) end
{%- endmacro %}

{% macro sql_string_list(values) -%}
    {#- A Jinja list of strings as a SQL list of text literal. -#}
    {{ return(adapter.dispatch('sql_string_list', 'mparticle_backfill')(values)) }}
{%- endmacro %}

{% macro duckdb__sql_string_list(values) -%}
    [{% for value in values %}{{ fix_sql_string(value) }}{{ ', ' if not loop.last }}{% endfor %}]::varchar[]
{%- endmacro %}

{% macro default__sql_string_list(values) -%}
    {{ unsupported_engine('sql_string_list') }}
{%- endmacro %}

{% macro spark__sql_string_list(values) -%}
    cast(array({% for value in values %}{{ fix_sql_string(value) }}{{ ', ' if not loop.last }}{% endfor %}) as array<string>)
{%- endmacro %}

{% macro is_int64_text(text_expr) -%}
    {#- True when `text_expr` is a signed 64-bit integer written as plain digits, false when it
        is something else, null when it is null or empty. No float on the way. -#}
    case
        when nullif({{ text_expr }}, '') is null then null
        else {{ regexp_full(text_expr, '-?[0-9]{1,19}') }}
            and try_cast({{ text_expr }} as bigint) is not null
    end
{%- endmacro %}

{% macro unix_ms_from_text(text_expr) -%}
    {#- A Unix-ms time written as plain digits, as an exact BIGINT; null when it is missing, not
        an integer (a fraction or an exponent is never rounded) or outside
        1970-01-01..9999-12-31 (253402300799999), where date arithmetic cannot overflow. -#}
    case
        when {{ regexp_full(text_expr, '[0-9]{1,15}') }}
            and cast({{ text_expr }} as bigint) <= 253402300799999
            then cast({{ text_expr }} as bigint)
    end
{%- endmacro %}

{% macro json_object_agg(key_expr, json_expr) -%}
    {#- Aggregate: a JSON object of a group's keys (unique) and JSON values, by key. -#}
    {{ return(adapter.dispatch('json_object_agg', 'mparticle_backfill')(key_expr, json_expr)) }}
{%- endmacro %}

{% macro duckdb__json_object_agg(key_expr, json_expr) -%}
    to_json(map_from_entries(list(
        {'k': {{ key_expr }}, 'v': {{ json_expr }}} order by {{ key_expr }}
    )))
{%- endmacro %}

{% macro default__json_object_agg(key_expr, json_expr) -%}
    {{ unsupported_engine('json_object_agg') }}
{%- endmacro %}

{% macro spark__json_object_agg(key_expr, json_expr) -%}
    to_json(map_from_entries(collect_list(struct({{ key_expr }}, parse_json({{ json_expr }})))))
{%- endmacro %}

{% macro json_keep_nested_nulls(object_expr, key, member_expr) -%}
    {#-
        `object_expr` (from json_drop_nulls) with its member `key` exactly as `member_expr`
        was, nulls inside it included: merge-patch semantics drop nulls at every depth.
        Rows without a nested null keep the same text.
    -#}
    {{ return(adapter.dispatch('json_keep_nested_nulls', 'mparticle_backfill')(object_expr, key, member_expr)) }}
{%- endmacro %}

{% macro duckdb__json_keep_nested_nulls(object_expr, key, member_expr) -%}
    case
        when {{ member_expr }} is null
            or json_merge_patch('{}', {{ member_expr }})::varchar = json({{ member_expr }})::varchar
            then {{ object_expr }}
        else replace(
            ({{ object_expr }})::varchar,
            '"{{ key }}":' || json_merge_patch('{}', {{ member_expr }})::varchar,
            '"{{ key }}":' || json({{ member_expr }})::varchar
        )::json
    end
{%- endmacro %}

{% macro default__json_keep_nested_nulls(object_expr, key, member_expr) -%}
    {{ unsupported_engine('json_keep_nested_nulls') }}
{%- endmacro %}

{% macro spark__json_keep_nested_nulls(object_expr, key, member_expr) -%}
    {#- spark__json_drop_nulls drops top-level members only: nested nulls are still there -#}
    {{ object_expr }}
{%- endmacro %}
