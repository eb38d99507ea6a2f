-- Ledgers written before the ledger had a schema version (releases up to 86fd2f9): the
-- columns those releases added one by one, with the values their readers assumed.
-- Error codes of old messages are filled in by the migration's Python step.
create table if not exists schema_versions (
    version integer primary key,
    applied_at timestamptz not null,
    description varchar not null
);
alter table runs add column if not exists events_not_sent bigint default 0;
alter table runs add column if not exists batches_not_sent bigint default 0;
alter table runs add column if not exists sample_users integer;
-- before there was a choice, every run went to the Events API
alter table runs add column if not exists destination varchar default 'events_api';
alter table batches add column if not exists error_code varchar;
alter table batches add column if not exists error_reason varchar;
