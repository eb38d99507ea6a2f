-- Every replay event (after the fix chain) mapped to Amplitude's event model, with a
-- skip_reason when Amplitude would refuse it. amplitude_events keeps the sendable rows,
-- amplitude_events__skipped the others: together they are the whole replay set.
{{ config(materialized='table') }}

{% set identity = var('amplitude_user_id_identity', 'customer_id') %}
{% set min_length = var('amplitude_min_id_length', 5) | int %}
{#- Device id per mParticle's own Amplitude integration: per platform, the first present. -#}
{% set device_id_order = [
    'ios_advertising_id', 'ios_idfv', 'android_uuid', 'android_advertising_id',
    'roku_advertising_id', 'roku_publisher_id', 'fire_advertising_id',
] %}

with replay as (
    select * from {{ ref('replay_events') }}
),

parts as (
    select
        replay_key,
        user_key,
        event_type,
        event_name,
        timestamp_unixtime_ms,
        data_plan_note,
        identity_risk,
        {{ json_at('event_json', '$.data') }} as data,
        {{ json_at('batch_context', '$.device_info') }} as device_info,
        {{ json_at('batch_context', '$.application_info') }} as application_info,
        {% if identity == 'mpid' -%}
        mpid as raw_user_id,
        {%- else -%}
        {{ json_text('batch_context', '$.user_identities.' ~ identity) }} as raw_user_id,
        {%- endif %}
        coalesce(
            {% for key in device_id_order -%}
            {{ json_text('batch_context', '$.device_info.' ~ key) }}{{ ',' if not loop.last }}
            {% endfor -%}
        ) as raw_device_id,
        {{ json_text('batch_context', '$.ip') }} as ip,
        {{ json_get('batch_context', '$.user_attributes') }} as user_attributes
    from replay
),

named as (
    select
        *,
        {{ destination_event_name(session_events=true, commerce_suffix=' - Total') }}
            as amplitude_event_type,
        case when length(raw_user_id) >= {{ min_length }} then raw_user_id end as user_id,
        case when length(raw_device_id) >= {{ min_length }} then raw_device_id end as device_id
    from parts
),

classified as (
    select
        *,
        case
            when amplitude_event_type is null and event_type in (
                'custom_event', 'screen_view', 'commerce_event'
            ) then 'amplitude:missing_event_name'
            when amplitude_event_type is null
                then 'amplitude:event_type_not_forwarded:' || event_type
            when raw_user_id is null and raw_device_id is null
                then 'amplitude:no_user_or_device_id'
            when user_id is null and device_id is null
                then 'amplitude:ids_shorter_than_{{ min_length }}'
        end as skip_reason
    from named
)

select
    replay_key,
    case
        when user_id is not null then 'user:' || user_id
        else 'device:' || device_id
    end as amplitude_user_key,
    user_key,
    event_type,
    amplitude_event_type,
    user_id,
    device_id,
    'mpbf-' || md5(replay_key) as insert_id,
    timestamp_unixtime_ms,
    {{ json_drop_nulls(json_object_sql([
        ('user_id', json_value_sql('user_id')),
        ('device_id', json_value_sql('device_id')),
        ('event_type', json_value_sql('amplitude_event_type')),
        ('time', json_value_sql('timestamp_unixtime_ms')),
        ('insert_id', json_value_sql("'mpbf-' || md5(replay_key)")),
        ('$skip_user_properties_sync', json_value_sql('true' if var('amplitude_skip_user_properties_sync', true) else 'null')),
        ('event_properties', json_parsed('coalesce(' ~ json_get('data', '$.custom_attributes') ~ ', ' ~ fix_json_literal({}) ~ ')')),
        ('user_properties', json_parsed('user_attributes')),
        ('revenue', json_parsed('case when ' ~ json_text('data', '$.product_action.action') ~ " = 'purchase' then "
            ~ json_get('data', '$.product_action.total_amount') ~ ' end')),
        ('platform', json_value_sql(json_text('device_info', '$.platform'))),
        ('os_name', json_value_sql('coalesce(' ~ json_text('application_info', '$.os') ~ ', '
            ~ json_text('device_info', '$.platform') ~ ')')),
        ('os_version', json_value_sql(json_text('device_info', '$.os_version'))),
        ('device_brand', json_value_sql(json_text('device_info', '$.brand'))),
        ('device_manufacturer', json_value_sql(json_text('device_info', '$.device_manufacturer'))),
        ('device_model', json_value_sql(json_text('device_info', '$.model'))),
        ('app_version', json_value_sql(json_text('application_info', '$.application_version'))),
        ('ip', json_value_sql('ip')),
        ('idfa', json_value_sql(json_text('device_info', '$.ios_advertising_id'))),
        ('idfv', json_value_sql(json_text('device_info', '$.ios_idfv'))),
        ('adid', json_value_sql(json_text('device_info', '$.android_advertising_id'))),
        ('android_id', json_value_sql(json_text('device_info', '$.android_uuid')))
    ])) }} as event_json,
    data_plan_note,
    identity_risk,
    skip_reason
from classified
