-- One row per source batch: who it belongs to and the batch-level JSON a replay sends.

{% set login_identity_types = var('login_identity_types', []) or [] %}

with batches as (
    -- the source batches with every context fix applied (var context_fixes)
    select * from {{ context_fix_chain_output() }}
),

identities as (
    select
        *,
        {{ user_identity_pairs('user_identities') }} as identity_pairs,
        list_sort(list_transform(
            list_filter(
                map_entries(json_transform(user_identities, '"MAP(VARCHAR, VARCHAR)"')),
                lambda entry: list_contains(
                    {{ sql_string_list(login_identity_types) }},
                    entry.key
                ) and nullif(trim(entry.value), '') is not null
            ),
            lambda entry: entry.key
        )) as login_identity_types,
        {{ device_id_pairs('device_info', 'mp_deviceid') }} as device_id_pairs
    from batches
),

keyed as (
    select
        *,
        {{ user_key('mpid', 'identity_pairs', 'device_id_pairs', 'batch_key') }} as user_key,
        case
            when mpid is not null then 'mpid'
            when len(identity_pairs) > 0 then 'user_identities'
            when len(device_id_pairs) > 0 then 'device_ids'
            else 'none'
        end as user_key_source,
        -- how mParticle will find the profile: by MPID, by a login identity, or only by
        -- device ids / non-login identities (may create a new profile: an extra MTU)
        case
            when mpid is not null then 'mpid'
            when len(login_identity_types) > 0 then 'login_identity'
            when len(identity_pairs) + len(device_id_pairs) > 0 then 'device_ids_only'
            else 'no_identity'
        end as identity_class
    from identities
),

with_context as (
    select
        *,
        {{ json_drop_nulls("json_object(
            'environment', environment,
            'mpid', to_json(try_cast(mpid as bigint)),
            'mp_deviceid', mp_deviceid,
            'user_identities', user_identities,
            'device_info', device_info,
            'application_info', application_info,
            'consent_state', consent_state,
            'integration_attributes', integration_attributes,
            'partner_identities', partner_identities,
            'ip', ip,
            'context', " ~ data_plan_context('data_plan_id', 'data_plan_version') ~ ",
            'deleted_user_attributes', json('[]')
        )") }} as batch_context,
        {{ data_plan_note('data_plan_id', 'data_plan_version') }} as data_plan_note
    from keyed
)

select
    batch_key,
    user_key,
    user_key_source,
    identity_class,
    case when identity_class in ('mpid', 'login_identity') then 'low' else 'high' end
        as identity_risk,
    login_identity_types,
    list_transform(device_id_pairs, lambda pair: split_part(pair, '=', 1)) as device_id_types,
    mpid,
    invalid_mpid,
    environment,
    data_plan_id,
    data_plan_version,
    data_plan_note,
    batch_context
from with_context
