//! The SQL of customization, against its own schema: catalog products and each product's
//! module groups and constraints; saved configurations and the recommender's tables live in
//! the submodules.

pub mod campaigns;
pub mod configurations;
pub mod feedback;
pub mod offers;
pub mod templates;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

/// A product as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProductRow {
    /// The product's id (`products/{product_id}`).
    pub product_id: String,
    /// Stock-keeping unit, unique.
    pub sku: String,
    /// Display title.
    pub title: String,
    /// Longer description.
    pub description: String,
    /// `ProductKind` number.
    pub kind: i16,
    /// Category paths.
    pub categories: Vec<String>,
    /// ISO 4217 code of the price.
    pub currency_code: String,
    /// Price in minor units.
    pub price_minor: i64,
    /// `Availability` number.
    pub availability: i16,
    /// Units in stock, when tracked.
    pub stock_quantity: Option<i64>,
    /// `Lifecycle` number.
    pub lifecycle: i16,
    /// Bought again and again.
    pub consumable: bool,
    /// Attributes and bundle components as an encoded `Product`.
    pub extra: Vec<u8>,
    /// Increases on every change; the etag.
    pub revision: i64,
    /// When created.
    pub create_time: DateTime<Utc>,
    /// When last changed.
    pub update_time: DateTime<Utc>,
    /// Whether module groups are set.
    pub configurable: bool,
}

/// The product columns, with whether it has module groups.
macro_rules! select_products {
    () => {
        "SELECT p.product_id, p.sku, p.title, p.description, p.kind, p.categories, p.currency_code, \
         p.price_minor, p.availability, p.stock_quantity, p.lifecycle, p.consumable, p.extra, p.revision, \
         p.create_time, p.update_time, COALESCE(m.group_count > 0, false) AS configurable \
         FROM products p LEFT JOIN product_modules m USING (product_id)"
    };
}

/// One product by id.
const SELECT_PRODUCT: &str = concat!(select_products!(), " WHERE p.product_id = $1");

/// Inserts a new product; false when its id or sku is taken.
pub async fn insert_product(conn: &mut PgConnection, p: &ProductRow) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO products (product_id, sku, title, description, kind, categories, currency_code, price_minor, \
                               availability, stock_quantity, lifecycle, consumable, extra) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&p.product_id)
    .bind(&p.sku)
    .bind(&p.title)
    .bind(&p.description)
    .bind(p.kind)
    .bind(&p.categories)
    .bind(&p.currency_code)
    .bind(p.price_minor)
    .bind(p.availability)
    .bind(p.stock_quantity)
    .bind(p.lifecycle)
    .bind(p.consumable)
    .bind(&p.extra)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// One product by id.
pub async fn product(pool: &PgPool, product_id: &str) -> sqlx::Result<Option<ProductRow>> {
    sqlx::query_as(SELECT_PRODUCT).bind(product_id).fetch_optional(pool).await
}

/// One product by sku.
pub async fn product_by_sku(pool: &PgPool, sku: &str) -> sqlx::Result<Option<ProductRow>> {
    sqlx::query_as(concat!(select_products!(), " WHERE p.sku = $1")).bind(sku).fetch_optional(pool).await
}

/// One product by id, inside a transaction.
pub async fn product_in(conn: &mut PgConnection, product_id: &str) -> sqlx::Result<Option<ProductRow>> {
    sqlx::query_as(SELECT_PRODUCT).bind(product_id).fetch_optional(conn).await
}

/// Locks one product for an update.
pub async fn product_for_update(conn: &mut PgConnection, product_id: &str) -> sqlx::Result<Option<ProductRow>> {
    sqlx::query_as(concat!(select_products!(), " WHERE p.product_id = $1 FOR UPDATE OF p"))
        .bind(product_id)
        .fetch_optional(conn)
        .await
}

/// Writes a product's changeable fields and moves its revision on.
pub async fn update_product(conn: &mut PgConnection, p: &ProductRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE products SET title = $2, description = $3, categories = $4, currency_code = $5, price_minor = $6, \
                availability = $7, stock_quantity = $8, lifecycle = $9, consumable = $10, extra = $11, \
                revision = revision + 1, update_time = now() \
         WHERE product_id = $1",
    )
    .bind(&p.product_id)
    .bind(&p.title)
    .bind(&p.description)
    .bind(&p.categories)
    .bind(&p.currency_code)
    .bind(p.price_minor)
    .bind(p.availability)
    .bind(p.stock_quantity)
    .bind(p.lifecycle)
    .bind(p.consumable)
    .bind(&p.extra)
    .execute(conn)
    .await?;
    Ok(())
}

/// The products with these skus, locked for an upsert.
pub async fn products_by_sku_for_update(conn: &mut PgConnection, skus: &[String]) -> sqlx::Result<Vec<ProductRow>> {
    sqlx::query_as(concat!(select_products!(), " WHERE p.sku = ANY($1) ORDER BY p.sku FOR UPDATE OF p"))
        .bind(skus)
        .fetch_all(conn)
        .await
}

/// The columns of many products as parallel arrays for UNNEST; categories, being arrays
/// themselves, travel as (row position, path) pairs.
struct Columns {
    position: Vec<i32>,
    product_id: Vec<String>,
    sku: Vec<String>,
    title: Vec<String>,
    description: Vec<String>,
    kind: Vec<i16>,
    currency_code: Vec<String>,
    price_minor: Vec<i64>,
    availability: Vec<i16>,
    stock_quantity: Vec<Option<i64>>,
    lifecycle: Vec<i16>,
    consumable: Vec<bool>,
    extra: Vec<Vec<u8>>,
    category_position: Vec<i32>,
    category: Vec<String>,
}

impl Columns {
    fn of(rows: &[ProductRow]) -> Self {
        let mut c = Columns {
            position: Vec::new(),
            product_id: Vec::new(),
            sku: Vec::new(),
            title: Vec::new(),
            description: Vec::new(),
            kind: Vec::new(),
            currency_code: Vec::new(),
            price_minor: Vec::new(),
            availability: Vec::new(),
            stock_quantity: Vec::new(),
            lifecycle: Vec::new(),
            consumable: Vec::new(),
            extra: Vec::new(),
            category_position: Vec::new(),
            category: Vec::new(),
        };
        for (i, r) in rows.iter().enumerate() {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            c.position.push(i);
            c.product_id.push(r.product_id.clone());
            c.sku.push(r.sku.clone());
            c.title.push(r.title.clone());
            c.description.push(r.description.clone());
            c.kind.push(r.kind);
            c.currency_code.push(r.currency_code.clone());
            c.price_minor.push(r.price_minor);
            c.availability.push(r.availability);
            c.stock_quantity.push(r.stock_quantity);
            c.lifecycle.push(r.lifecycle);
            c.consumable.push(r.consumable);
            c.extra.push(r.extra.clone());
            for path in &r.categories {
                c.category_position.push(i);
                c.category.push(path.clone());
            }
        }
        c
    }
}

/// Inserts new products in one statement; the skus actually inserted (a row whose id is
/// taken by another product is left out).
pub async fn insert_products(conn: &mut PgConnection, rows: &[ProductRow]) -> sqlx::Result<Vec<String>> {
    let c = Columns::of(rows);
    sqlx::query_scalar(
        "INSERT INTO products (product_id, sku, title, description, kind, categories, currency_code, price_minor, \
                               availability, stock_quantity, lifecycle, consumable, extra) \
         SELECT r.product_id, r.sku, r.title, r.description, r.kind, \
                COALESCE((SELECT array_agg(cat.c ORDER BY cat.o) \
                          FROM UNNEST($13::int4[], $14::text[]) WITH ORDINALITY AS cat(i, c, o) \
                          WHERE cat.i = r.i), '{}'), \
                r.currency_code, r.price_minor, r.availability, r.stock_quantity, r.lifecycle, r.consumable, r.extra \
         FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int2[], $7::text[], \
                     $8::int8[], $9::int2[], $10::int8[], $11::int2[], $12::bool[], $15::bytea[]) \
              AS r(i, product_id, sku, title, description, kind, currency_code, price_minor, availability, \
                   stock_quantity, lifecycle, consumable, extra) \
         ON CONFLICT DO NOTHING \
         RETURNING sku",
    )
    .bind(&c.position)
    .bind(&c.product_id)
    .bind(&c.sku)
    .bind(&c.title)
    .bind(&c.description)
    .bind(&c.kind)
    .bind(&c.currency_code)
    .bind(&c.price_minor)
    .bind(&c.availability)
    .bind(&c.stock_quantity)
    .bind(&c.lifecycle)
    .bind(&c.consumable)
    .bind(&c.category_position)
    .bind(&c.category)
    .bind(&c.extra)
    .fetch_all(conn)
    .await
}

/// Replaces the changeable fields of existing products, matched by sku, in one statement.
pub async fn update_products(conn: &mut PgConnection, rows: &[ProductRow]) -> sqlx::Result<()> {
    let c = Columns::of(rows);
    sqlx::query(
        "UPDATE products p \
            SET title = r.title, description = r.description, \
                categories = COALESCE((SELECT array_agg(cat.c ORDER BY cat.o) \
                                       FROM UNNEST($11::int4[], $12::text[]) WITH ORDINALITY AS cat(i, c, o) \
                                       WHERE cat.i = r.i), '{}'), \
                currency_code = r.currency_code, price_minor = r.price_minor, availability = r.availability, \
                stock_quantity = r.stock_quantity, lifecycle = r.lifecycle, consumable = r.consumable, \
                extra = r.extra, revision = p.revision + 1, update_time = now() \
           FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int2[], \
                       $8::int8[], $9::int2[], $10::bool[], $13::bytea[]) \
                AS r(i, sku, title, description, currency_code, price_minor, availability, stock_quantity, \
                     lifecycle, consumable, extra) \
          WHERE p.sku = r.sku",
    )
    .bind(&c.position)
    .bind(&c.sku)
    .bind(&c.title)
    .bind(&c.description)
    .bind(&c.currency_code)
    .bind(&c.price_minor)
    .bind(&c.availability)
    .bind(&c.stock_quantity)
    .bind(&c.lifecycle)
    .bind(&c.consumable)
    .bind(&c.category_position)
    .bind(&c.category)
    .bind(&c.extra)
    .execute(conn)
    .await?;
    Ok(())
}

/// What ListProducts keeps.
#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    /// Only products with a category path equal to this one or below it.
    pub category: Option<String>,
    /// Only these lifecycle numbers; empty means all.
    pub lifecycles: Vec<i16>,
    /// Only this kind number, when set.
    pub kind: Option<i16>,
    /// Only products with module groups.
    pub configurable_only: bool,
}

/// Up to `limit` products matching `filter` with a sku after `after`, ordered by sku.
pub async fn list_products(
    pool: &PgPool,
    filter: &ProductFilter,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<ProductRow>> {
    sqlx::query_as(concat!(
        select_products!(),
        " WHERE ($1::text IS NULL OR EXISTS (SELECT 1 FROM unnest(p.categories) AS c \
                                             WHERE c = $1 OR starts_with(c, $1 || '/'))) \
            AND (cardinality($2::int2[]) = 0 OR p.lifecycle = ANY($2)) \
            AND ($3::int2 IS NULL OR p.kind = $3) \
            AND (NOT $4 OR m.group_count > 0) \
            AND ($5::text IS NULL OR p.sku > $5) \
          ORDER BY p.sku \
          LIMIT $6"
    ))
    .bind(filter.category.as_deref())
    .bind(&filter.lifecycles)
    .bind(filter.kind)
    .bind(filter.configurable_only)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A product's stored modules: revision, encoded body and update time.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ModulesRow {
    /// Increases by one on every set.
    pub revision: i64,
    /// The encoded `ProductModules` (groups and constraints).
    pub body: Vec<u8>,
    /// When last set.
    pub update_time: DateTime<Utc>,
}

/// A product's modules, when ever set.
pub async fn modules(pool: &PgPool, product_id: &str) -> sqlx::Result<Option<ModulesRow>> {
    sqlx::query_as("SELECT revision, body, update_time FROM product_modules WHERE product_id = $1")
        .bind(product_id)
        .fetch_optional(pool)
        .await
}

/// Locks a product's modules row for replacement; the current revision (0 when never set).
pub async fn lock_modules(tx: &mut Transaction<'_, Postgres>, product_id: &str) -> sqlx::Result<i64> {
    // Locking the product row serialises the first set too, when no modules row exists yet.
    sqlx::query("SELECT 1 FROM products WHERE product_id = $1 FOR UPDATE").bind(product_id).execute(&mut **tx).await?;
    let revision: Option<i64> = sqlx::query_scalar("SELECT revision FROM product_modules WHERE product_id = $1")
        .bind(product_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(revision.unwrap_or(0))
}

/// Replaces a product's modules at `revision`; the stored row.
pub async fn write_modules(
    tx: &mut Transaction<'_, Postgres>,
    product_id: &str,
    revision: i64,
    group_count: i32,
    body: &[u8],
) -> sqlx::Result<ModulesRow> {
    sqlx::query_as(
        "INSERT INTO product_modules (product_id, revision, group_count, body, update_time) \
         VALUES ($1, $2, $3, $4, now()) \
         ON CONFLICT (product_id) DO UPDATE \
             SET revision = EXCLUDED.revision, group_count = EXCLUDED.group_count, body = EXCLUDED.body, \
                 update_time = EXCLUDED.update_time \
         RETURNING revision, body, update_time",
    )
    .bind(product_id)
    .bind(revision)
    .bind(group_count)
    .bind(body)
    .fetch_one(&mut **tx)
    .await
}
