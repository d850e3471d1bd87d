-- Profile facts: everything learnt about a customer, appended with its provenance and
-- never overwritten. The current value of a key is derived (newest trusted
-- observation); keys named after a customers column also update that column.

CREATE TABLE fact_keys (
    key        text PRIMARY KEY,
    value_type text        NOT NULL CHECK (value_type IN ('string', 'int', 'double', 'bool', 'date')),
    first_seen timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE profile_facts (
    id                 bigserial PRIMARY KEY,
    customer_id        uuid        NOT NULL REFERENCES customers (id),
    origin_customer_id uuid        NOT NULL REFERENCES customers (id),
    key                text        NOT NULL,
    value              jsonb       NOT NULL,
    source             text        NOT NULL,
    channel            text        NOT NULL DEFAULT '',
    trusted            boolean     NOT NULL,
    observe_time       timestamptz NOT NULL,
    record_time        timestamptz NOT NULL DEFAULT now(),
    recorded_by        text        NOT NULL
);
CREATE INDEX profile_facts_by_customer_key ON profile_facts (customer_id, key, observe_time DESC, id DESC);
CREATE INDEX profile_facts_by_customer_time ON profile_facts (customer_id, observe_time DESC, id DESC);
