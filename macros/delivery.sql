{#
    Daily deliveries on DuckDB (materialization `delivery`): a model whose rows come from the
    quarantine files adds, after a first build, only the rows of the files ingested since.

    Its SQL reads the files it is to add from {{ delivery_new_files() }} and, where it needs
    them, its own earlier rows from {{ delivery_previous() }}. Both are relations in `meta`
    that the materialization fills before the model runs:

    - a whole build: every file its input holds, and no earlier row. The model's SQL then
      is what a table of it would be; dbt-duckdb's table materialization builds it.
    - a daily build: the files its input holds that it was not built from, and its rows as
      they are. dbt-duckdb's incremental materialization adds the result (config
      incremental_strategy: append, or delete+insert on unique_key).

    The files a model was built from are kept in meta.delivery_files, and each build in
    meta.delivery_builds: the md5 of its compiled SQL (the model, the macros and the vars
    it compiles with; the same text in both kinds of build) and the whole build ("generation")
    of each delivery model it follows (config delivery_follows; none: the raw tables of
    `loader ingest`). A build is daily only when the table exists, no --full-refresh, the
    config allows it (delivery_incremental), the SQL is the same, every model it follows is
    of the generation it was built from and holds the same files, and none of its files has
    gone (a file ingested again with other content, `loader forget`); from the raw tables
    also only when the new files were ingested after its own (the first delivery of a batch
    is the earliest). Anything else builds it whole, and says why.

    On Spark the models are tables: the same SQL reads every file and no earlier row.
#}

{% macro delivery_materialization() -%}
    {{ return('delivery' if target.type == 'duckdb' else 'table') }}
{%- endmacro %}

{% macro delivery_new_files() -%}
    {#- The files (file_checksum, source_file) this build adds (see above). -#}
    {%- set ingested = source('quarantine', 'ingested_files') -%}
    {%- if target.type == 'duckdb' -%}
        meta.{{ this.identifier }}__new_files
    {%- else -%}
        {%- if execute -%}
            {%- do log(this.identifier ~ ': built whole from every file (daily builds are'
                ~ ' DuckDB\'s; on ' ~ target.type ~ ' a delivery model is a table)', info=true) -%}
        {%- endif -%}
        (select file_checksum, source_file from {{ ingested }})
    {%- endif -%}
{%- endmacro %}

{% macro delivery_previous() -%}
    {#- The model's rows before this build: none in a whole build (config delivery_previous:
        the columns read, and their types). -#}
    {%- if target.type == 'duckdb' -%}
        meta.{{ this.identifier }}__previous
    {%- else -%}
        {#- config.get answers '' while dbt parses the model: no columns are known yet -#}
        {%- set columns = config.get('delivery_previous') -%}
        ({{ delivery_no_rows(columns if columns is mapping else {'batch_key': 'string'}) }})
    {%- endif -%}
{%- endmacro %}

{% macro delivery_no_rows(columns) -%}
    select
    {%- for name, type in columns.items() %}
        cast(null as {{ type }}) as {{ name }}{{ ',' if not loop.last }}
    {%- endfor %}
    where false
{%- endmacro %}

{% macro delivery_state_ddl() -%}
    create schema if not exists meta;
    create table if not exists meta.delivery_builds (
        relation_name varchar primary key,
        invocation_id varchar not null,
        generation varchar not null,
        fingerprint varchar not null,
        follows varchar not null,
        files_known boolean not null,
        built_at timestamptz not null
    );
    create table if not exists meta.delivery_files (
        relation_name varchar not null,
        file_checksum varchar not null,
        source_file varchar not null
    );
{%- endmacro %}

{% macro delivery_build_of(relation_name) -%}
    {#- meta.delivery_builds' row of `relation_name` as a dict, or none. -#}
    {%- set rows = run_query("select generation, fingerprint, follows, files_known "
        ~ "from meta.delivery_builds where relation_name = '" ~ relation_name ~ "'").rows -%}
    {%- if rows | length == 0 -%} {{ return(none) }} {%- endif -%}
    {{ return({'generation': rows[0][0], 'fingerprint': rows[0][1], 'follows': rows[0][2],
        'files_known': rows[0][3]}) }}
{%- endmacro %}

{% macro delivery_files_of(relation_name) -%}
    select file_checksum, source_file from meta.delivery_files
    where relation_name = '{{ relation_name }}'
{%- endmacro %}

{% macro delivery_upstreams_agree(upstreams) -%}
    {#- Whether every delivery model in `upstreams` has a record of its files, the same files. -#}
    {%- for upstream in upstreams -%}
        {%- set build = delivery_build_of(upstream) -%}
        {%- if build is none or not build.files_known -%} {{ return(false) }} {%- endif -%}
        {%- set differ = run_query("select count(*) from ((" ~ delivery_files_of(upstream) ~ ") except ("
            ~ delivery_files_of(upstreams[0]) ~ ")) as d").rows[0][0] -%}
        {%- if differ > 0 -%} {{ return(false) }} {%- endif -%}
    {%- endfor -%}
    {{ return(true) }}
{%- endmacro %}

{% macro delivery_whole_reason(own, existing, fingerprint, follows, upstream_files, agree) -%}
    {#- Why this build must be whole, or none when it may add the new files only. -#}
    {%- if existing is none or existing.type != 'table' -%} {{ return('first build') }} {%- endif -%}
    {%- if should_full_refresh() -%} {{ return('--full-refresh') }} {%- endif -%}
    {%- if not config.get('delivery_incremental', true) -%} {{ return('sample mode') }} {%- endif -%}
    {%- if own is none or not own.files_known -%} {{ return('no record of the files it was built from') }} {%- endif -%}
    {%- if own.fingerprint != fingerprint -%} {{ return('its SQL changed: the model, a macro or a var') }} {%- endif -%}
    {%- if own.follows != follows -%} {{ return('a model it reads was built whole since') }} {%- endif -%}
    {%- if not agree -%} {{ return('the models it reads hold different files') }} {%- endif -%}
    {%- set gone = run_query("select count(*) from (" ~ delivery_files_of(this.identifier)
        ~ ") as own anti join (" ~ upstream_files ~ ") as held using (file_checksum, source_file)").rows[0][0] -%}
    {%- if gone > 0 -%}
        {{ return(gone ~ ' of the files it was built from are gone: ingested again with other content, or forgotten') }}
    {%- endif -%}
    {%- if not config.get('delivery_follows') -%}
        {%- set ingested = source('quarantine', 'ingested_files') -%}
        {%- set early = run_query("select count(*) from " ~ ingested ~ " as new "
            ~ "anti join (" ~ delivery_files_of(this.identifier) ~ ") as own using (file_checksum) "
            ~ "where new.ingested_at <= (select max(ingested_at) from " ~ ingested
            ~ " semi join (" ~ delivery_files_of(this.identifier) ~ ") as own using (file_checksum))").rows[0][0] -%}
        {%- if early > 0 -%}
            {{ return(early ~ ' new files were ingested no later than the files it was built from') }}
        {%- endif -%}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{% materialization delivery, adapter='duckdb' %}
    {%- call statement('delivery_state') -%} {{ delivery_state_ddl() }} {%- endcall -%}
    {%- set existing = load_cached_relation(this) -%}
    {%- set upstreams = config.get('delivery_follows') or [] -%}
    {%- set fingerprint = local_md5(compiled_code) -%}
    {%- set own = delivery_build_of(this.identifier) -%}
    {%- set follows = [] -%}
    {%- for upstream in upstreams -%}
        {%- set build = delivery_build_of(upstream) -%}
        {%- do follows.append(upstream ~ ':' ~ (build.generation if build else '-')) -%}
    {%- endfor -%}
    {%- set follows = follows | join(',') -%}
    {%- if upstreams -%}
        {%- set upstream_files = delivery_files_of(upstreams[0]) -%}
        {%- set agree = delivery_upstreams_agree(upstreams) -%}
    {%- else -%}
        {%- set upstream_files = 'select file_checksum, source_file from ' ~ source('quarantine', 'ingested_files') -%}
        {%- set agree = true -%}
    {%- endif -%}
    {%- set reason = delivery_whole_reason(own, existing, fingerprint, follows, upstream_files, agree) -%}
    {%- set daily = reason is none -%}
    {%- set previous_columns = config.get('delivery_previous') -%}
    {%- set new_files_table = 'meta.' ~ this.identifier ~ '__new_files' -%}
    {%- set previous_view = 'meta.' ~ this.identifier ~ '__previous' -%}

    {#- the files to add and the earlier rows; the last build's record is forgotten first: a
        build stopped half-way leaves none that the next could trust -#}
    {%- call statement('delivery_inputs') -%}
        delete from meta.delivery_builds where relation_name = '{{ this.identifier }}';
        create or replace table {{ new_files_table }} as
        select file_checksum, source_file from ({{ upstream_files }}) as held
        {%- if daily %}
        anti join ({{ delivery_files_of(this.identifier) }}) as own using (file_checksum, source_file)
        {%- endif %};
        {%- if previous_columns %}
        create or replace view {{ previous_view }} as
        {% if daily -%}
        select {{ previous_columns.keys() | join(', ') }} from {{ this }}
        {%- else -%}
        {{ delivery_no_rows(previous_columns) }}
        {%- endif %};
        {%- endif %}
    {%- endcall -%}
    {%- do adapter.commit() -%}
    {%- set new_files = run_query('select count(*) from ' ~ new_files_table).rows[0][0] -%}
    {%- if daily -%}
        {{ log(this.identifier ~ ": adds the rows of " ~ new_files ~ " new files (daily build)", info=true) }}
        {%- set result = materialization_incremental_duckdb() -%}
    {%- else -%}
        {{ log(this.identifier ~ ": built whole from " ~ new_files ~ " files (" ~ reason ~ ")", info=true) }}
        {%- set result = materialization_table_duckdb() -%}
    {%- endif -%}
    {%- call statement('delivery_record') -%}
        delete from meta.delivery_files where relation_name = '{{ this.identifier }}';
        insert into meta.delivery_files
        select '{{ this.identifier }}', file_checksum, source_file from ({{ upstream_files }}) as held;
        insert or replace into meta.delivery_builds values (
            '{{ this.identifier }}', '{{ invocation_id }}',
            '{{ own.generation if daily else invocation_id }}',
            '{{ fingerprint }}', '{{ follows }}', {{ agree }}, now());
        drop table {{ new_files_table }};
        {%- if previous_columns %}
        drop view {{ previous_view }};
        {%- endif %}
    {%- endcall -%}
    {%- do adapter.commit() -%}
    {{ return(result) }}
{% endmaterialization %}
