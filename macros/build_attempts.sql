{#
    Build markers: every dbt invocation that runs hooks (build, run, test, seed) records
    itself in meta.build_attempts when it starts, and how it ended when it ends. The
    loader compares them with the invocation that last built replay_events, and refuses
    to push a replay set that a later (or its own) invocation failed after: that replay
    set is older than the models and vars the user last tried to build. A direct
    destination's table (a model of models/destinations/<name>/) is also refused when
    replay_events was rebuilt after it: replay_sets_built lists the replay_events and
    destination models each invocation built.
    An invocation killed before it ended keeps status 'started'.
#}

{% macro record_build_start() -%}
    {%- if execute and target.type == 'spark' -%}
        {%- do spark_record_build_attempt('started') -%}
    {%- elif execute -%}
    create schema if not exists meta;
    create table if not exists meta.build_attempts (
        invocation_id varchar primary key,
        command varchar not null,
        started_at timestamptz not null,
        finished_at timestamptz,
        status varchar not null,
        replay_events_built boolean not null default false,
        failed_nodes varchar[]
    );
    alter table meta.build_attempts add column if not exists replay_sets_built varchar[];
    insert or replace into meta.build_attempts (invocation_id, command, started_at, status)
    values ('{{ invocation_id }}', '{{ flags.WHICH }}', '{{ run_started_at.isoformat() }}'::timestamptz, 'started');
    {%- endif -%}
{%- endmacro %}

{% macro record_build_end(results) -%}
    {%- if execute -%}
    {%- set failed = [] -%}
    {%- set built = [] -%}
    {%- for result in results -%}
        {%- if result.status in ('error', 'fail', 'runtime error') -%}
            {%- do failed.append(result.node.name) -%}
        {%- elif result.node.resource_type == 'model' and result.status == 'success'
            and (result.node.name == 'replay_events' or result.node.fqn[1:2] == ['destinations']) -%}
            {%- do built.append(result.node.name) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if target.type == 'spark' -%}
        {%- do spark_record_build_attempt('failed' if failed else 'succeeded', 'replay_events' in built, failed) -%}
        {{ return('') }}
    {%- endif -%}
    update meta.build_attempts set
        finished_at = now(),
        status = '{{ "failed" if failed else "succeeded" }}',
        replay_events_built = {{ 'true' if 'replay_events' in built else 'false' }},
        replay_sets_built = {{ sql_string_list(built) }},
        failed_nodes = {{ sql_string_list(failed) }}
    where invocation_id = '{{ invocation_id }}';
    {%- endif -%}
{%- endmacro %}

{% macro spark_record_build_attempt(status, replay_events_built=false, failed_nodes=[]) -%}
    {#- On Spark (Parquet tables, no UPDATE) each marker is a row of its own: 'started' when
        the invocation starts, then 'succeeded' or 'failed' when it ends; the invocation's
        latest row says how it went. -#}
    {%- do run_query("create schema if not exists meta") -%}
    {%- do run_query("create table if not exists meta.build_attempts (invocation_id string,
        command string, started_at timestamp, finished_at timestamp, status string,
        replay_events_built boolean, failed_nodes array<string>) using parquet") -%}
    {%- do run_query("insert into meta.build_attempts values ('" ~ invocation_id ~ "', '"
        ~ flags.WHICH ~ "', timestamp'" ~ run_started_at.strftime('%Y-%m-%d %H:%M:%S') ~ "', "
        ~ ("null" if status == 'started' else "current_timestamp()") ~ ", '" ~ status ~ "', "
        ~ ('true' if replay_events_built else 'false') ~ ", " ~ sql_string_list(failed_nodes) ~ ")") -%}
{%- endmacro %}
