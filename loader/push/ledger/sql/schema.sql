-- The ledger's tables, as a new ledger gets them (schema version: `schema.SCHEMA_VERSION`).
-- A ledger written by an earlier release reaches the same shape through migrations/.
create sequence if not exists run_ids start 1;
create sequence if not exists request_ids start 1;
create table schema_versions (
    version integer primary key,
    applied_at timestamptz not null,
    description varchar not null
);
create table runs (
    run_id integer primary key,
    started_at timestamptz not null,
    finished_at timestamptz,
    status varchar not null,
    endpoint varchar not null,
    api_key_fingerprint varchar not null,
    options json not null,
    message varchar,
    events_planned bigint not null default 0,
    batches_planned bigint not null default 0,
    events_resumed bigint not null default 0,
    events_acknowledged bigint not null default 0,
    batches_acknowledged bigint not null default 0,
    events_failed bigint not null default 0,
    batches_failed bigint not null default 0,
    events_rejected bigint not null default 0,
    batches_rejected bigint not null default 0,
    events_already_acknowledged bigint not null default 0,
    events_changed_skipped bigint not null default 0,
    events_changed_resent bigint not null default 0,
    events_rejected_before bigint not null default 0,
    http_requests bigint not null default 0,
    events_not_sent bigint default 0,
    batches_not_sent bigint default 0,
    sample_users integer,
    -- events_api, or a direct destination (amplitude)
    destination varchar not null
);
create table batches (
    source_request_id varchar primary key,
    run_id integer not null,
    last_run_id integer not null,
    user_key varchar not null,
    context_key varchar not null,
    event_count integer not null,
    body_bytes integer not null,
    status varchar not null,
    error varchar,
    attempts integer not null default 0,
    planned_at timestamptz not null,
    first_sent_at timestamptz,
    last_sent_at timestamptz,
    settled_at timestamptz,
    error_code varchar,
    error_reason varchar,
    -- the run's destination: each destination's events are kept apart
    destination varchar not null,
    -- the order the ledger recorded (or last planned) batches in: rows lie in this order,
    -- so a statement on a few batches by number reads only the row groups that hold them
    batch_no bigint
);
create table batch_events (
    source_request_id varchar not null,
    position integer not null,
    replay_key varchar not null,
    content_hash varchar not null
);
create table requests (
    request_id bigint primary key default nextval('request_ids'),
    run_id integer not null,
    request_no integer not null,
    attempt integer not null,
    sent_at timestamptz not null,
    latency_ms integer,
    status_code integer,
    outcome varchar not null,
    batch_count integer not null,
    body_bytes integer not null,
    source_request_ids varchar[] not null,
    retry_after varchar,
    rate_limit_exceeded varchar,
    rate_limit_percentage_used varchar,
    error varchar,
    wait_ms integer
);
