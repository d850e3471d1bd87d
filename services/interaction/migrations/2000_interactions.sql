-- Interactions: one row per contact, partitioned by month of occurred_at so that old
-- months are dropped whole by retention and one customer's timeline reads only the
-- newest partitions it needs. Partitions are created ahead by the service
-- (store::partitions); there is no default partition, so a month is always one table.
CREATE TABLE interactions (
    -- UUIDv7 whose timestamp is occurred_at (to the millisecond): the partition of an
    -- interaction is known from its id.
    id uuid NOT NULL,
    occurred_at timestamptz NOT NULL,
    -- The customer it belongs to now (after merges); NULL once anonymised by an erasure.
    customer_id uuid,
    -- The customer it was first recorded under (to undo a merge); NULL once anonymised.
    recorded_customer_id uuid,
    channel smallint NOT NULL,
    kind smallint NOT NULL,
    direction smallint NOT NULL,
    purpose smallint NOT NULL,
    recorded_at timestamptz NOT NULL,
    request_id text NOT NULL,
    -- Currency of the item prices and total (one per interaction).
    currency text,
    total_minor bigint,
    -- Product lines, as a JSON array (see store::interactions::ItemRow).
    items jsonb,
    campaign text NOT NULL DEFAULT '',
    offer text NOT NULL DEFAULT '',
    offer_response smallint NOT NULL DEFAULT 0,
    complaint text NOT NULL DEFAULT '',
    feedback text NOT NULL DEFAULT '',
    related_interaction text NOT NULL DEFAULT '',
    duration_ms bigint,
    handled_by text NOT NULL DEFAULT '',
    source text NOT NULL DEFAULT '',
    source_reference text NOT NULL DEFAULT '',
    note text NOT NULL DEFAULT '',
    attributes jsonb,
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- One customer's timeline, newest first, whatever the table's size: each partition's
-- index is read in order and the scan stops at the page's end.
CREATE INDEX interactions_timeline ON interactions (customer_id, occurred_at DESC, id DESC);

-- Idempotency keys of RecordInteraction and IngestInteractions (one key space). A
-- unique key over a partitioned table must hold the partition key, which request ids
-- cannot: so keys live in their own table, claimed in the same statement as the insert.
CREATE TABLE interaction_keys (
    request_id text PRIMARY KEY,
    interaction_id uuid NOT NULL,
    occurred_at timestamptz NOT NULL
);

-- Merges learnt from identification's `customer.merged`: each merged customer and the
-- customer it was merged into (directly). Drives timelines' merged_customer_ids and
-- undoing a merge.
CREATE TABLE customer_merges (
    merged_customer_id uuid PRIMARY KEY,
    survivor_customer_id uuid NOT NULL,
    merge text NOT NULL,
    merged_at timestamptz NOT NULL
);
CREATE INDEX customer_merges_survivor ON customer_merges (survivor_customer_id);

-- Customers erased by identification: no interaction is recorded for them any more,
-- even through a resolution cached before the erasure. Ids only, no personal data.
CREATE TABLE erased_customers (
    customer_id uuid PRIMARY KEY,
    erasure text NOT NULL,
    erased_at timestamptz NOT NULL
);
