-- depends_on: {{ source('suppression', 'suppression_list') }}, {{ source('suppression', 'suppression_lists') }}
-- The suppression list, checked and normalized: one row per distinct identity to match
-- (match_key 'type=value', as user_identity_pairs writes a batch's identities, and
-- 'mpid=<digits>'). Email matches case-insensitively after trimming, other identities
-- exactly, MPIDs as exact 64-bit integers. A bad row fails the build naming file and line.
-- A table, so that the check runs here, once.
{{ config(materialized='table') }}

{% set identity_types = user_identity_types() %}

with list_rows as (
    {%- if suppression_list_loaded() %}
    select * from {{ source('suppression', 'suppression_list') }}
    {%- else %}
    select
        cast(null as string) as source_file,
        cast(null as bigint) as line_number,
        cast(null as string) as identity_type,
        cast(null as string) as identity
    where false
    {%- endif %}
),

checked as (
    select
        source_file,
        line_number,
        lower(trim(identity_type)) as identity_type,
        identity,
        case
            when nullif(trim(identity_type), '') is null then 'identity_type is empty'
            when lower(trim(identity_type)) not in ('mpid', '{{ identity_types | join("', '") }}')
                then 'unknown identity_type ''' || identity_type
                    || ''' (mpid or a user identity type: {{ identity_types | join(", ") }})'
            when nullif(trim(identity), '') is null then 'identity is empty'
            when lower(trim(identity_type)) = 'mpid' and not coalesce({{ is_int64_text('identity') }}, false)
                then 'MPID ''' || identity || ''' is not a 64-bit integer'
        end as problem
    from list_rows
),

first_problem as (
    select
        source_file,
        line_number,
        problem,
        count(*) over () as problems
    from checked
    where problem is not null
    order by line_number
    limit 1
),

normalized as (
    select distinct
        identity_type || '=' || case identity_type
            when 'email' then lower(trim(identity))
            when 'mpid' then {{ valid_mpid('identity') }}
            else identity
        end as match_key,
        identity_type
    from checked
    where problem is null
)

select * from normalized
union all
-- no row when every row is good; else the build stops here
select
    cast({{ stop_query(
        "'suppression list ' || source_file || ', line ' || line_number || ': ' || problem"
        ~ " || case when problems > 1 then ' (and ' || (problems - 1) || ' more bad rows)' else '' end"
        ~ " || '. Fix the list and load it again (loader suppress).'"
    ) }} as string) as match_key,
    cast(null as string) as identity_type
from first_problem
