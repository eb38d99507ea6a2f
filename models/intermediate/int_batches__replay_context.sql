-- depends_on: {{ ref('stg_suppression__identities') }}
-- One row per source batch: who it belongs to and the batch-level JSON a replay sends.
-- suppressed_by: the identity type by which the batch's identities (after the context fixes)
-- match the suppression list.
--
-- The identities the data plan blocked (stg_quarantine__blocked_identities) are left out of
-- the JSON a replay sends when var replay_blocked_identities is false (it is true by default); a value a context
-- fix put in their place is sent either way. The user key and the suppression match use
-- every identity of the batch; the identity class, what is sent (mParticle resolves the
-- user from the identities a batch carries:
-- https://docs.mparticle.com/developers/server/json-reference/ , mpid).

{% set login_identity_types = var('login_identity_types', []) or [] %}
{% set with_suppression = suppression_list_loaded() %}

with batches as (
    -- the source batches with every context fix applied (var context_fixes)
    select * from {{ context_fix_chain_output() }}
),

{%- if var('replay_blocked_identities') %}

sent_identities as (
    select
        *,
        user_identities as sent_user_identities,
        device_info as sent_device_info
    from batches
),
{%- else %}

{%- set with_context_fixes = context_fix_chain() | length > 0 %}
{%- if with_context_fixes %}

source_batches as (
    select * from {{ ref('stg_quarantine__batches') }}
),
{%- endif %}

-- blocked identities the context fixes left as the source batch had them: not sent
withheld as (
    select
        blocked.batch_key,
        blocked.identity_kind,
        {{ list_agg('blocked.identity_type', 'blocked.identity_type') }} as identity_types
    from {{ ref('stg_quarantine__blocked_identities') }} blocked
    {%- if with_context_fixes %}
    inner join source_batches on blocked.batch_key = source_batches.batch_key
    inner join batches on blocked.batch_key = batches.batch_key
    where case
        when blocked.identity_kind = 'user' then
            cast({{ json_member('batches.user_identities', 'blocked.identity_type') }} as string)
            is not distinct from
            cast({{ json_member('source_batches.user_identities', 'blocked.identity_type') }} as string)
        else
            cast({{ json_member('batches.device_info', 'blocked.identity_type') }} as string)
            is not distinct from
            cast({{ json_member('source_batches.device_info', 'blocked.identity_type') }} as string)
    end
    {%- endif %}
    group by all
),

sent_identities as (
    select
        batches.*,
        {{ json_without_keys('batches.user_identities', 'withheld_users.identity_types') }}
            as sent_user_identities,
        {{ json_without_keys('batches.device_info', 'withheld_devices.identity_types') }}
            as sent_device_info
    from batches
    left join withheld as withheld_users
        on batches.batch_key = withheld_users.batch_key and withheld_users.identity_kind = 'user'
    left join withheld as withheld_devices
        on batches.batch_key = withheld_devices.batch_key and withheld_devices.identity_kind = 'device'
),
{%- endif %}

identities as (
    select
        *,
        {{ user_identity_pairs('user_identities') }} as identity_pairs,
        {{ device_id_pairs('device_info', 'mp_deviceid') }} as device_id_pairs,
        {{ user_identity_pairs('sent_user_identities') }} as sent_identity_pairs,
        {{ login_identity_types_of('sent_user_identities', login_identity_types) }} as login_identity_types,
        {{ device_id_pairs('sent_device_info', 'mp_deviceid') }} as sent_device_id_pairs
    from sent_identities
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
        -- how mParticle will find the profile from what is sent: by MPID, by a login
        -- identity, or only by device ids / non-login identities (may create a new
        -- profile: an extra MTU)
        case
            when mpid is not null then 'mpid'
            when {{ list_len('login_identity_types') }} > 0 then 'login_identity'
            when {{ list_len('sent_identity_pairs') }} + {{ list_len('sent_device_id_pairs') }} > 0
                then 'device_ids_only'
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
            ('user_identities', json_parsed('sent_user_identities')),
            ('device_info', json_parsed('sent_device_info')),
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
    {{ list_map('sent_device_id_pairs', 'pair', "split_part(pair, '=', 1)") }} as device_id_types,
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
