-- The vars this build used, one row: what the loader reads instead of keeping its own copy.
{%- set reference = var('replay_reference_time_ms', none) %}

with settings as (
    select
        {{ var('max_event_age_days') }}::integer as max_event_age_days,
        {{ var('warn_event_age_days') }}::integer as warn_event_age_days,
        {{ var('allow_events_older_than_max_age') }}::boolean as allow_events_older_than_max_age,
        {{ 'null' if reference is none else reference }}::bigint as replay_reference_time_ms,
        {{ var('login_identity_types') | list | tojson | replace('"', "'") }}::varchar[]
            as login_identity_types,
        '{{ var('data_plan_policy') }}'::varchar as data_plan_policy,
        {{ var('replay_attribute_only_events') }}::boolean as replay_attribute_only_events,
        {{ var('replay_blocked_user_attributes') }}::boolean as replay_blocked_user_attributes,
        {{ var('exclude_high_risk_users') }}::boolean as exclude_high_risk_users,
        {{ var('fixes') | list | tojson | replace('"', "'") }}::varchar[] as fixes,
        now()::timestamptz as built_at,
)

select * from settings
