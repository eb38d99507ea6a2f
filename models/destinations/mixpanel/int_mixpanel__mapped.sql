-- Every replay event (after the fix chain) mapped to Mixpanel's event model
-- (docs/destinations/mixpanel.md), with a skip_reason when Mixpanel would refuse it or
-- could not tell whose it is. mixpanel_events keeps the sendable rows,
-- mixpanel_events__skipped the others: together they are the whole replay set.
{{ config(materialized='table', enabled=('mixpanel' in (var('direct_destinations', []) or []))) }}

{% set text_type = 'string' if target.type == 'spark' else 'varchar' %}

with replay as (
    select * from {{ ref('replay_events') }}
),

parts as (
    select
        replay_key,
        event_type,
        event_name,
        timestamp_unixtime_ms,
        data_plan_note,
        identity_risk,
        {{ json_at('event_json', '$.data') }} as data,
        {{ json_at('batch_context', '$.device_info') }} as device_info,
        {{ json_at('batch_context', '$.application_info') }} as application_info,
        coalesce(
            {{ json_text('batch_context', '$.user_identities.customer_id') }},
            cast(mpid as {{ text_type }})
        ) as distinct_id,
        {{ json_text('batch_context', '$.ip') }} as ip
    from replay
),

named as (
    select
        *,
        {{ destination_event_name() }} as mixpanel_event,
        -- $insert_id: at most 36 letters, digits and -; the same for the same replay key
        md5(replay_key) as insert_id
    from parts
),

classified as (
    select
        *,
        case
            when mixpanel_event is null and event_type in (
                'custom_event', 'screen_view', 'commerce_event'
            ) then 'mixpanel:missing_event_name'
            when mixpanel_event is null then 'mixpanel:event_type_not_mapped:' || event_type
            when distinct_id is null or distinct_id = '' then 'mixpanel:no_distinct_id'
        end as skip_reason
    from named
)

select
    replay_key,
    'user:' || coalesce(distinct_id, '') as mixpanel_user_key,
    event_type,
    mixpanel_event,
    distinct_id,
    insert_id,
    timestamp_unixtime_ms,
    {{ json_object_sql([
        ('event', json_value_sql('mixpanel_event')),
        ('properties', json_parsed('json_merge_patch(coalesce(' ~ json_get('data', '$.custom_attributes')
            ~ ", '{}'), " ~ json_drop_nulls(json_object_sql([
            ('time', json_value_sql('timestamp_unixtime_ms')),
            ('distinct_id', json_value_sql('distinct_id')),
            ('$insert_id', json_value_sql('insert_id')),
            ('$os', json_value_sql('coalesce(' ~ json_text('application_info', '$.os') ~ ', '
                ~ json_text('device_info', '$.platform') ~ ')')),
            ('$os_version', json_value_sql(json_text('device_info', '$.os_version'))),
            ('$model', json_value_sql(json_text('device_info', '$.model'))),
            ('$app_version_string', json_value_sql(json_text('application_info', '$.application_version'))),
            ('ip', json_value_sql('ip'))
        ])) ~ ')'))
    ]) }} as event_json,
    data_plan_note,
    identity_risk,
    skip_reason
from classified
