-- The value side of segmentation: what it learned from interaction events, the metrics
-- and grades it keeps per customer, the fitted models, tier history and settings.

-- Every interaction seen on `interaction.recorded` that value reads: purchases and
-- returns (amount, items) and the contacts that cost money to serve. The primary key
-- makes redelivered events no-ops.
CREATE TABLE interactions (
    interaction_id text PRIMARY KEY,
    customer_id uuid NOT NULL,
    kind text NOT NULL,
    channel integer NOT NULL,
    occur_time timestamptz NOT NULL,
    amount_minor bigint NOT NULL DEFAULT 0,
    currency_code text NOT NULL DEFAULT '',
    item_count double precision NOT NULL DEFAULT 0,
    categories text[] NOT NULL DEFAULT '{}',
    products text[] NOT NULL DEFAULT '{}'
);
-- A customer's history, for the live RFM update and merges.
CREATE INDEX interactions_customer ON interactions (customer_id, occur_time);

-- One row per customer segmentation knows: live RFM figures (updated from events) and
-- the scores and grade of the last rescoring (NULL until graded).
CREATE TABLE customer_values (
    customer_id uuid PRIMARY KEY,
    currency_code text NOT NULL,
    first_purchase_time timestamptz,
    last_purchase_time timestamptz,
    purchase_count bigint NOT NULL DEFAULT 0,
    total_spend_minor bigint NOT NULL DEFAULT 0,
    window_frequency bigint NOT NULL DEFAULT 0,
    window_spend_minor bigint NOT NULL DEFAULT 0,
    window_days integer NOT NULL DEFAULT 365,
    category_count integer NOT NULL DEFAULT 0,
    update_time timestamptz NOT NULL DEFAULT now(),
    -- Scores of the last rescoring.
    recency_score smallint,
    frequency_score smallint,
    monetary_score smallint,
    purchase_model uuid,
    spend_model uuid,
    expected_purchases double precision,
    p_alive double precision,
    p_alive_change double precision,
    expected_spend double precision,
    clv double precision,
    horizon_days integer,
    discount_rate double precision,
    margin double precision,
    cost_to_serve double precision,
    cost_lines jsonb,
    profit double precision,
    window_revenue double precision,
    growth_ratio double precision,
    tier smallint NOT NULL DEFAULT 0,
    previous_tier smallint NOT NULL DEFAULT 0,
    tier_start_time timestamptz,
    at_risk boolean NOT NULL DEFAULT false,
    value_percentile double precision,
    score_time timestamptz,
    compute_time timestamptz
);
CREATE INDEX customer_values_graded ON customer_values (clv DESC) WHERE score_time IS NOT NULL;

-- Customer ids merged into another: they answer for their survivor.
CREATE TABLE merged_customers (
    customer_id uuid PRIMARY KEY,
    survivor_id uuid NOT NULL
);
CREATE INDEX merged_customers_survivor ON merged_customers (survivor_id);

-- Every change of a customer's tier or at-risk flag, newest first by (time, id).
CREATE TABLE tier_changes (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    tier smallint NOT NULL,
    previous_tier smallint NOT NULL,
    at_risk boolean NOT NULL,
    previous_at_risk boolean NOT NULL,
    change_time timestamptz NOT NULL,
    reason smallint NOT NULL,
    job uuid,
    clv double precision NOT NULL,
    p_alive double precision NOT NULL
);
CREATE INDEX tier_changes_customer ON tier_changes (customer_id, change_time DESC, id DESC);

-- Fitted models. `body` is the encoded idic.segmentation.v1.Model as fitted; kind and
-- state are columns to filter and to keep one active model per kind.
CREATE TABLE models (
    id uuid PRIMARY KEY,
    kind smallint NOT NULL,
    state smallint NOT NULL,
    fit_time timestamptz NOT NULL,
    parameters jsonb NOT NULL,
    body bytea NOT NULL
);
CREATE INDEX models_newest ON models (fit_time DESC, id DESC);
CREATE UNIQUE INDEX models_one_active_per_kind ON models (kind) WHERE state = 1;

-- The value settings singleton: the encoded idic.segmentation.v1.ValueSettings
-- holding every effective value.
CREATE TABLE value_settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    body bytea NOT NULL,
    etag text NOT NULL,
    update_time timestamptz NOT NULL DEFAULT now()
);

-- Category spend facts (share of wallet), one per customer, category and period.
CREATE TABLE category_spends (
    customer_id uuid NOT NULL,
    category text NOT NULL,
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    total_spend_minor bigint NOT NULL,
    currency_code text NOT NULL,
    source smallint NOT NULL,
    source_detail text NOT NULL DEFAULT '',
    record_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, category, period_start, period_end)
);
