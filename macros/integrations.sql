{% macro integrations_list_sql() -%}
    {#- The integrations of var `integrations` as rows (integration, position); no rows for
        an empty list. Names are checked by project_vars (lowercase letters, digits, _). -#}
    {%- set names = var('integrations', []) or [] -%}
    {%- if names | length == 0 -%}
        select cast(null as string) as integration, cast(null as integer) as position where false
    {%- else -%}
        {%- for name in names %}
        select cast('{{ name }}' as string) as integration, {{ loop.index }} as position
        {%- if not loop.last %} union all {% endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
