{#
    SQL that DuckDB and Spark write differently, one macro per construct (adapter.dispatch in
    this project's namespace: duckdb__, spark__, and a default__ that fails; macros/engines.sql).
    docs/spark.md lists where the engines differ.
#}

{% macro regexp_full(text_expr, pattern) -%}
    {#- True when the whole of `text_expr` matches `pattern` (a literal without quotes). -#}
    {{ return(adapter.dispatch('regexp_full', 'mparticle_backfill')(text_expr, pattern)) }}
{%- endmacro %}

{% macro duckdb__regexp_full(text_expr, pattern) -%}
    regexp_full_match({{ text_expr }}, '{{ pattern }}')
{%- endmacro %}

{% macro default__regexp_full(text_expr, pattern) -%}
    {{ unsupported_engine('regexp_full') }}
{%- endmacro %}

{% macro spark__regexp_full(text_expr, pattern) -%}
    regexp_like({{ text_expr }}, '^(?:{{ pattern | replace("\\", "\\\\") }})$')
{%- endmacro %}

{% macro list_map(list_expr, arg, body) -%}
    {#- Each item of a list (named `arg` in `body`) replaced by `body`. -#}
    {{ return(adapter.dispatch('list_map', 'mparticle_backfill')(list_expr, arg, body)) }}
{%- endmacro %}

{% macro duckdb__list_map(list_expr, arg, body) -%}
    list_transform({{ list_expr }}, lambda {{ arg }}: {{ body }})
{%- endmacro %}

{% macro default__list_map(list_expr, arg, body) -%}
    {{ unsupported_engine('list_map') }}
{%- endmacro %}

{% macro spark__list_map(list_expr, arg, body) -%}
    transform({{ list_expr }}, {{ arg }} -> {{ body }})
{%- endmacro %}

{% macro list_where(list_expr, arg, condition) -%}
    {#- The items of a list (named `arg` in `condition`) for which `condition` holds. -#}
    {{ return(adapter.dispatch('list_where', 'mparticle_backfill')(list_expr, arg, condition)) }}
{%- endmacro %}

{% macro duckdb__list_where(list_expr, arg, condition) -%}
    list_filter({{ list_expr }}, lambda {{ arg }}: {{ condition }})
{%- endmacro %}

{% macro default__list_where(list_expr, arg, condition) -%}
    {{ unsupported_engine('list_where') }}
{%- endmacro %}

{% macro spark__list_where(list_expr, arg, condition) -%}
    filter({{ list_expr }}, {{ arg }} -> {{ condition }})
{%- endmacro %}

{% macro list_of(items) -%}
    {#- A list literal of SQL expressions `items` (a Jinja list). -#}
    {{ return(adapter.dispatch('list_of', 'mparticle_backfill')(items)) }}
{%- endmacro %}

{% macro duckdb__list_of(items) -%}
    [{{ items | join(', ') }}]
{%- endmacro %}

{% macro default__list_of(items) -%}
    {{ unsupported_engine('list_of') }}
{%- endmacro %}

{% macro spark__list_of(items) -%}
    array({{ items | join(', ') }})
{%- endmacro %}

{% macro empty_text_list() -%}
    {{ return(adapter.dispatch('empty_text_list', 'mparticle_backfill')()) }}
{%- endmacro %}

{% macro duckdb__empty_text_list() -%}
    []::varchar[]
{%- endmacro %}

{% macro default__empty_text_list() -%}
    {{ unsupported_engine('empty_text_list') }}
{%- endmacro %}

{% macro spark__empty_text_list() -%}
    cast(array() as array<string>)
{%- endmacro %}

{% macro text_list_type() -%}
    {{ return(adapter.dispatch('text_list_type', 'mparticle_backfill')()) }}
{%- endmacro %}

{% macro duckdb__text_list_type() -%} varchar[] {%- endmacro %}

{% macro default__text_list_type() -%}
    {{ unsupported_engine('text_list_type') }}
{%- endmacro %}

{% macro spark__text_list_type() -%} array<string> {%- endmacro %}

{% macro json_type_name() -%}
    {#- The SQL type of a JSON column. -#}
    {{ return(adapter.dispatch('json_type_name', 'mparticle_backfill')()) }}
{%- endmacro %}

{% macro duckdb__json_type_name() -%} json {%- endmacro %}

{% macro default__json_type_name() -%}
    {{ unsupported_engine('json_type_name') }}
{%- endmacro %}

{% macro spark__json_type_name() -%} string {%- endmacro %}

{% macro stop_query(message_sql) -%}
    {#- Fails the query with a message (SQL text) when evaluated. -#}
    {{ return(adapter.dispatch('stop_query', 'mparticle_backfill')(message_sql)) }}
{%- endmacro %}

{% macro duckdb__stop_query(message_sql) -%}
    error({{ message_sql }})
{%- endmacro %}

{% macro default__stop_query(message_sql) -%}
    {{ unsupported_engine('stop_query') }}
{%- endmacro %}

{% macro spark__stop_query(message_sql) -%}
    raise_error({{ message_sql }})
{%- endmacro %}

{% macro row_hash(columns_sql) -%}
    {#- A 64-bit hash of SQL expressions (a Jinja list), null-safe. -#}
    {{ return(adapter.dispatch('row_hash', 'mparticle_backfill')(columns_sql)) }}
{%- endmacro %}

{% macro duckdb__row_hash(columns_sql) -%}
    hash({{ columns_sql | join(', ') }})
{%- endmacro %}

{% macro default__row_hash(columns_sql) -%}
    {{ unsupported_engine('row_hash') }}
{%- endmacro %}

{% macro spark__row_hash(columns_sql) -%}
    {#- xxhash64 skips nulls: a null flag per column keeps (null, 'a') apart from ('a', null) -#}
    xxhash64({% for column in columns_sql %}{{ column }}, isnull({{ column }}){{ ', ' if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro timestamp_from_unix_ms(ms_expr) -%}
    {{ return(adapter.dispatch('timestamp_from_unix_ms', 'mparticle_backfill')(ms_expr)) }}
{%- endmacro %}

{% macro duckdb__timestamp_from_unix_ms(ms_expr) -%}
    make_timestamp({{ ms_expr }} * 1000)
{%- endmacro %}

{% macro default__timestamp_from_unix_ms(ms_expr) -%}
    {{ unsupported_engine('timestamp_from_unix_ms') }}
{%- endmacro %}

{% macro spark__timestamp_from_unix_ms(ms_expr) -%}
    timestamp_millis({{ ms_expr }})
{%- endmacro %}

{% macro now_unix_ms() -%}
    {{ return(adapter.dispatch('now_unix_ms', 'mparticle_backfill')()) }}
{%- endmacro %}

{% macro duckdb__now_unix_ms() -%}
    epoch_ms(now()::timestamp)
{%- endmacro %}

{% macro default__now_unix_ms() -%}
    {{ unsupported_engine('now_unix_ms') }}
{%- endmacro %}

{% macro spark__now_unix_ms() -%}
    unix_millis(current_timestamp())
{%- endmacro %}

{% macro json_parse_shape(json_expr, shape) -%}
    {#- A struct of the members named in `shape` ({name: 'VARCHAR' | 'JSON' | 'JSON[]'}):
        text as exact text (numbers keep every digit), JSON as JSON. -#}
    {{ return(adapter.dispatch('json_parse_shape', 'mparticle_backfill')(json_expr, shape)) }}
{%- endmacro %}

{% macro duckdb__json_parse_shape(json_expr, shape) -%}
    from_json({{ json_expr }}, '{{ tojson(shape) }}')
{%- endmacro %}

{% macro default__json_parse_shape(json_expr, shape) -%}
    {{ unsupported_engine('json_parse_shape') }}
{%- endmacro %}

{% macro spark__json_parse_shape(json_expr, shape) -%}
    {%- set types = {'VARCHAR': 'string', 'JSON': 'string', 'JSON[]': 'array<string>'} -%}
    from_json({{ json_expr }}, '
        {%- for name, kind in shape.items() -%}
            `{{ name }}` {{ types[kind] }}{{ ', ' if not loop.last }}
        {%- endfor -%}')
{%- endmacro %}

{% macro json_minified(json_expr) -%}
    {#- JSON text without the whitespace between tokens (key order and numbers as written). -#}
    {{ return(adapter.dispatch('json_minified', 'mparticle_backfill')(json_expr)) }}
{%- endmacro %}

{% macro duckdb__json_minified(json_expr) -%}
    json({{ json_expr }})::varchar
{%- endmacro %}

{% macro default__json_minified(json_expr) -%}
    {{ unsupported_engine('json_minified') }}
{%- endmacro %}

{% macro spark__json_minified(json_expr) -%}
    regexp_replace({{ json_expr }}, '("(?:[^"\\\\]|\\\\.)*")|[ \\t\\n\\r]+', '$1')
{%- endmacro %}

{% macro empty_list() -%}
    {{ return(adapter.dispatch('empty_list', 'mparticle_backfill')()) }}
{%- endmacro %}

{% macro duckdb__empty_list() -%} [] {%- endmacro %}

{% macro default__empty_list() -%}
    {{ unsupported_engine('empty_list') }}
{%- endmacro %}

{% macro spark__empty_list() -%} array() {%- endmacro %}

{% macro list_len(list_expr) -%}
    {{ return(adapter.dispatch('list_len', 'mparticle_backfill')(list_expr)) }}
{%- endmacro %}

{% macro duckdb__list_len(list_expr) -%} len({{ list_expr }}) {%- endmacro %}

{% macro default__list_len(list_expr) -%}
    {{ unsupported_engine('list_len') }}
{%- endmacro %}

{% macro spark__list_len(list_expr) -%} cardinality({{ list_expr }}) {%- endmacro %}

{% macro list_agg(value_expr, order_expr) -%}
    {#- The values of a group as a list, ordered by `order_expr`. -#}
    {{ return(adapter.dispatch('list_agg', 'mparticle_backfill')(value_expr, order_expr)) }}
{%- endmacro %}

{% macro duckdb__list_agg(value_expr, order_expr) -%}
    list({{ value_expr }} order by {{ order_expr }})
{%- endmacro %}

{% macro default__list_agg(value_expr, order_expr) -%}
    {{ unsupported_engine('list_agg') }}
{%- endmacro %}

{% macro spark__list_agg(value_expr, order_expr) -%}
    transform(
        array_sort(collect_list(struct({{ order_expr }} as o, {{ value_expr }} as v))),
        item -> item.v
    )
{%- endmacro %}

{% macro with_index(list_expr, item_name, index_name) -%}
    {#- Select items: one row per item of a list, with its 1-based position. -#}
    {{ return(adapter.dispatch('with_index', 'mparticle_backfill')(list_expr, item_name, index_name)) }}
{%- endmacro %}

{% macro duckdb__with_index(list_expr, item_name, index_name) -%}
    unnest({{ list_expr }}) as {{ item_name }},
    generate_subscripts({{ list_expr }}, 1) as {{ index_name }}
{%- endmacro %}

{% macro default__with_index(list_expr, item_name, index_name) -%}
    {{ unsupported_engine('with_index') }}
{%- endmacro %}

{% macro spark__with_index(list_expr, item_name, index_name) -%}
    inline(transform({{ list_expr }}, (item, i) -> struct(item as {{ item_name }}, i + 1 as {{ index_name }})))
{%- endmacro %}

{% macro json_items(json_expr, path) -%}
    {#- Select item: one row per item (JSON) of the array at `path` (e.g. '$.a'). -#}
    {{ return(adapter.dispatch('json_items', 'mparticle_backfill')(json_expr, path)) }}
{%- endmacro %}

{% macro duckdb__json_items(json_expr, path) -%}
    unnest(json_extract({{ json_expr }}, '{{ path }}[*]'))
{%- endmacro %}

{% macro default__json_items(json_expr, path) -%}
    {{ unsupported_engine('json_items') }}
{%- endmacro %}

{% macro spark__json_items(json_expr, path) -%}
    explode(from_json(to_json(try_variant_get(parse_json({{ json_expr }}), '{{ path }}')), 'array<string>'))
{%- endmacro %}

{% macro json_text_items(json_expr, path) -%}
    {#- Select item: one row per item of the array at `path`, as text. -#}
    {{ return(adapter.dispatch('json_text_items', 'mparticle_backfill')(json_expr, path)) }}
{%- endmacro %}

{% macro duckdb__json_text_items(json_expr, path) -%}
    unnest(json_extract_string({{ json_expr }}, '{{ path }}[*]'))
{%- endmacro %}

{% macro default__json_text_items(json_expr, path) -%}
    {{ unsupported_engine('json_text_items') }}
{%- endmacro %}

{% macro spark__json_text_items(json_expr, path) -%}
    explode(try_variant_get(parse_json({{ json_expr }}), '{{ path }}', 'array<string>'))
{%- endmacro %}

{% macro json_string(json_expr, path) -%}
    {#- The value at `path` as text ('' stays ''), null when absent. -#}
    {{ return(adapter.dispatch('json_string', 'mparticle_backfill')(json_expr, path)) }}
{%- endmacro %}

{% macro duckdb__json_string(json_expr, path) -%}
    json_extract_string({{ json_expr }}, '{{ path }}')
{%- endmacro %}

{% macro default__json_string(json_expr, path) -%}
    {{ unsupported_engine('json_string') }}
{%- endmacro %}

{% macro spark__json_string(json_expr, path) -%}
    try_variant_get(parse_json({{ json_expr }}), '{{ path }}', 'string')
{%- endmacro %}

{% macro list_union_agg(list_expr) -%}
    {#- Aggregate: the distinct items of a group's lists, sorted. -#}
    {{ return(adapter.dispatch('list_union_agg', 'mparticle_backfill')(list_expr)) }}
{%- endmacro %}

{% macro duckdb__list_union_agg(list_expr) -%}
    list_sort(list_distinct(flatten(list({{ list_expr }}))))
{%- endmacro %}

{% macro default__list_union_agg(list_expr) -%}
    {{ unsupported_engine('list_union_agg') }}
{%- endmacro %}

{% macro spark__list_union_agg(list_expr) -%}
    array_sort(array_distinct(flatten(collect_list({{ list_expr }}))))
{%- endmacro %}

{% macro list_join(list_expr, separator) -%}
    {#- The items of a list of text joined by `separator` (a SQL literal). -#}
    {{ return(adapter.dispatch('list_join', 'mparticle_backfill')(list_expr, separator)) }}
{%- endmacro %}

{% macro duckdb__list_join(list_expr, separator) -%}
    array_to_string({{ list_expr }}, {{ separator }})
{%- endmacro %}

{% macro default__list_join(list_expr, separator) -%}
    {{ unsupported_engine('list_join') }}
{%- endmacro %}

{% macro spark__list_join(list_expr, separator) -%}
    array_join({{ list_expr }}, {{ separator }})
{%- endmacro %}

{% macro json_at(json_expr, path) -%}
    {#- The JSON value at `path` (JSON null included), SQL null when absent. -#}
    {{ return(adapter.dispatch('json_at', 'mparticle_backfill')(json_expr, path)) }}
{%- endmacro %}

{% macro duckdb__json_at(json_expr, path) -%}
    {{ json_expr }}->'{{ path }}'
{%- endmacro %}

{% macro default__json_at(json_expr, path) -%}
    {{ unsupported_engine('json_at') }}
{%- endmacro %}

{% macro spark__json_at(json_expr, path) -%}
    to_json(try_variant_get(try_parse_json({{ json_expr }}), '{{ path }}'))
{%- endmacro %}

{% macro sql_text(value) -%}
    {#- A Python/Jinja string as a SQL string literal on either engine. -#}
    {{ return(adapter.dispatch('sql_text', 'mparticle_backfill')(value)) }}
{%- endmacro %}

{% macro duckdb__sql_text(value) -%}
    '{{ value | replace("'", "''") }}'
{%- endmacro %}

{% macro default__sql_text(value) -%}
    {{ unsupported_engine('sql_text') }}
{%- endmacro %}

{% macro spark__sql_text(value) -%}
    '{{ value | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}

{% macro utc_minute_text(timestamp_expr) -%}
    {#- A timestamp as 'YYYY-MM-DD HH:MM UTC'. -#}
    {{ return(adapter.dispatch('utc_minute_text', 'mparticle_backfill')(timestamp_expr)) }}
{%- endmacro %}

{% macro duckdb__utc_minute_text(timestamp_expr) -%}
    strftime({{ timestamp_expr }}, '%Y-%m-%d %H:%M UTC')
{%- endmacro %}

{% macro default__utc_minute_text(timestamp_expr) -%}
    {{ unsupported_engine('utc_minute_text') }}
{%- endmacro %}

{% macro spark__utc_minute_text(timestamp_expr) -%}
    date_format({{ timestamp_expr }}, 'yyyy-MM-dd HH:mm \'UTC\'')
{%- endmacro %}
