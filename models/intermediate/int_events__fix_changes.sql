-- Which fix changed which row, and which columns: each fix's output compared with its
-- input, on replay_key (macro fix_changes_sql). Fixes are tables, so each comparison reads
-- two stored steps. On DuckDB a fix loop compares again only the fixes rebuilt since this
-- table was built, and keeps the others' rows (materialization fix_change_log,
-- macros/fix_change_log.sql).
{{ config(materialized=('fix_change_log' if target.type == 'duckdb' else 'table')) }}

{{ fix_changes_sql(fix_chain()) }}
