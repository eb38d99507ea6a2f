{% test exactly_one_row(model) %}
-- A one-row model that holds no row, or more than one.
select count(*) as row_count
from {{ model }}
having count(*) <> 1
{% endtest %}
