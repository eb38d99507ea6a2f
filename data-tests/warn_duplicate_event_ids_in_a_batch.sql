{{ config(severity='warn') }}
-- An event_id that appears more than once in one batch. Each occurrence is kept: the first
-- is keyed '<batch>:<event_id>', each repeat '<batch>:<event_id>#<position in the batch>'.
-- If the repeats are copies of one event, skip them with a fix.
{% set duplicates %}
with repeated as (
    select
        batch_key,
        event_id,
        count(*) as occurrences,
        {%- if target.type == 'spark' %}
        array_join(slice({{ list_agg("batch_key || ':' || event_id || '#' || event_index", 'event_index') }}, 2, 2147483647), ', ')
            as repeat_keys
        {%- else %}
        array_to_string(
            list(batch_key || ':' || event_id || '#' || event_index order by event_index)[2:],
            ', '
        ) as repeat_keys
        {%- endif %}
    from {{ ref('stg_quarantine__events') }}
    where event_id is not null
    group by all
    having count(*) > 1
)

select
    repeated.*,
    batches.source_file,
    batches.line_number,
    'event_id ' || repeated.event_id || ' appears ' || repeated.occurrences || ' times in batch '
    || repeated.batch_key || ' (' || batches.source_file || ' line ' || batches.line_number
    || '): the repeats are keyed ' || repeated.repeat_keys as message
from repeated
inner join {{ ref('stg_quarantine__batches') }} as batches
    on repeated.batch_key = batches.batch_key
{% endset %}

{{ print_test_messages(duplicates) }}

{{ duplicates }}
