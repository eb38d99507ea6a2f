-- depends_on: {{ ref('stg_suppression__identities') }}
-- One row per source batch: who it belongs to and the batch-level JSON a replay sends.
-- suppressed_by: the identity type by which the batch's identities (after the context fixes)
-- match the suppression list.

{% set login_identity_types = var('login_identity_types', []) or [] %}
{% set with_suppression = suppression_list_loaded() %}

with batches as (
    -- the source batches with every context fix applied (var context_fixes)
    select * from {{ context_fix_chain_output() }}
),

identities as (
    select
        *,
        {{ user_identity_pairs('user_identities') }} as identity_pairs,
        {{ login_identity_types_of('user_identities', login_identity_types) }} as login_identity_types,
        {{ device_id_pairs('device_info', 'mp_deviceid') }} as device_id_pairs
    from batches
),

keyed as (
    select
        *,
        {{ user_key('mpid', 'identity_pairs', 'device_id_pairs', 'batch_key') }} as user_key,
        case
            when mpid is not null then 'mpid'
            when {{ list_len('identity_pairs') }} > 0 then 'user_identities'
            when {{ list_len('device_id_pairs') }} > 0 then 'device_ids'
            else 'none'
        end as user_key_source,
        -- how mParticle will find the profile: by MPID, by a login identity, or only by
        -- device ids / non-login identities (may create a new profile: an extra MTU)
        case
            when mpid is not null then 'mpid'
            when {{ list_len('login_identity_types') }} > 0 then 'login_identity'
            when {{ list_len('identity_pairs') }} + {{ list_len('device_id_pairs') }} > 0 then 'device_ids_only'
            else 'no_identity'
        end as identity_class
    from identities
),

with_context as (
    select
        *,
        -- consent_state as it was, nulls inside it too (mParticle applies it downstream)
        {{ json_keep_nested_nulls(json_drop_nulls(json_object_sql([
            ('environment', json_value_sql('environment')),
            ('mpid', json_value_sql('try_cast(mpid as bigint)')),
            ('mp_deviceid', json_value_sql('mp_deviceid')),
            ('user_identities', json_parsed('user_identities')),
            ('device_info', json_parsed('device_info')),
            ('application_info', json_parsed('application_info')),
            ('consent_state', json_parsed('consent_state')),
            ('integration_attributes', json_parsed('integration_attributes')),
            ('partner_identities', json_parsed('partner_identities')),
            ('ip', json_value_sql('ip')),
            ('context', json_parsed(data_plan_context('data_plan_id', 'data_plan_version'))),
            ('deleted_user_attributes', json_parsed(fix_json_literal([])))
        ])), 'consent_state', 'consent_state') }} as batch_context,
        {{ data_plan_note('data_plan_id', 'data_plan_version') }} as data_plan_note
    from keyed
){%- if with_suppression %},

suppressed as (
    select * from {{ ref('stg_suppression__identities') }}
),

-- each batch's identities as the list writes them: email trimmed and lower-case, the MPID
match_keys as (
    select
        batch_key,
        unnest(list_transform(
            identity_pairs,
            lambda pair: case when starts_with(pair, 'email=')
                then 'email=' || lower(trim(pair[7:])) else pair end
        ) || ['mpid=' || mpid]) as match_key
    from keyed
),

suppressed_batches as (
    select
        match_keys.batch_key,
        min(suppressed.identity_type) as suppressed_by
    from match_keys
    inner join suppressed on match_keys.match_key = suppressed.match_key
    group by match_keys.batch_key
){%- endif %}

select
    with_context.batch_key,
    user_key,
    user_key_source,
    identity_class,
    case when identity_class in ('mpid', 'login_identity') then 'low' else 'high' end
        as identity_risk,
    login_identity_types,
    {{ list_map('device_id_pairs', 'pair', "split_part(pair, '=', 1)") }} as device_id_types,
    mpid,
    invalid_mpid,
    environment,
    data_plan_id,
    data_plan_version,
    data_plan_note,
    batch_context,
    {% if with_suppression -%} suppressed_batches.suppressed_by
    {%- else -%} cast(null as string) {%- endif %} as suppressed_by
from with_context
{%- if with_suppression %}
left join suppressed_batches on with_context.batch_key = suppressed_batches.batch_key
{%- endif %}
