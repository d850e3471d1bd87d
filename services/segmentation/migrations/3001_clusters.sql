-- Needs clusters of a k-means model and each customer's assignment.

CREATE TABLE clusters (
    id uuid PRIMARY KEY,
    model uuid NOT NULL REFERENCES models (id),
    label text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    customer_count bigint NOT NULL,
    customer_share double precision NOT NULL,
    -- [{feature, cluster_mean, population_mean, z_score}] in the model's feature order.
    features jsonb NOT NULL,
    average_clv double precision NOT NULL,
    -- {tier number: customers}
    tier_counts jsonb NOT NULL,
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL
);
CREATE INDEX clusters_model ON clusters (model, customer_count DESC, id);
-- Labels are unique within a model (rules name clusters by label).
CREATE UNIQUE INDEX clusters_label ON clusters (model, label);

CREATE TABLE customer_clusters (
    customer_id uuid PRIMARY KEY,
    cluster_id uuid NOT NULL REFERENCES clusters (id),
    distance double precision NOT NULL,
    features jsonb NOT NULL,
    assign_time timestamptz NOT NULL
);

ALTER TABLE customer_values ADD COLUMN cluster_id uuid, ADD COLUMN cluster_label text;
