{#
    meta.relation_builds: which invocation last built a model, and, for a model that a later
    build may patch instead of rebuilding (macros/replay_set.sql, macros/fix_change_log.sql),
    the fingerprint of what it was built from.
#}

{% macro record_relation_build(fingerprint=none, patched_events=none) -%}
    {#- Record that this invocation built the current model: with `fingerprint`, if any,
        and, for a patch, the number of events whose rows it replaced. -#}
    {%- if execute and target.type != 'spark' -%}
    create schema if not exists meta;
    create table if not exists meta.relation_builds (
        relation_name varchar primary key,
        invocation_id varchar not null,
        fingerprint varchar,
        patched_events bigint,
        built_at timestamptz not null
    );
    insert or replace into meta.relation_builds
    values ('{{ this.identifier }}', '{{ invocation_id }}',
        {{ "'" ~ fingerprint ~ "'" if fingerprint else 'null' }}, {{ patched_events if patched_events is not none else 'null' }}, now());
    {%- endif -%}
{%- endmacro %}

{% macro relation_build_column(relation_name, column) -%}
    {#- meta.relation_builds' `column` for `relation_name`, or none. -#}
    {%- set found = run_query(
        "select table_name from information_schema.tables "
        ~ "where table_catalog = current_database() and table_schema = 'meta' "
        ~ "and table_name = 'relation_builds'") -%}
    {%- if found.rows | length == 0 -%} {{ return(none) }} {%- endif -%}
    {%- set rows = run_query(
        "select " ~ column ~ " from meta.relation_builds where relation_name = '" ~ relation_name ~ "'") -%}
    {{ return(rows.rows[0][0] if rows.rows | length > 0 else none) }}
{%- endmacro %}

{% macro build_whole_table(fingerprint, record_sql) -%}
    {#- In a materialization: build the model whole with dbt-duckdb's table materialization,
        then record `fingerprint` (and run `record_sql`) once it is committed. The old
        fingerprint is forgotten first: a build stopped half-way must not leave one that a
        later build could match. -#}
    {%- call statement('forget_fingerprint') -%}
        {{ record_relation_build() }}
    {%- endcall -%}
    {%- do adapter.commit() -%}
    {%- set result = materialization_table_duckdb() -%}
    {%- call statement('record_fingerprint') -%}
        {{ record_sql }}
        {{ record_relation_build(fingerprint) }}
    {%- endcall -%}
    {%- do adapter.commit() -%}
    {{ return(result) }}
{%- endmacro %}
