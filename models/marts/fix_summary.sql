-- One row per fix, in chain order (var 'fixes'): how many events it changed, which columns,
-- and how many of those are replayed or skipped by it. A fix that changes no row fails a
-- warning test (assert_every_fix_changes_some_rows). No row when the chain is empty (the
-- default, before your first fix): the build then says so.

{% set fixes = fix_chain() %}
{% if execute and fixes | length == 0 %}
    {% do log("fix_summary: no fix in the chain (var fixes is empty): no event is changed "
        ~ "by a fix (docs/fixes.md: loader new-fix NAME)", info=true) %}
{% endif %}

with chain as (
    {% if fixes | length == 0 -%}
    select cast(null as integer) as fix_position, cast(null as string) as fix_name where false
    {%- else -%}
    select * from (values
        {%- for fix in fixes %}
        ({{ loop.index }}, '{{ fix }}'){% if not loop.last %},{% endif %}
        {%- endfor %}
    ) as chain (fix_position, fix_name)
    {%- endif %}
),

changes as (
    select * from {{ ref('int_events__fix_changes') }}
),

fixed as (
    select * from {{ ref('int_events__fixed') }}
),

replay as (
    select replay_key from {{ ref('replay_events') }}
),

changed as (
    select
        changes.fix_name,
        count(*) as rows_changed,
        count(replay.replay_key) as rows_changed_replayed,
        {{ list_union_agg('changes.changed_columns') }} as columns_changed
    from changes
    left join replay on changes.replay_key = replay.replay_key
    group by all
),

skipped as (
    select
        split_part(skip_reason, ':', 2) as fix_name,
        count(*) as rows_skipped
    from fixed
    where skip_reason like 'fix:%'
    group by all
)

select
    chain.fix_position,
    chain.fix_name,
    coalesce(changed.rows_changed, 0) as rows_changed,
    coalesce(changed.rows_changed_replayed, 0) as rows_changed_replayed,
    coalesce(skipped.rows_skipped, 0) as rows_skipped,
    coalesce(changed.columns_changed, {{ empty_list() }}) as columns_changed
from chain
left join changed on chain.fix_name = changed.fix_name
left join skipped on chain.fix_name = skipped.fix_name
order by chain.fix_position
