-- Customers' saved configurations of configurable products ("remember the specs"), offered as
-- defaults next time. One row per customer, product and variant: saving the same selections
-- again updates the row.
CREATE TABLE saved_configurations (
    configuration_id  uuid PRIMARY KEY,
    customer_id       uuid NOT NULL,
    product_id        text NOT NULL REFERENCES products (product_id),
    -- [{"group": ..., "option": ...}, ...] as chosen.
    selections        jsonb NOT NULL,
    variant_key       text NOT NULL,
    display_name      text NOT NULL DEFAULT '',
    is_default        boolean NOT NULL DEFAULT false,
    saved_currency    text NOT NULL,
    saved_price_minor bigint NOT NULL,
    modules_revision  bigint NOT NULL,
    create_time       timestamptz NOT NULL DEFAULT now(),
    update_time       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX saved_configurations_variant ON saved_configurations (customer_id, product_id, variant_key);
CREATE UNIQUE INDEX saved_configurations_default ON saved_configurations (customer_id, product_id) WHERE is_default;
-- Most recently used first, paged.
CREATE INDEX saved_configurations_recent
    ON saved_configurations (customer_id, update_time DESC, configuration_id DESC);
