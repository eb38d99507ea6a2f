{#
    The engines this project writes SQL for: DuckDB (duckdb__ macros) and Spark (spark__
    macros). Each engine-specific macro dispatches in this project's namespace, and its
    default__ stops the compile naming the engine, so another engine fails clearly instead
    of running DuckDB's SQL. check_engine stops a build on another engine before it starts
    (on-run-start), as some models and macros branch on target.type inline.
#}

{% macro unsupported_engine(name) -%}
    {{ exceptions.raise_compiler_error(
        "macro " ~ name ~ " has no SQL for engine '" ~ target.type ~ "': this project runs on "
        ~ "DuckDB (macro duckdb__" ~ name ~ ") and Spark (macro spark__" ~ name ~ ")"
    ) }}
{%- endmacro %}

{% macro check_engine() -%}
    {%- if target.type not in ('duckdb', 'spark') -%}
        {{ exceptions.raise_compiler_error(
            "this project runs on DuckDB and Spark, not on engine '" ~ target.type
            ~ "' (target " ~ target.name ~ " in profiles.yml)"
        ) }}
    {%- endif -%}
{%- endmacro %}
