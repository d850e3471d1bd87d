-- A product's module groups and constraints, replaced as a whole by SetProductModules. The body
-- is the encoded `idic.customization.v1.ProductModules` (groups and constraints only), validated
-- by the domain before it is written and again when it is read.
CREATE TABLE product_modules (
    product_id   text PRIMARY KEY REFERENCES products (product_id),
    revision     bigint NOT NULL,
    group_count  integer NOT NULL,
    body         bytea NOT NULL,
    update_time  timestamptz NOT NULL DEFAULT now()
);
