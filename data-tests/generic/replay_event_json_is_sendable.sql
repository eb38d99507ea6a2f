{% test replay_event_json_is_sendable(model, context_column='batch_context', rows_where=none) %}
-- The sent event keeps its exact timestamp as a JSON integer and carries no event_id; the
-- batch context carries nothing a replay must not send. `rows_where` (SQL, rendered when the
-- test compiles, so it may call this project's macros) limits the rows checked.
select replay_key
from {% if rows_where %}(select * from {{ model }} where {{ rows_where }}) as checked{% else %}{{ model }}{% endif %}
{%- if target.type == 'spark' %}
where schema_of_variant(try_variant_get(parse_json(event_json), '$.data.timestamp_unixtime_ms')) <> 'BIGINT'
    or try_variant_get(parse_json(event_json), '$.data.timestamp_unixtime_ms', 'string')
        <> cast(timestamp_unixtime_ms as string)
    or try_variant_get(parse_json(event_json), '$.data.event_id') is not null
    or try_variant_get(parse_json(event_json), '$.event_type', 'string') is distinct from event_type
    {%- for path in ['$.batch_id', '$.timestamp_unixtime_ms', '$.source_info',
        '$.context.data_plan.block_metadata', '$.context.block_metadata'] %}
    or try_variant_get(parse_json({{ context_column }}), '{{ path }}') is not null
    {%- endfor %}
{%- else %}
where json_type(event_json, '$.data.timestamp_unixtime_ms') not in ('BIGINT', 'UBIGINT')
    or json_extract_string(event_json, '$.data.timestamp_unixtime_ms')
        <> timestamp_unixtime_ms::varchar
    or json_exists(event_json, '$.data.event_id')
    or json_extract_string(event_json, '$.event_type') is distinct from event_type
    or json_exists({{ context_column }}, '$.batch_id')
    or json_exists({{ context_column }}, '$.timestamp_unixtime_ms')
    or json_exists({{ context_column }}, '$.source_info')
    or json_exists({{ context_column }}, '$.context.data_plan.block_metadata')
    or json_exists({{ context_column }}, '$.context.block_metadata')
{%- endif %}
{% endtest %}
