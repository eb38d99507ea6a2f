{% test unique_key(model, columns) %}
-- Keys (the combination of `columns`) that are null in any part or appear more than once.
select
    {%- for column in columns %}
    {{ column }},
    {%- endfor %}
    count(*) as row_count
from {{ model }}
group by all
having count(*) > 1
    {%- for column in columns %}
    or {{ column }} is null
    {%- endfor %}
{% endtest %}
