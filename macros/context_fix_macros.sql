{#
    The context fix toolkit. Each macro returns items for `select * replace (...)` in a
    context fix model (rows: one per source batch, columns of stg_quarantine__batches).
    `where` (optional) is a SQL predicate on those columns that limits the batches a macro
    changes. Two macros that change the same column go in two CTEs. Macros that change the
    user key's inputs (identities, MPID, device ids) need `meta: {changes_identity: true}`
    on the fix. See docs/fixes.md.
#}

{% macro set_environment(environment, where=none) -%}
    {#- environment becomes `environment` ('production' or 'development'). -#}
    {%- if environment not in ('production', 'development') -%}
        {{ exceptions.raise_compiler_error(
            "set_environment: '" ~ environment ~ "' is not production or development") }}
    {%- endif -%}
    case when true{{ fix_and(where) }} then {{ fix_sql_string(environment) }} else environment end
        as environment
{%- endmacro %}

{% macro rename_identity(old_type, new_type, where=none) -%}
    {#- User identity `old_type` (e.g. a misspelled customerId) becomes `new_type`. -#}
    case
        when {{ fix_json_member('user_identities', old_type) }} is not null{{ fix_and(where) }}
            then {{ fix_json_set(
                fix_json_remove('user_identities', [old_type]),
                new_type,
                fix_json_member('user_identities', old_type)) }}
        else user_identities
    end as user_identities
{%- endmacro %}

{% macro drop_identity(identity_type, where=none) -%}
    {#- Removes user identity `identity_type`. -#}
    case
        when {{ fix_json_member('user_identities', identity_type) }} is not null{{ fix_and(where) }}
            then {{ fix_json_remove('user_identities', [identity_type]) }}
        else user_identities
    end as user_identities
{%- endmacro %}

{% macro set_identity(identity_type, value_sql, where=none) -%}
    {#- User identity `identity_type` set to the text `value_sql` (SQL; a null result
        leaves the batch as it is). -#}
    case
        when ({{ value_sql }}) is not null{{ fix_and(where) }}
            then {{ fix_json_set('user_identities', identity_type, fix_json_text_value(value_sql)) }}
        else user_identities
    end as user_identities
{%- endmacro %}

{% macro identity_from_user_attribute(attribute) -%}
    {#- SQL for the text of the batch's user attribute `attribute` (for set_identity). -#}
    {{ fix_json_member_text('user_attributes', attribute) }}
{%- endmacro %}

{% macro identity_from_event_attribute(attribute) -%}
    {#- SQL for the text of custom attribute `attribute` on the batch's events (the first
        event carrying it, by position), for set_identity. The fix reads its input as
        CTE `batches`. -#}
    (select {{ fix_json_member_text('e.custom_attributes', attribute) }}
     from {{ ref('stg_quarantine__events') }} e
     where e.batch_key = batches.batch_key and {{ fix_json_member('e.custom_attributes', attribute) }} is not null
     order by e.event_index limit 1)
{%- endmacro %}

{% macro set_mpid(mpid, where=none) -%}
    {#- The batch's MPID set to `mpid` (a 64-bit integer, given as text to keep its digits). -#}
    {%- set text = mpid ~ "" -%}
    {%- if not modules.re.fullmatch('-?[0-9]{1,19}', text) -%}
        {{ exceptions.raise_compiler_error("set_mpid: '" ~ text ~ "' is not a 64-bit integer") }}
    {%- endif -%}
    case when true{{ fix_and(where) }} then {{ fix_sql_string(text) }} else mpid end as mpid,
    case when true{{ fix_and(where) }} then null else invalid_mpid end as invalid_mpid
{%- endmacro %}

{% macro drop_device_id(key, where=none) -%}
    {#- Removes device id `key` from device_info (e.g. ios_advertising_id). -#}
    case
        when {{ fix_json_member('device_info', key) }} is not null{{ fix_and(where) }}
            then {{ fix_json_remove('device_info', [key]) }}
        else device_info
    end as device_info
{%- endmacro %}

{% macro set_device_id(key, value_sql, where=none) -%}
    {#- Device id `key` in device_info set to the text `value_sql` (SQL). -#}
    case
        when ({{ value_sql }}) is not null{{ fix_and(where) }}
            then {{ fix_json_set('device_info', key, fix_json_text_value(value_sql)) }}
        else device_info
    end as device_info
{%- endmacro %}

{% macro set_data_plan(plan_id, plan_version=none, where=none) -%}
    {#- The data plan the batch names (context.data_plan): `plan_id` and `plan_version`. -#}
    case when true{{ fix_and(where) }} then {{ fix_sql_string(plan_id) }} else data_plan_id end
        as data_plan_id,
    case when true{{ fix_and(where) }}
        then {{ 'null::bigint' if plan_version is none else (plan_version | int) ~ '::bigint' }}
        else data_plan_version end as data_plan_version
{%- endmacro %}

{% macro fix_json_text_value(value_sql) -%}
    {#- SQL text `value_sql` as a JSON string. -#}
    {%- if target.type == 'spark' -%}
    to_json(cast(cast(({{ value_sql }}) as string) as variant))
    {%- else -%}
    to_json(({{ value_sql }})::varchar)
    {%- endif -%}
{%- endmacro %}
