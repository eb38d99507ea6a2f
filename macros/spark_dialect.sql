{#
    On Spark, model SQL passes through spark_dialect() before dbt-spark creates the table
    or view, so that fix models keep DuckDB's fix-model shape (docs/fixes.md):
    `select * replace (<expr> as <column>, ...)` becomes `select * except (<column>, ...),
    <expr> as <column>, ...` (the replaced columns move to the end; columns are always
    selected by name), and a comma right before FROM or a closing parenthesis is dropped.
#}

{% macro spark_dialect(sql) -%}
    {%- set re = modules.re -%}
    {%- set sql = spark_star_replace(sql) -%}
    {%- set sql = re.sub('(?i),((?:\\s|--[^\\n]*\\n)*)(from\\b|\\))', '\\1\\2', sql) -%}
    {{ return(sql) }}
{%- endmacro %}

{% macro spark_star_replace(sql) -%}
    {#- Rewrites each `* replace (...)` (outside string literals) as `* except (...), ...`. -#}
    {%- set re = modules.re -%}
    {%- set found = re.search('(?i)\\*\\s*replace\\s*\\(', sql) -%}
    {%- if found is none -%} {{ return(sql) }} {%- endif -%}
    {%- set state = namespace(depth=1, close=none, start=found.end(), items=[]) -%}
    {%- for token in re.finditer("'(?:[^']|'')*'|\\(|\\)|,", sql[found.end():]) if state.close is none -%}
        {%- set at = found.end() + token.start() -%}
        {%- if token.group(0) == '(' -%} {%- set state.depth = state.depth + 1 -%}
        {%- elif token.group(0) == ')' -%}
            {%- set state.depth = state.depth - 1 -%}
            {%- if state.depth == 0 -%}
                {%- do state.items.append(sql[state.start:at]) -%}
                {%- set state.close = at -%}
            {%- endif -%}
        {%- elif token.group(0) == ',' and state.depth == 1 -%}
            {%- do state.items.append(sql[state.start:at]) -%}
            {%- set state.start = at + 1 -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if state.close is none -%}
        {{ exceptions.raise_compiler_error('select * replace (...): no closing parenthesis') }}
    {%- endif -%}
    {%- set names = [] -%}
    {%- for item in state.items -%}
        {%- set alias = re.search('(?i)\\bas\\s+([A-Za-z_][A-Za-z0-9_]*)\\s*$', item) -%}
        {%- if alias is none -%}
            {{ exceptions.raise_compiler_error('select * replace (...): each item needs "as <column>": ' ~ item) }}
        {%- endif -%}
        {%- do names.append(alias.group(1)) -%}
    {%- endfor -%}
    {%- set rewritten = sql[:found.start()] ~ '* except (' ~ names | join(', ') ~ '), '
        ~ state.items | join(', ') ~ sql[state.close + 1:] -%}
    {{ return(spark_star_replace(rewritten)) }}
{%- endmacro %}

{%- macro spark__create_table_as(temporary, relation, compiled_code, language='sql') -%}
    {{ return(dbt.spark__create_table_as(
        temporary, relation, spark_dialect(compiled_code) if language == 'sql' else compiled_code, language)) }}
{%- endmacro -%}

{% macro spark__create_view_as(relation, sql) -%}
    {{ return(dbt.spark__create_view_as(relation, spark_dialect(sql))) }}
{%- endmacro %}

{% macro spark__get_test_sql(main_sql, fail_calc, warn_if, error_if, limit) -%}
    {{ return(dbt.default__get_test_sql(spark_dialect(main_sql), fail_calc, warn_if, error_if, limit)) }}
{%- endmacro %}

{% macro spark__load_csv_rows(model, agate_table) -%}
    {#- dbt-spark binds seed values, which breaks on an apostrophe with the session method:
        the values go in as escaped literals instead. -#}
    {%- set column_override = model['config'].get('column_types', {}) -%}
    {%- set statements = [] -%}
    {%- for chunk in agate_table.rows | batch(get_batch_size()) -%}
        {%- set sql -%}
            insert into {{ this.render() }} values
            {% for row in chunk -%}
                ({%- for col_name in agate_table.column_names -%}
                    {%- set type = column_override.get(col_name, adapter.convert_type(agate_table, loop.index0)) -%}
                    {%- set value = row[loop.index0] -%}
                    cast({{ 'null' if value is none else "'" ~ (value ~ '') | replace('\\', '\\\\') | replace("'", "\\'") ~ "'" }} as {{ type }})
                    {%- if not loop.last %}, {% endif -%}
                {%- endfor -%})
                {%- if not loop.last %},{% endif %}
            {% endfor %}
        {%- endset -%}
        {%- do adapter.add_query(sql, abridge_sql_log=True) -%}
        {%- do statements.append(sql) if loop.first -%}
    {%- endfor -%}
    {{ return(statements[0] if statements else '') }}
{%- endmacro %}

{% macro spark__persist_constraints(relation, model) -%}
    {#- Constraints are Delta-only; dbt-spark assumes Delta when file_format is unset. The
        project's tables are Parquet unless a file_format is configured. -#}
    {%- if config.get('file_format') == 'delta' -%}
        {%- do dbt.spark__persist_constraints(relation, model) -%}
    {%- endif -%}
{%- endmacro %}
