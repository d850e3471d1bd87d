-- Identifiers get a life: held or history (removed, with why), verified, last seen,
-- stale (superseded by a newer one), shared (covered by a SHARED rule). Rules block
-- junk values or mark values many people legitimately hold. Merge candidates are
-- pairs waiting for a human decision; cannot-links are pairs never to merge again.

ALTER TABLE identifiers
    ADD COLUMN state          text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'removed')),
    ADD COLUMN verified       boolean     NOT NULL DEFAULT false,
    ADD COLUMN channel        text        NOT NULL DEFAULT '',
    ADD COLUMN observe_time   timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_seen_time timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN shared         boolean     NOT NULL DEFAULT false,
    ADD COLUMN stale          boolean     NOT NULL DEFAULT false,
    ADD COLUMN superseded_by  bigint REFERENCES identifiers (id),
    ADD COLUMN remove_time    timestamptz,
    ADD COLUMN removal_reason text CHECK (removal_reason IN ('requested', 'limit', 'blocked', 'unmerged')),
    ADD COLUMN removal_note   text        NOT NULL DEFAULT '';

-- One active holder per value and kind, except addresses (households) and shared values.
DROP INDEX identifiers_unique_value;
CREATE UNIQUE INDEX identifiers_unique_value ON identifiers (kind, namespace, value)
    WHERE state = 'active' AND NOT shared AND kind <> 'postal_address';
DROP INDEX identifiers_by_customer;
CREATE INDEX identifiers_by_customer ON identifiers (customer_id, kind);

CREATE TABLE identifier_rules (
    id          uuid PRIMARY KEY,
    kind        text        NOT NULL,
    namespace   text        NOT NULL DEFAULT '',
    value       text        NOT NULL,
    action      text        NOT NULL CHECK (action IN ('block', 'shared')),
    reason      text        NOT NULL,
    automatic   boolean     NOT NULL DEFAULT false,
    created_by  text        NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, namespace, value)
);
CREATE INDEX identifier_rules_by_time ON identifier_rules (create_time DESC, id);

-- A pair proposed for merging. customer_id is the proposed survivor (the older record).
CREATE TABLE merge_candidates (
    id                uuid PRIMARY KEY,
    customer_id       uuid             NOT NULL REFERENCES customers (id),
    duplicate_id      uuid             NOT NULL REFERENCES customers (id),
    score             double precision NOT NULL,
    match_weight      double precision NOT NULL,
    evidence          jsonb            NOT NULL DEFAULT '[]',
    origin            text             NOT NULL CHECK (origin IN ('resolve', 'import', 'cleansing')),
    state             text             NOT NULL DEFAULT 'pending'
                                       CHECK (state IN ('pending', 'accepted', 'rejected', 'obsolete')),
    cleansing_job     uuid,
    cluster_id        text,
    merge_id          uuid,
    create_time       timestamptz      NOT NULL DEFAULT now(),
    resolve_time      timestamptz,
    resolved_by       text             NOT NULL DEFAULT '',
    resolution_reason text             NOT NULL DEFAULT '',
    CHECK (customer_id <> duplicate_id)
);
-- At most one open proposal per pair, whichever way round.
CREATE UNIQUE INDEX merge_candidates_one_pending_per_pair
    ON merge_candidates (LEAST(customer_id, duplicate_id), GREATEST(customer_id, duplicate_id))
    WHERE state = 'pending';
CREATE INDEX merge_candidates_by_state_score ON merge_candidates (state, score DESC, id);
CREATE INDEX merge_candidates_by_customer ON merge_candidates (customer_id);
CREATE INDEX merge_candidates_by_duplicate ON merge_candidates (duplicate_id);

-- Pairs that must never be merged automatically; stored with low < high.
CREATE TABLE cannot_links (
    low_id      uuid        NOT NULL REFERENCES customers (id),
    high_id     uuid        NOT NULL REFERENCES customers (id),
    reason      text        NOT NULL,
    created_by  text        NOT NULL,
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (low_id, high_id),
    CHECK (low_id < high_id)
);
CREATE INDEX cannot_links_by_high ON cannot_links (high_id);
