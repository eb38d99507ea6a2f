{% test older_than_days(model, column_name, days) %}
-- Rows whose Unix-ms timestamp is more than `days` old at the reference time.
select *
from {{ model }}
where {{ column_name }} < {{ reference_time_ms() }} - {{ days }}::bigint * 86400000
{% endtest %}
