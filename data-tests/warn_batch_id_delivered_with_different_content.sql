{{ config(severity='warn') }}
-- A batch_id delivered again with different content (a redelivery is normally identical).
-- Nothing is dropped: each content is a batch of its own, keyed '<batch_id>~<content hash>',
-- and its events are replayed. Compare the two lines; if one is a corrected copy of the
-- other, the events of both are sent.
{% set conflicts %}
select
    others.batch_id,
    firsts.source_file as first_file,
    firsts.line_number as first_line,
    others.source_file as other_file,
    others.line_number as other_line,
    others.batch_key as other_batch_key,
    'batch_id ' || others.batch_id || ': ' || firsts.source_file || ' line ' || firsts.line_number
    || ' and ' || others.source_file || ' line ' || others.line_number
    || ' differ in content; each is replayed as its own batch (' || others.batch_key || ')'
        as message
from {{ ref('base_quarantine__batches_parsed') }} as others
inner join {{ ref('base_quarantine__batches_parsed') }} as firsts
    on others.batch_id = firsts.batch_key
where others.batch_key <> others.batch_id
{% endset %}

{{ print_test_messages(conflicts) }}

{{ conflicts }}
