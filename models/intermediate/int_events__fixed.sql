-- The end of the fix chain (var 'fixes'): the classified events with every fix applied.

select * from {{ fix_chain_output() }}
