-- Merges: the merge log (one row per merge, one per merged part) and what each merge
-- moved, so that an unmerge gives back exactly what a part brought. Identifiers and
-- facts move to the survivor and keep the customer they came from; contacts of a merged
-- organisation are re-pointed and remembered; consent records never move (the ledger is
-- append-only): a survivor's consent view covers its merge family instead.

CREATE TABLE merges (
    id          uuid PRIMARY KEY,
    survivor_id uuid             NOT NULL REFERENCES customers (id),
    rule        text             NOT NULL CHECK (rule IN ('manual', 'review', 'auto_cleansing')),
    score       double precision CHECK (score BETWEEN 0 AND 1),
    reason      text             NOT NULL,
    merged_by   text             NOT NULL,
    create_time timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX merges_by_survivor ON merges (survivor_id, create_time DESC);

-- The customers merged by a merge; a part stays open until it is unmerged.
CREATE TABLE merge_parts (
    merge_id       uuid        NOT NULL REFERENCES merges (id),
    customer_id    uuid        NOT NULL REFERENCES customers (id),
    position       smallint    NOT NULL,
    unmerge_time   timestamptz,
    unmerged_by    text        NOT NULL DEFAULT '',
    unmerge_reason text        NOT NULL DEFAULT '',
    PRIMARY KEY (merge_id, customer_id)
);
CREATE UNIQUE INDEX merge_parts_one_open_per_customer ON merge_parts (customer_id) WHERE unmerge_time IS NULL;

-- origin_customer_id: the customer an identifier came from when a merge moved it to its
-- holder (NULL: the holder's own, so inserts need not set it). retired_by_merge: the
-- merge whose survivorship retired it (over a limit, or a value held twice), so that
-- undoing the merge restores it.
ALTER TABLE identifiers
    ADD COLUMN origin_customer_id uuid REFERENCES customers (id),
    ADD COLUMN retired_by_merge   uuid REFERENCES merges (id);

-- Contacts whose parent organisation was merged away, with the parent they had.
CREATE TABLE merge_repointed_contacts (
    merge_id         uuid NOT NULL REFERENCES merges (id),
    contact_id       uuid NOT NULL REFERENCES customers (id),
    former_parent_id uuid NOT NULL REFERENCES customers (id),
    PRIMARY KEY (merge_id, contact_id)
);

CREATE INDEX customers_by_merged_into ON customers (merged_into) WHERE merged_into IS NOT NULL;

-- A customer and every customer merged into it, directly or through others: whose
-- consent records a survivor's consent reads cover, and what an erasure erases.
CREATE FUNCTION merge_family(root uuid) RETURNS SETOF uuid LANGUAGE sql STABLE AS $$
    WITH RECURSIVE family (id) AS (
        SELECT root
        UNION
        SELECT c.id FROM customers c JOIN family f ON c.merged_into = f.id WHERE c.state = 'merged'
    )
    SELECT id FROM family
$$;
