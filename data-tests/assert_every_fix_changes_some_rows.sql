{{ config(severity='warn') }}
-- A fix that changes no row is usually a bug: a predicate that matches nothing (a typo in
-- an event name), or a fix the data no longer needs. `select * from fix_summary` shows
-- which fix; remove it from var 'fixes' if the data does not need it.
select fix_name, fix_position
from {{ ref('fix_summary') }}
where rows_changed = 0
