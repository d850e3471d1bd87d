-- The catalog: products, services and bundles, named by a client-chosen or server-assigned id
-- and matched by sku for imports and purchases.
CREATE TABLE products (
    product_id      text PRIMARY KEY,
    sku             text NOT NULL UNIQUE,
    title           text NOT NULL,
    description     text NOT NULL DEFAULT '',
    kind            smallint NOT NULL,
    categories      text[] NOT NULL DEFAULT '{}',
    currency_code   text NOT NULL,
    price_minor     bigint NOT NULL CHECK (price_minor >= 0),
    availability    smallint NOT NULL,
    stock_quantity  bigint CHECK (stock_quantity >= 0),
    lifecycle       smallint NOT NULL,
    consumable      boolean NOT NULL DEFAULT false,
    -- Attributes and bundle components as the encoded protobuf fields they came from.
    extra           bytea NOT NULL DEFAULT '',
    revision        bigint NOT NULL DEFAULT 1,
    create_time     timestamptz NOT NULL DEFAULT now(),
    update_time     timestamptz NOT NULL DEFAULT now()
);
