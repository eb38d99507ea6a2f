-- depends_on: {{ source('suppression', 'suppression_lists') }}
-- One row: the vars this build used, so that readers of the warehouse (the loader, the
-- report) use the build's policy instead of a copy of it.

{% set reference_time_ms = var('replay_reference_time_ms', none) %}

with suppression_list as (
    -- the suppression list the build skipped users by (loader suppress), or one null row
    {%- if suppression_list_loaded() %}
    select source_file, file_checksum, row_count from {{ source('suppression', 'suppression_lists') }}
    {%- else %}
    select
        cast(null as string) as source_file,
        cast(null as string) as file_checksum,
        cast(null as bigint) as row_count
    {%- endif %}
),

settings as (
    select
        {{ var('max_event_age_days') }}::integer as max_event_age_days,
        {{ var('warn_event_age_days') }}::integer as warn_event_age_days,
        {{ var('allow_events_older_than_max_age') }}::boolean as allow_events_older_than_max_age,
        {{ 'null' if reference_time_ms is none else reference_time_ms }}::bigint
            as replay_reference_time_ms,
        {{ sql_string_list(var('login_identity_types', []) or []) }} as login_identity_types,
        {{ fix_sql_string(var('data_plan_policy', 'keep')) }} as data_plan_policy,
        {{ var('replay_attribute_only_events') }}::boolean as replay_attribute_only_events,
        {{ var('replay_blocked_user_attributes') }}::boolean as replay_blocked_user_attributes,
        {{ var('replay_blocked_identities') }}::boolean as replay_blocked_identities,
        {{ var('exclude_high_risk_users') }}::boolean as exclude_high_risk_users,
        {{ sql_string_list(fix_chain()) }} as fixes,
        {{ 'null' if sample_users_pct() is none else sample_users_pct() }}::double
            as dev_sample_users_pct,
        {{ var('amplitude_min_id_length', 5) }}::integer as amplitude_min_id_length,
        suppression_list.source_file as suppression_list,
        suppression_list.file_checksum as suppression_list_checksum,
        suppression_list.row_count as suppression_list_rows,
        {%- if target.type == 'spark' %}
        {#- Spark's memory is set by its cluster (profiles.yml), not per session -#}
        cast(null as string) as memory_limit,
        cast(null as string) as temp_directory,
        timestamp'{{ run_started_at.strftime('%Y-%m-%d %H:%M:%S.%f') }}' as built_at
        {%- else %}
        current_setting('memory_limit') as memory_limit,
        current_setting('temp_directory') as temp_directory,
        '{{ run_started_at.isoformat() }}'::timestamptz as built_at
        {%- endif %}
    from suppression_list
)

select * from settings
