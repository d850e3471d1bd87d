-- The duplicate groups a cleansing job found, with what it did with each: listed by
-- ListDuplicateClusters and exported by `idic export duplicates`.

CREATE TABLE duplicate_clusters (
    job_id      uuid   NOT NULL,
    cluster_id  bigint NOT NULL,
    -- [{"customer": uuid, "score": p}]
    members     jsonb  NOT NULL,
    -- [{"customer": uuid, "other_customer": uuid, "score": p}]
    links       jsonb  NOT NULL,
    disposition text   NOT NULL CHECK (disposition IN ('auto_merged', 'review', 'partially_merged', 'unresolved')),
    survivor    uuid,
    merge_id    uuid,
    candidates  uuid[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (job_id, cluster_id)
);
