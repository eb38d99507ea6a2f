{% macro print_test_messages(messages_sql, limit=20) -%}
    {#-
        Prints, while a test runs in dbt build or dbt test, the `message` column of
        `messages_sql` (at most `limit` rows, then how many more), so that the output names
        what the test found; dbt itself prints only a count.
    -#}
    {%- if execute and flags.WHICH in ('build', 'test') -%}
        {%- set result = run_query(
            'select message, count(*) over () as total from (' ~ messages_sql ~ ') '
            ~ 'order by message limit ' ~ limit
        ) -%}
        {%- for row in result.rows -%}
            {%- do log(model.name ~ ': ' ~ row['message'], info=True) -%}
        {%- endfor -%}
        {%- if result.rows and result.rows[0]['total'] > limit -%}
            {%- do log(model.name ~ ': ... and ' ~ (result.rows[0]['total'] - limit) ~ ' more', info=True) -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
