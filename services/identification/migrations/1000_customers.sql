-- The customer file: customers (people and organisations) and their normalised
-- identifiers. Profile facts, consent, merges and erasure come with their features.

CREATE TABLE customers (
    id                 uuid PRIMARY KEY,
    kind               text        NOT NULL CHECK (kind IN ('person', 'organization')),
    state              text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'merged', 'erased')),
    roles              text[]      NOT NULL DEFAULT '{}',
    display_name       text        NOT NULL DEFAULT '',
    given_name         text        NOT NULL DEFAULT '',
    family_name        text        NOT NULL DEFAULT '',
    preferred_name     text        NOT NULL DEFAULT '',
    organization_name  text        NOT NULL DEFAULT '',
    birth_year         smallint,
    birth_month        smallint,
    birth_day          smallint,
    parent_id          uuid REFERENCES customers (id),
    job_title          text        NOT NULL DEFAULT '',
    preferred_language text        NOT NULL DEFAULT '',
    time_zone          text        NOT NULL DEFAULT '',
    preferred_channel  text        NOT NULL DEFAULT '',
    merged_into        uuid REFERENCES customers (id),
    version            bigint      NOT NULL DEFAULT 1,
    create_time        timestamptz NOT NULL DEFAULT now(),
    update_time        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_by_create_time ON customers (create_time, id);
CREATE INDEX customers_by_parent ON customers (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE identifiers (
    id          bigserial PRIMARY KEY,
    customer_id uuid        NOT NULL REFERENCES customers (id),
    kind        text        NOT NULL,
    namespace   text        NOT NULL DEFAULT '',
    value       text        NOT NULL,
    priority    smallint    NOT NULL DEFAULT 50,
    source      text        NOT NULL DEFAULT '',
    add_time    timestamptz NOT NULL DEFAULT now()
);
-- One holder per value and kind; addresses are shared by households, so not unique.
CREATE UNIQUE INDEX identifiers_unique_value ON identifiers (kind, namespace, value)
    WHERE kind <> 'postal_address';
CREATE INDEX identifiers_by_value ON identifiers (kind, namespace, value);
CREATE INDEX identifiers_by_customer ON identifiers (customer_id);
