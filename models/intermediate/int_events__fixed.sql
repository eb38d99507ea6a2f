-- The end of the fix chain (var 'fixes'): the classified events with every fix applied.
-- A view: the last fix is already a table.
{{ config(materialized='view') }}

select * from {{ fix_chain_output() }}
