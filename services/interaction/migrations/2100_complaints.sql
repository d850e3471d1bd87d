-- Complaints, followed from opening to resolution; the daily chart is computed from
-- this table (opened per day, resolved per day, first-contact resolution, durations).
CREATE TABLE complaints (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    category text NOT NULL,
    channel smallint NOT NULL,
    severity smallint NOT NULL,
    owner text NOT NULL DEFAULT '',
    product_id text NOT NULL DEFAULT '',
    summary text NOT NULL,
    description text NOT NULL DEFAULT '',
    -- 1 open, 2 resolved (ComplaintState).
    state smallint NOT NULL,
    opened_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    resolved_at timestamptz,
    resolution smallint NOT NULL DEFAULT 0,
    resolution_note text NOT NULL DEFAULT '',
    -- The opening contact plus every contact recorded about it while open.
    contact_count integer NOT NULL DEFAULT 1,
    -- The opening interaction, `interactions/{id}`; empty when none is linked.
    interaction text NOT NULL DEFAULT '',
    -- Bumped by every change; the etag.
    version bigint NOT NULL DEFAULT 1,
    CHECK (state = 1 AND resolved_at IS NULL OR state = 2 AND resolved_at IS NOT NULL)
);

-- Listing, newest opened first (the keyset is opened_at, id).
CREATE INDEX complaints_opened ON complaints (opened_at DESC, id DESC);
-- A customer's complaints, and the contact policy's "oldest open complaint".
CREATE INDEX complaints_customer ON complaints (customer_id, opened_at DESC, id DESC);
CREATE INDEX complaints_open ON complaints (customer_id, opened_at) WHERE state = 1;
-- The chart reads the complaints resolved in a period.
CREATE INDEX complaints_resolved ON complaints (resolved_at) WHERE resolved_at IS NOT NULL;
