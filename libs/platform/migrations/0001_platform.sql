-- Tables every service schema has, owned by libs/platform: the transactional outbox
-- of events, consumed-event bookkeeping, long-running jobs, the append-only audit
-- log and idempotency keys. Platform migrations use versions below 1000; service
-- migrations start at 1000.

CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    stream       text        NOT NULL,
    payload      bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

CREATE TABLE processed_events (
    consumer_group text        NOT NULL,
    event_id       text        NOT NULL,
    processed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id)
);

CREATE TABLE jobs (
    id             uuid PRIMARY KEY,
    kind           text        NOT NULL,
    state          text        NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress_done  bigint      NOT NULL DEFAULT 0,
    progress_total bigint      NOT NULL DEFAULT 0,
    params         jsonb       NOT NULL DEFAULT '{}',
    result         jsonb,
    error_message  text        NOT NULL DEFAULT '',
    created_by     text        NOT NULL,
    create_time    timestamptz NOT NULL DEFAULT now(),
    start_time     timestamptz,
    end_time       timestamptz,
    heartbeat_time timestamptz
);
CREATE INDEX jobs_newest_first ON jobs (create_time DESC, id DESC);
CREATE INDEX jobs_queued ON jobs (create_time) WHERE state = 'queued';

CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    time     timestamptz NOT NULL DEFAULT now(),
    caller   text        NOT NULL,
    action   text        NOT NULL,
    resource text        NOT NULL,
    reason   text        NOT NULL DEFAULT '',
    detail   jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_by_resource ON audit_log (resource, id DESC);
CREATE INDEX audit_log_by_time ON audit_log (time DESC, id DESC);

-- The audit log is append-only: no row is ever changed or removed.
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();

CREATE TABLE idempotency_keys (
    method       text        NOT NULL,
    request_id   text        NOT NULL,
    request_hash bytea       NOT NULL,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (method, request_id)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
