{#
    Who a batch belongs to (its user_key), in one place: int_batches__replay_context keys
    users with it, and the sample mode (var dev_sample_users_pct) draws users with it as
    early as base_quarantine__batches_parsed, so that a sampled user keeps all their events.
#}

{% macro user_identity_pairs(user_identities) -%}
    {#- 'type=value' for each user identity of a JSON object, sorted. -#}
    {{ return(adapter.dispatch('user_identity_pairs', 'mparticle_backfill')(user_identities)) }}
{%- endmacro %}

{% macro duckdb__user_identity_pairs(user_identities) -%}
    list_sort(list_transform(
        map_entries(json_transform({{ user_identities }}, '"MAP(VARCHAR, VARCHAR)"')),
        lambda entry: entry.key || '=' || coalesce(entry.value, '')
    ))
{%- endmacro %}

{% macro default__user_identity_pairs(user_identities) -%}
    {{ unsupported_engine('user_identity_pairs') }}
{%- endmacro %}

{% macro spark__user_identity_pairs(user_identities) -%}
    array_sort(transform(
        map_entries(coalesce(from_json({{ user_identities }}, 'map<string,string>'), map())),
        entry -> entry.key || '=' || coalesce(entry.value, '')
    ))
{%- endmacro %}

{% macro device_id_pairs(device_info, mp_deviceid) -%}
    {#- 'key=value' for each device id of device_info, then mp_deviceid. -#}
    {%- set device_id_keys = [
        'ios_advertising_id', 'ios_idfv', 'android_advertising_id', 'android_uuid',
        'roku_advertising_id', 'roku_publisher_id', 'fire_advertising_id',
        'microsoft_advertising_id', 'microsoft_publisher_id', 'device_application_stamp',
    ] -%}
    {%- set items = [] -%}
    {%- for key in device_id_keys -%}
        {%- do items.append("'" ~ key ~ "=' || " ~ json_text(device_info, '$.' ~ key)) -%}
    {%- endfor -%}
    {%- do items.append("'mp_deviceid=' || " ~ mp_deviceid) -%}
    {{ list_where(list_of(items), 'pair', 'pair is not null') }}
{%- endmacro %}

{% macro user_key(mpid, identity_pairs, device_id_pairs, batch_key) -%}
    {#- The MPID when valid, else a hash of the identities and device ids, else the batch. -#}
    {{ return(adapter.dispatch('user_key', 'mparticle_backfill')(mpid, identity_pairs, device_id_pairs, batch_key)) }}
{%- endmacro %}

{% macro duckdb__user_key(mpid, identity_pairs, device_id_pairs, batch_key) -%}
    case
        when {{ mpid }} is not null then 'mpid:' || {{ mpid }}
        when len({{ identity_pairs }}) + len({{ device_id_pairs }}) > 0
            then 'ids:' || md5(array_to_string({{ identity_pairs }} || {{ device_id_pairs }}, '&'))
        else 'batch:' || {{ batch_key }}
    end
{%- endmacro %}

{% macro default__user_key(mpid, identity_pairs, device_id_pairs, batch_key) -%}
    {{ unsupported_engine('user_key') }}
{%- endmacro %}

{% macro spark__user_key(mpid, identity_pairs, device_id_pairs, batch_key) -%}
    case
        when {{ mpid }} is not null then 'mpid:' || {{ mpid }}
        when cardinality({{ identity_pairs }}) + cardinality({{ device_id_pairs }}) > 0
            then 'ids:' || md5(array_join(concat({{ identity_pairs }}, {{ device_id_pairs }}), '&'))
        else 'batch:' || {{ batch_key }}
    end
{%- endmacro %}

{% macro user_identities_object(user_identities) -%}
    {#- user_identities as a JSON object whatever its shape (object, or list of
        {identity_type, identity}); '{}' when absent. -#}
    {{ return(adapter.dispatch('user_identities_object', 'mparticle_backfill')(user_identities)) }}
{%- endmacro %}

{% macro spark__user_identities_object(user_identities) -%}
    case {{ json_kind(user_identities) }}
        when 'OBJECT' then {{ user_identities }}
        when 'ARRAY' then to_json(map_from_entries(transform(
            from_json({{ user_identities }}, 'array<string>'),
            item -> struct(
                try_variant_get(parse_json(item), '$.identity_type', 'string') as k,
                try_variant_get(parse_json(item), '$.identity', 'string') as v
            )
        )))
        else '{}'
    end
{%- endmacro %}

{% macro duckdb__user_identities_object(user_identities) -%}
    case json_type({{ user_identities }})
        when 'OBJECT' then {{ user_identities }}
        when 'ARRAY' then to_json(map_from_entries(list_transform(
            json_extract({{ user_identities }}, '$[*]'),
            lambda item: {
                'k': json_extract_string(item, '$.identity_type'),
                'v': json_extract_string(item, '$.identity')
            }
        )))
        else '{}'::json
    end
{%- endmacro %}

{% macro default__user_identities_object(user_identities) -%}
    {{ unsupported_engine('user_identities_object') }}
{%- endmacro %}

{% macro valid_mpid(mpid_text) -%}
    {#- The MPID as canonical digits when it is a signed 64-bit integer, else null. -#}
    case when {{ is_int64_text(mpid_text) }} then cast(cast({{ mpid_text }} as bigint) as string) end
{%- endmacro %}

{% macro sample_users_pct() -%}
    {#- var dev_sample_users_pct: none (every user) or the percentage of users to keep. -#}
    {{ return(var('dev_sample_users_pct', none)) }}
{%- endmacro %}

{% macro in_user_sample(user_key_expr) -%}
    {#- True for the users of the sample (deterministic: a hash of the user key), or for
        every user outside sample mode. -#}
    {%- set pct = sample_users_pct() -%}
    {%- if pct is none -%} true
    {%- elif target.type == 'spark' -%} pmod(xxhash64({{ user_key_expr }}), 10000) < {{ (pct | float * 100) | round | int }}
    {%- else -%} hash({{ user_key_expr }}) % 10000 < {{ (pct | float * 100) | round | int }}
    {%- endif -%}
{%- endmacro %}

{% macro login_identity_types_of(user_identities, types) -%}
    {#- The sorted identity types of a user_identities object that are login identity types
        (a Jinja list) and have a value. -#}
    {{ return(adapter.dispatch('login_identity_types_of', 'mparticle_backfill')(user_identities, types)) }}
{%- endmacro %}

{% macro duckdb__login_identity_types_of(user_identities, types) -%}
    list_sort(list_transform(
        list_filter(
            map_entries(json_transform({{ user_identities }}, '"MAP(VARCHAR, VARCHAR)"')),
            lambda entry: list_contains(
                {{ sql_string_list(types) }},
                entry.key
            ) and nullif(trim(entry.value), '') is not null
        ),
        lambda entry: entry.key
    ))
{%- endmacro %}

{% macro default__login_identity_types_of(user_identities, types) -%}
    {{ unsupported_engine('login_identity_types_of') }}
{%- endmacro %}

{% macro spark__login_identity_types_of(user_identities, types) -%}
    array_sort(map_keys(map_filter(
        coalesce(from_json({{ user_identities }}, 'map<string,string>'), map()),
        (k, v) -> array_contains({{ sql_string_list(types) }}, k) and nullif(trim(v), '') is not null
    )))
{%- endmacro %}

{% macro user_identity_types() -%}
    {#- mParticle's user identity type names: the Events API schema's
        (https://docs.mparticle.com/schema/mparticle.inbound.eventsapi.schema.json) and those
        its documentation adds (https://docs.mparticle.com/developers/apis/json-reference/),
        as loader/events_api/batch_rules.py IDENTITY_TYPES checks them. -#}
    {{ return([
        'other', 'customer_id', 'facebook', 'twitter', 'google', 'microsoft', 'yahoo', 'email',
        'alias', 'facebook_custom_audience_id', 'other_id_2', 'other_id_3', 'other_id_4',
        'other_id_5', 'other_id_6', 'other_id_7', 'other_id_8', 'other_id_9', 'other_id_10',
        'mobile_number', 'phone_number_2', 'phone_number_3',
    ]) }}
{%- endmacro %}

{% macro suppression_list_loaded() -%}
    {#- True when `loader suppress` (or `loader ingest` with BACKFILL_SUPPRESSION_LIST) loaded
        a list into the warehouse, even an empty one; false before any list, on Spark, and
        while dbt parses. Without a list the build joins nothing (no cost). -#}
    {%- if not execute or target.type != 'duckdb' -%} {{ return(false) }} {%- endif -%}
    {%- set lists = source('suppression', 'suppression_lists') -%}
    {%- if adapter.get_relation(lists.database, lists.schema, lists.identifier) is none -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set result = run_query('select count(*) from ' ~ lists) -%}
    {{ return(result.columns[0].values()[0] > 0) }}
{%- endmacro %}
