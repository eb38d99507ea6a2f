-- Batch numbers: the order the ledger recorded batches in, which is the order their rows
-- lie in. The send loop updates the batches it sends by number and id, so DuckDB reads
-- only the row groups whose numbers cover them (their zone maps) instead of every batch
-- once a turn. Batches recorded before get the numbers of the order their rows lie in.
alter table batches add column if not exists batch_no bigint;
update batches set batch_no = rowid + 1 where batch_no is null;
