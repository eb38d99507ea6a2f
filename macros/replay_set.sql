{#
    replay_events on DuckDB: a table that an edit of the fix chain patches instead of
    rebuilding. The fix loop (`dbt build -s <fix>+`) then writes the rows that changed, not
    every event.

    replay_events is int_events__assembled (every event to send, as built before the fix
    chain) with the rows of the events the fix chain changed replaced, and those it skipped
    left out. So, when the table was built by the same SQL from the same
    int_events__assembled, only the rows of two sets of events can differ from a rebuild:
    those the chain changed last time (kept in meta.replay_events__fix_keys) and those
    int_events__fix_changes lists now. The materialization builds the model's rows for
    those events and replaces the table's rows that differ from them (by a hash of every
    column), in one transaction. Anything else (other SQL, vars or macros, a rebuilt
    int_events__assembled, --full-refresh) rebuilds the table whole with dbt-duckdb's table
    materialization.

    "The same" is a fingerprint: the md5 of the compiled SQL, of the contract (the columns
    and their types) and of the invocation that last built int_events__assembled (recorded
    by its post-hook), stored in meta.relation_builds with each build of replay_events.
#}

{% macro replay_set_patch_keys() -%}
    {#- The events whose rows may differ from a rebuild (see above). -#}
    select replay_key from meta.replay_events__fix_keys
    union
    select replay_key from {{ ref('int_events__fix_changes') }}
{%- endmacro %}

{% macro record_replay_set_fix_keys() -%}
    {#- The events the fix chain changed (or skipped) in this build of replay_events. -#}
    create or replace table meta.replay_events__fix_keys as
    select distinct replay_key from {{ ref('int_events__fix_changes') }};
{%- endmacro %}

{% materialization replay_set, adapter='duckdb' %}
    {%- set existing = load_cached_relation(this) -%}
    {%- set assembled_by = relation_build_column('int_events__assembled', 'invocation_id') -%}
    {%- set fingerprint = local_md5(compiled_code ~ '|' ~ model.contract.checksum ~ '|' ~ assembled_by) -%}
    {%- set patch = existing is not none and assembled_by is not none and not should_full_refresh()
        and relation_build_column(this.identifier, 'fingerprint') == fingerprint -%}

    {%- if not patch -%}
        {{ return(build_whole_table(fingerprint, record_replay_set_fix_keys())) }}
    {%- endif -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}
    {%- set keys = make_temp_relation(this, '__patch_keys').identifier -%}
    {%- set rebuilt = make_temp_relation(this, '__patch_rows').identifier -%}
    {%- set stale = make_temp_relation(this, '__patch_stale').identifier -%}
    {%- set row_hash = 'hash(' ~ (adapter.get_columns_in_relation(this) | map(attribute='name') | join(', ')) ~ ')' -%}
    {%- call statement('patch_rows') -%}
        create temp table {{ keys }} as {{ replay_set_patch_keys() }};
        create temp table {{ rebuilt }} as
        select * from ({{ compiled_code }}) as rebuilt
        where rebuilt.replay_key in (select replay_key from {{ keys }});
        -- of those events, the ones whose row is not what the table holds
        create temp table {{ stale }} as
        select coalesce(held.replay_key, rebuilt.replay_key) as replay_key
        from (
            select replay_key, {{ row_hash }} as row_hash from {{ this }}
            where replay_key in (select replay_key from {{ keys }})
        ) as held
        full outer join (select replay_key, {{ row_hash }} as row_hash from {{ rebuilt }}) as rebuilt
            on held.replay_key = rebuilt.replay_key
        where held.row_hash is distinct from rebuilt.row_hash;
    {%- endcall -%}
    {%- set counts = run_query('select (select count(*) from ' ~ keys ~ '), (select count(*) from ' ~ stale ~ ')').rows[0] -%}
    {{ log(this.identifier ~ ": only the fix chain changed since it was built; of the " ~ counts[0]
        ~ " events it changes or changed, " ~ counts[1] ~ " have new rows (the rest are kept)", info=true) }}
    {%- call statement('main') -%}
        delete from {{ this }} where replay_key in (select replay_key from {{ stale }});
        insert into {{ this }} by name
        select * from {{ rebuilt }} where replay_key in (select replay_key from {{ stale }});
        drop table {{ keys }};
        drop table {{ rebuilt }};
        drop table {{ stale }};
        {{ record_replay_set_fix_keys() }}
        {{ record_relation_build(fingerprint, counts[1]) }}
    {%- endcall -%}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [this]}) }}
{% endmaterialization %}
