//! `idic import products FILE.csv`: streams a CSV file of catalog products to
//! `UpsertProducts`, one row per message, and prints what became of the rows. Columns are
//! mapped to product fields by `--map`; kinds, lifecycles, availabilities and numbers are
//! parsed here and rows where they do not parse are rejected without being sent. Rows are
//! matched by sku, so running the same import again changes nothing (every row a duplicate).

use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
};

use anyhow::Context as _;
use idic_proto::{
    common::v1::{BulkSummary, Money, RowError},
    customization::v1::{self as pb, UpsertProductsRequest},
};
use tokio::sync::mpsc;

use super::{Batch, Local, MapField, Mapping, all_errors, read_rows};
use crate::client::ServerArgs;

/// Arguments of `idic import products`.
#[derive(Debug, clap::Args)]
pub struct ImportProductsArgs {
    /// The CSV file, comma-separated, UTF-8, with a header line naming the columns.
    file: PathBuf,
    /// Maps a column (by its header) to a product field, as COLUMN=FIELD; repeat for each
    /// column. Fields: sku (required, matches the catalog), product_id (for new products),
    /// title, description, kind (good, service), category (repeatable; several paths in
    /// one cell separated by `|`), currency (ISO 4217), price_minor (in minor units, e.g.
    /// cents), availability (available, out_of_stock, backorder, made_to_order),
    /// stock_quantity, lifecycle (new, active, retired), consumable (yes/no), attr:KEY
    /// (repeatable: a free attribute) and row_id. Columns not mapped are ignored; without
    /// any --map, columns whose header is a field name map to that field.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    maps: Vec<String>,
    /// The column holding each row's id; default: the line number.
    #[arg(long, value_name = "COLUMN")]
    row_id: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs the import and prints its summary. Errors are failures to run (bad usage, no
/// connection, refused credentials, a broken stream), not rejected rows.
pub async fn run(args: ImportProductsArgs) -> anyhow::Result<()> {
    let ImportProductsArgs { file, maps, row_id, server } = args;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&file)
        .with_context(|| format!("cannot open {}", file.display()))?;
    let header = reader.headers().with_context(|| format!("{}: the header line", file.display()))?.clone();
    let mapping = Mapping::<Field>::parse(&header, &maps, row_id.as_deref()).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(mapping.has(&Field::Sku), "no column maps to sku: add --map COLUMN=sku");
    let rows = RowBuilder { mapping };
    let client = &mut server.customization().await?;
    let read = move |reader, tx: mpsc::Sender<Batch<UpsertProductsRequest>>| {
        // UpsertProducts takes one row per message.
        let message = |rows: Vec<UpsertProductsRequest>, position, read| {
            let row = rows.into_iter().next().unwrap_or_default();
            let last = row.row_id.clone();
            Batch::of(row, 1, last, position, read)
        };
        read_rows(reader, |record, line| rows.row(record, line), message, 1, &tx)
    };
    let send = move |stream| async move { client.upsert_products(stream).await };
    let (answer, local, read_error) = super::upload_file(&file, reader, read, send).await?;
    print!("{}", Summary::new(&file, answer, local));
    read_error.map_or(Ok(()), Err)
}

/// What a column can say about a product.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Sku,
    ProductId,
    Title,
    Description,
    Kind,
    Category,
    Currency,
    PriceMinor,
    Availability,
    StockQuantity,
    Lifecycle,
    Consumable,
    Attribute(String),
    RowId,
}

const FIELDS: [(&str, Field); 13] = [
    ("sku", Field::Sku),
    ("product_id", Field::ProductId),
    ("title", Field::Title),
    ("description", Field::Description),
    ("kind", Field::Kind),
    ("category", Field::Category),
    ("currency", Field::Currency),
    ("price_minor", Field::PriceMinor),
    ("availability", Field::Availability),
    ("stock_quantity", Field::StockQuantity),
    ("lifecycle", Field::Lifecycle),
    ("consumable", Field::Consumable),
    ("row_id", Field::RowId),
];

impl FromStr for Field {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(key) = s.strip_prefix("attr:") {
            return if key.is_empty() {
                Err("attr: needs a key, e.g. attr:colour".into())
            } else {
                Ok(Self::Attribute(key.to_owned()))
            };
        }
        super::field_named(&FIELDS, s, Self::NAMES)
    }
}

impl MapField for Field {
    const ROW_ID: Self = Self::RowId;
    const NAMES: &'static str = "sku, product_id, title, description, kind, category, currency, price_minor, \
                                 availability, stock_quantity, lifecycle, consumable, attr:KEY, row_id";
    const OF: &'static str = "product";

    fn name(&self) -> String {
        match self {
            Self::Attribute(key) => format!("attr:{key}"),
            _ => FIELDS.iter().find(|(_, f)| f == self).map_or_else(String::new, |(name, _)| (*name).to_owned()),
        }
    }

    fn repeatable(&self) -> bool {
        matches!(self, Self::Category)
    }
}

impl Field {
    /// Where the field goes in an `UpsertProductsRequest`, for the reasons of rows rejected
    /// here.
    fn path(&self) -> String {
        match self {
            Self::ProductId => "product_id".into(),
            Self::Currency => "product.price.currency_code".into(),
            Self::PriceMinor => "product.price.amount_minor".into(),
            Self::Category => "product.categories".into(),
            Self::Attribute(key) => format!("product.attributes[{key:?}]"),
            Self::RowId => "row_id".into(),
            other => format!("product.{}", other.name()),
        }
    }
}

/// An enum value by its short name (`made_to_order` for AVAILABILITY_MADE_TO_ORDER).
fn enum_value(value: &str, prefix: &str, parse: fn(&str) -> Option<i32>) -> Option<i32> {
    let name = format!("{prefix}{}", value.trim().to_ascii_uppercase().replace([' ', '-'], "_"));
    parse(&name).filter(|v| *v != 0)
}

/// Turns CSV records into rows of the stream.
#[derive(Debug)]
struct RowBuilder {
    mapping: Mapping<Field>,
}

impl RowBuilder {
    /// The row on line `line`, or why it is rejected before sending.
    fn row(&self, record: &csv::ByteRecord, line: u64) -> Result<UpsertProductsRequest, RowError> {
        let row_id = self.mapping.row_id(record, line)?;
        let reject =
            |field: &Field, description: String| RowError { row_id: row_id.clone(), field: field.path(), description };
        let mut product = pb::Product::default();
        let mut product_id = String::new();
        let mut currency = String::new();
        let mut price = None;
        for (column, field) in &self.mapping.columns {
            let value = Mapping::<Field>::cell(record, *column, &field.path(), &row_id, line)?;
            if value.is_empty() {
                continue;
            }
            let unknown = |what: &str| reject(field, format!("{value:?} is not a known {what}"));
            let number = || value.parse::<i64>().map_err(|_| reject(field, format!("{value:?} is not a whole number")));
            match field {
                Field::Sku => product.sku = value.to_owned(),
                Field::ProductId => product_id = value.to_owned(),
                Field::Title => product.title = value.to_owned(),
                Field::Description => product.description = value.to_owned(),
                Field::Kind => {
                    product.kind =
                        enum_value(value, "PRODUCT_KIND_", |n| pb::ProductKind::from_str_name(n).map(|v| v as i32))
                            .ok_or_else(|| unknown("kind"))?;
                }
                Field::Category => {
                    product
                        .categories
                        .extend(value.split('|').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned));
                }
                Field::Currency => currency = value.to_ascii_uppercase(),
                Field::PriceMinor => price = Some(number()?),
                Field::Availability => {
                    product.availability =
                        enum_value(value, "AVAILABILITY_", |n| pb::Availability::from_str_name(n).map(|v| v as i32))
                            .ok_or_else(|| unknown("availability"))?;
                }
                Field::StockQuantity => product.stock_quantity = Some(number()?),
                Field::Lifecycle => {
                    product.lifecycle =
                        enum_value(value, "LIFECYCLE_", |n| pb::Lifecycle::from_str_name(n).map(|v| v as i32))
                            .ok_or_else(|| unknown("lifecycle"))?;
                }
                Field::Consumable => {
                    product.consumable = match value.to_ascii_lowercase().as_str() {
                        "yes" | "y" | "true" | "1" => true,
                        "no" | "n" | "false" | "0" => false,
                        _ => return Err(reject(field, format!("{value:?} is not yes or no"))),
                    };
                }
                Field::Attribute(key) => {
                    product.attributes.insert(key.clone(), value.to_owned());
                }
                Field::RowId => {}
            }
        }
        if let Some(amount_minor) = price {
            product.price = Some(Money { currency_code: currency, amount_minor });
        }
        Ok(UpsertProductsRequest { row_id, product: Some(product), product_id })
    }
}

/// What became of the rows: the server's answer with the rows rejected here added.
#[derive(Debug)]
struct Summary {
    file: PathBuf,
    received: i64,
    created: i64,
    updated: i64,
    duplicates: i64,
    rejected_here: i64,
    rejected_by_server: i64,
    errors: Vec<RowError>,
}

impl Summary {
    fn new(file: &Path, answer: BulkSummary, local: Local) -> Self {
        let BulkSummary { received, created, updated, duplicates, rejected, errors } = answer;
        Self {
            file: file.to_owned(),
            received: received + local.rejected,
            created,
            updated,
            duplicates,
            rejected_here: local.rejected,
            rejected_by_server: rejected,
            errors: all_errors(local.errors, errors),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rejected = self.rejected_here + self.rejected_by_server;
        writeln!(f, "imported {} into the catalog", self.file.display())?;
        writeln!(f, "  received           {:>9}", self.received)?;
        writeln!(f, "  created            {:>9}", self.created)?;
        writeln!(f, "  updated            {:>9}", self.updated)?;
        writeln!(f, "  duplicates         {:>9}  (unchanged: a re-run changes nothing)", self.duplicates)?;
        writeln!(
            f,
            "  rejected           {:>9}  ({} here, {} by the server)",
            rejected, self.rejected_here, self.rejected_by_server
        )?;
        super::write_reasons(f, &self.errors, rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_parsed_enums_categories_attributes_and_prices() {
        let maps: Vec<String> = [
            "Code=sku",
            "Name=title",
            "Kind=kind",
            "Cats=category",
            "Cur=currency",
            "Cents=price_minor",
            "Colour=attr:colour",
        ]
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
        let header = csv::StringRecord::from(vec!["Code", "Name", "Kind", "Cats", "Cur", "Cents", "Colour"]);
        let rows = RowBuilder { mapping: Mapping::<Field>::parse(&header, &maps, None).expect("mapping") };
        let record =
            csv::ByteRecord::from(vec!["J-1", "Jeans", "Good", "apparel/jeans | sale", "usd", "4995", "indigo"]);
        let row = rows.row(&record, 2).expect("row");
        assert_eq!(row.row_id, "2");
        let product = row.product.expect("product");
        assert_eq!(product.kind, pb::ProductKind::Good as i32);
        assert_eq!(product.categories, ["apparel/jeans", "sale"]);
        assert_eq!(product.price, Some(Money { currency_code: "USD".into(), amount_minor: 4995 }));
        assert_eq!(product.attributes.get("colour").map(String::as_str), Some("indigo"));
        let record = csv::ByteRecord::from(vec!["J-2", "Jeans", "Good", "", "USD", "49.95", ""]);
        let error = rows.row(&record, 3).expect_err("decimal cents");
        assert_eq!((error.row_id.as_str(), error.field.as_str()), ("3", "product.price.amount_minor"));
    }
}
