-- What the recommender learns from. Postgres holds the truth; every replica keeps its model in
-- memory and tails these tables by `seq` (a row is appended, never updated in place, except
-- that a merge re-keys it and an erasure deletes it, both announced in `customer_changes`).

-- One customer's feedback on one product: a view, a basket addition, a purchase, or a negative
-- word (a return, "not interested"). `source_id` (the interaction id or the feedback's request)
-- makes redeliveries harmless.
CREATE TABLE item_feedback (
    seq          bigserial PRIMARY KEY,
    source_id    text NOT NULL UNIQUE,
    customer_id  uuid NOT NULL,
    product_id   text NOT NULL,
    -- 1 view, 2 basket, 3 purchase, 4 negative (domain::recommend::FeedbackKind).
    kind         smallint NOT NULL CHECK (kind BETWEEN 1 AND 4),
    occur_time   timestamptz NOT NULL
);
CREATE INDEX item_feedback_customer ON item_feedback (customer_id);
CREATE INDEX item_feedback_occur_time ON item_feedback (occur_time);

-- Customers whose rows were re-keyed (merged away) or removed (erased): each replica reloads
-- their histories from item_feedback.
CREATE TABLE customer_changes (
    seq          bigserial PRIMARY KEY,
    customer_id  uuid NOT NULL,
    change_time  timestamptz NOT NULL DEFAULT now()
);

-- Customers who withdrew profiling consent (from identification's consent.changed): served
-- like guests. The newest observed decision wins.
CREATE TABLE profiling_consent (
    customer_id   uuid PRIMARY KEY,
    withdrawn     boolean NOT NULL,
    observe_time  timestamptz NOT NULL,
    seq           bigint NOT NULL
);
CREATE SEQUENCE profiling_consent_seq OWNED BY profiling_consent.seq;

-- Reactions to recommended items (RecordRecommendationFeedback). Negative kinds suppress the
-- product (or, for NOT_THIS_CATEGORY, its first category) until `suppressed_until`.
CREATE TABLE recommendation_feedback (
    seq               bigserial PRIMARY KEY,
    customer_id       uuid NOT NULL,
    product_id        text NOT NULL,
    -- FeedbackKind number of the API.
    kind              smallint NOT NULL,
    recommendation_id uuid,
    suppressed_until  timestamptz,
    -- The category suppressed by NOT_THIS_CATEGORY; empty otherwise.
    category          text NOT NULL DEFAULT '',
    record_time       timestamptz NOT NULL,
    request_id        text UNIQUE
);
CREATE INDEX recommendation_feedback_customer ON recommendation_feedback (customer_id);

-- Answers of Recommend, to attribute feedback to them; kept 30 days.
CREATE TABLE recommendations (
    recommendation_id uuid PRIMARY KEY,
    customer_id       uuid,
    products          text[] NOT NULL,
    create_time       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recommendations_create_time ON recommendations (create_time);

-- Retrainings that succeeded, newest last: every replica rebuilds its model when a newer one
-- appears, with the settings recorded here.
CREATE TABLE model_versions (
    version              bigserial PRIMARY KEY,
    job_id               uuid,
    window_start         timestamptz NOT NULL,
    half_life_days       double precision NOT NULL,
    neighbours_per_item  integer NOT NULL,
    interactions         bigint NOT NULL,
    items                integer NOT NULL,
    train_time           timestamptz NOT NULL DEFAULT now()
);

-- Customers merged into another: feedback arriving later under their id goes to the survivor.
CREATE TABLE merged_customers (
    customer_id  uuid PRIMARY KEY,
    survivor_id  uuid NOT NULL
);
