{% macro has_identity_value(object_expr, key_expr) -%}
    {#- Whether the JSON object holds a value under the key: not absent, JSON null or "". -#}
    {%- set member = json_member(object_expr, key_expr) -%}
    coalesce({{ member }} is not null and {{ json_kind(member) }} <> 'NULL'
        and cast({{ member }} as string) <> '""', false)
{%- endmacro %}
