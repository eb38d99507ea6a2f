{#
    On Spark the quarantine files are a source Spark reads itself (docs/spark.md): on-run-start
    points raw.quarantine_lines, raw.rejected_lines and raw.ingested_files (the tables
    `loader ingest` writes on DuckDB, same columns) at the folder of var quarantine_path.
    Each file is read whole (text reader, wholetext) and split on line feeds, so line numbers
    are exact; gzip is read when the name ends in .gz. A no-op on DuckDB.
#}

{% macro spark_quarantine_source() -%}
    {%- if execute and target.type == 'spark' -%}
        {%- set path = var('quarantine_path', none) -%}
        {%- if not path -%}
            {{ exceptions.raise_compiler_error(
                "On Spark, set var quarantine_path to the folder of quarantine files "
                ~ "(e.g. --vars '{quarantine_path: /data/quarantine}'): Spark reads them itself.") }}
        {%- endif -%}
        {%- set files = 'raw.quarantine_files_' ~ local_md5(path)[:12] -%}
        {%- do run_query('create schema if not exists raw') -%}
        {%- do run_query("create table if not exists " ~ files ~ " (value string) using text options ("
            ~ "path " ~ dbt.string_literal(path) ~ ", wholetext 'true', recursiveFileLookup 'true')") -%}
        {%- do run_query('refresh table ' ~ files) -%}
        {%- do run_query('create or replace view raw.quarantine_file_lines as ' ~ spark_quarantine_file_lines(files)) -%}
        {%- do run_query("create or replace view raw.quarantine_lines as
            select source_file, line_number, line as batch_json, file_checksum, ingested_at
            from raw.quarantine_file_lines where reason is null") -%}
        {%- do run_query("create or replace view raw.rejected_lines as
            select source_file, line_number, reason, left(line, 200) as line_excerpt, file_checksum, ingested_at
            from raw.quarantine_file_lines where reason is not null and reason <> 'blank'") -%}
        {%- do run_query("create or replace view raw.ingested_files as
            select source_file, file_checksum, max(size_bytes) as size_bytes, max(is_gzip) as is_gzip,
                count_if(reason is null) as lines_loaded,
                count_if(reason is not null and reason <> 'blank') as lines_rejected,
                max(ingested_at) as ingested_at
            from raw.quarantine_file_lines group by source_file, file_checksum") -%}
    {%- endif -%}
{%- endmacro %}

{% macro spark_quarantine_file_lines(files) -%}
    {#- Every line of every data file (verification files aside), with why it cannot be
        loaded: 'blank' (skipped, as `loader ingest` does), 'invalid JSON', 'not a JSON object'. -#}
    with data_files as (
        select
            url_decode(regexp_replace(_metadata.file_path, '^file:(//)?', '')) as source_file,
            _metadata.file_modification_time as ingested_at,
            _metadata.file_size as size_bytes,
            lower(_metadata.file_name) like '%.gz' as is_gzip,
            sha2(value, 256) as file_checksum,
            value
        from {{ files }}
        where not (lower(_metadata.file_name) like 'mparticle\\_bucket\\_verification\\_%'
            or lower(_metadata.file_name) = 'mparticle_validation.txt')
    ),

    lines as (
        select
            source_file, ingested_at, size_bytes, is_gzip, file_checksum,
            cast(pos + 1 as bigint) as line_number,
            regexp_replace(line, '\r$', '') as line
        from data_files
        lateral view posexplode(split(value, '\n')) split_lines as pos, line
    )

    select
        *,
        case
            when trim(line) = '' then 'blank'
            when try_parse_json(line) is null then 'invalid JSON'
            when left(ltrim(line), 1) <> '{' then 'not a JSON object'
        end as reason
    from lines
{%- endmacro %}

{% macro replay_set_parquet() -%}
    {#- Post-hook of replay_events on Spark: with var replay_set_path, the replay set written
        there as Parquet (the folder's content is replaced), for `loader push --replay-set`. -#}
    {%- set path = var('replay_set_path', none) -%}
    {%- if target.type == 'spark' and path -%}
        insert overwrite directory {{ dbt.string_literal(path) }} using parquet
        select * from {{ this }}
    {%- endif -%}
{%- endmacro %}
