-- A context fix may change the batch context, never the batch key, and may not add,
-- remove or duplicate batches. It changes the user key's inputs (mpid, user_identities,
-- device_info, mp_deviceid) only when its model says `meta: {changes_identity: true}`.
-- Each context fix is compared with its input, so a failing row names the fix.
{% set fixes = context_fix_chain() %}
{% set identity_columns = context_fix_identity_columns() %}

{% set problems %}
{% if fixes | length == 0 %}
select null as fix_name, null as batch_key, null as problem where false
{% else %}
{% for fix in fixes %}
{% set guard_identity = not context_fix_changes_identity(fix) %}
select * from (
select
    '{{ fix }}' as fix_name,
    coalesce(before_fix.batch_key, after_fix.batch_key) as batch_key,
    case
        when after_fix.batch_key is null then 'batch removed (or its batch_key changed)'
        when before_fix.batch_key is null then 'batch added (or its batch_key changed)'
        when after_fix.copies > 1 then 'batch duplicated'
        {% for column in identity_columns %}
        when {{ guard_identity }} and cast(before_fix.{{ column }} as string) is distinct from cast(after_fix.{{ column }} as string)
            then '{{ column }} changed: a user key input; set meta changes_identity: true on the fix if that is meant'
        {% endfor %}
    end as problem
from (select batch_key, {{ identity_columns | join(', ') }} from {{ context_fix_chain_input(fix) }}) as before_fix
full outer join (
    select
        batch_key,
        {{ identity_columns | join(', ') }},
        count(*) over (partition by batch_key) as copies
    from {{ ref(fix) }}
) as after_fix
    on before_fix.batch_key = after_fix.batch_key
) as checked
where problem is not null
{% if not loop.last %}union all{% endif %}
{% endfor %}
{% endif %}
{% endset %}

{{ print_test_messages(
    "select fix_name || ': ' || problem || ' - ' || count(*) || ' batch'"
    ~ " || case when count(*) > 1 then 'es' else '' end || ', e.g. ' || min(batch_key) as message"
    ~ " from (" ~ problems ~ ") group by fix_name, problem"
) }}

{{ problems }}
