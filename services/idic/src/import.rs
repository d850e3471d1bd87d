//! `idic import customers FILE.csv`: streams a CSV file of customers to
//! `ImportCustomers` in batches and prints what became of the rows. Columns are mapped
//! to customer fields by `--map`; birth dates are parsed here, since the API takes them
//! as structured dates, and rows whose date does not parse are rejected without being
//! sent. Rows are idempotent per (source, row id), so running the same import again
//! resumes an interrupted one. The column mapping, the upload with its progress and the
//! listing of rejected rows are shared with [`interactions`].

pub mod interactions;
pub mod products;

use std::{
    collections::BTreeSet,
    fmt,
    fs::File,
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use idic_identification::domain::{BirthDate, DateOrder};
use idic_proto::{
    common::v1::{self as common, BulkSummary, RowError},
    identification::v1::{self as pb, ImportCustomersRequest, ImportCustomersResponse, ImportRow},
};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;
use tokio_stream::{StreamExt as _, wrappers::ReceiverStream};
use tonic::Status;

use crate::client::{self, ServerArgs};

/// The most rows one message of the stream may carry.
pub const MAX_BATCH: u16 = 1000;
/// Rejected rows printed with their reason; the rest are counted.
const REASONS_SHOWN: usize = 10;
/// Local rejections kept with their reason, as the server keeps its first 1000.
const REASONS_KEPT: usize = 1000;

/// Arguments of `idic import customers`.
#[derive(Debug, clap::Args)]
pub struct ImportCustomersArgs {
    /// The CSV file, comma-separated, UTF-8, with a header line naming the columns.
    file: PathBuf,
    /// Maps a column (by its header) to a customer field, as COLUMN=FIELD; repeat for each
    /// column. Fields: given_name, family_name, organization_name, birth_date, email, phone,
    /// address (one line) or address_line, postcode and city (joined into one address),
    /// loyalty_card, account_number, national_id, external_id, kind (person or
    /// organization), fact:KEY (a profile fact with that key) and row_id. Identifier fields
    /// may take several columns. Columns not mapped are ignored; without any --map, columns
    /// whose header is a field name map to that field.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    maps: Vec<String>,
    /// Where the rows come from (letters, digits and ._:/-, at most 100); with the row id it
    /// identifies a row, so a re-run must give the same source. Default: file:<file name
    /// without extension>.
    #[arg(long)]
    source: Option<String>,
    /// Column holding each row's id in the source; default: the row's line number in the
    /// file (the header is line 1).
    #[arg(long, value_name = "COLUMN")]
    row_id: Option<String>,
    /// Country calling code of phone numbers written without one (44 for the United
    /// Kingdom, 33 for France); without it such numbers are rejected.
    #[arg(long, value_name = "CODE")]
    phone_region: Option<String>,
    /// How numeric dates with the year last are read: dmy (07/03/1984 is 7 March) or mdy
    /// (July 3).
    #[arg(long, value_enum, default_value_t = Order::Dmy)]
    date_order: Order,
    /// Rows per message of the stream, 1–1000.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_BATCH)))]
    batch: u16,
    /// The system the external_id column's ids belong to ("crm"); required when a column
    /// maps to external_id.
    #[arg(long, value_name = "SYSTEM")]
    external_namespace: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// `--date-order`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Order {
    /// Day first: dd/mm/yyyy.
    Dmy,
    /// Month first: mm/dd/yyyy.
    Mdy,
}

/// Runs the import and prints its summary. Errors are failures to run (bad usage, no
/// connection, refused credentials, a broken stream), not rejected rows.
pub async fn customers(args: ImportCustomersArgs) -> anyhow::Result<()> {
    let ImportCustomersArgs { file, maps, source, row_id, phone_region, date_order, batch, external_namespace, server } =
        args;
    let source = match source {
        Some(source) => {
            anyhow::ensure!(is_source(&source), "--source {source:?}: use 1 to 100 letters, digits or ._:/-");
            source
        }
        None => default_source(&file),
    };
    if let Some(code) = &phone_region {
        let digits = code.strip_prefix('+').unwrap_or(code);
        anyhow::ensure!(
            (1..=3).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0'),
            "--phone-region {code:?}: give a country calling code such as 44"
        );
    }
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&file)
        .with_context(|| format!("cannot open {}", file.display()))?;
    let header = reader.headers().with_context(|| format!("{}: the header line", file.display()))?.clone();
    let mapping = Mapping::new(&header, &maps, row_id.as_deref()).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        external_namespace.is_some() || !mapping.has(&Field::ExternalId),
        "a column maps to external_id: name the system its ids belong to with --external-namespace"
    );
    let rows = RowBuilder {
        mapping,
        phone_region: phone_region.unwrap_or_default(),
        external_namespace: external_namespace.unwrap_or_default(),
        date_order: match date_order {
            Order::Dmy => DateOrder::DayFirst,
            Order::Mdy => DateOrder::MonthFirst,
        },
        today: Utc::now(),
    };
    let identification = &mut server.identification().await?;
    let read = {
        let source = source.clone();
        move |reader, tx: mpsc::Sender<Batch>| {
            let message = |rows, position, read| Batch::new(&source, rows, position, read);
            read_rows(reader, |record, line| rows.row(record, line), message, usize::from(batch), &tx)
        }
    };
    let send = move |stream| async move { identification.import_customers(stream).await };
    let (answer, local, read_error) = upload_file(&file, reader, read, send).await?;
    print!("{}", Summary::new(&file, &source, answer, local));
    read_error.map_or(Ok(()), Err)
}

/// A stream of request messages, as the generated clients take it.
type Requests<R> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = R> + Send>>;

/// Uploads `file` with a progress bar: `read` reads it on a blocking thread, handing
/// batches to the stream, while `send` streams them to the server. Answers the server's
/// answer, the rows rejected here and, when reading stopped early, why (to report after
/// the summary). Fails, saying how far it got, when the call fails.
async fn upload_file<R, A, Fut>(
    file: &Path,
    reader: csv::Reader<File>,
    read: impl FnOnce(csv::Reader<File>, mpsc::Sender<Batch<R>>) -> Result<Local, (Local, anyhow::Error)> + Send + 'static,
    send: impl FnOnce(Requests<R>) -> Fut,
) -> anyhow::Result<(A, Local, Option<anyhow::Error>)>
where
    R: Send + 'static,
    Fut: std::future::Future<Output = Result<tonic::Response<A>, Status>>,
{
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or_default();
    let bar = client::progress_bar(
        size,
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (tx, rx) = mpsc::channel::<Batch<R>>(2);
    let reading = tokio::task::spawn_blocking(move || read(reader, tx));
    let (stream, sent) = batch_stream(rx, &bar);
    let (answer, read) = tokio::join!(send(Box::pin(stream)), reading);
    let read = read.context("the file reader")?;
    bar.finish_and_clear();
    let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();

    let answer = match answer {
        Ok(answer) => answer.into_inner(),
        Err(status) => {
            let error = client::explain(&status);
            if sent.rows == 0 {
                return Err(error.context(format!("import of {} failed", file.display())));
            }
            return Err(error.context(format!(
                "the import stopped after sending {} rows (the last row id {}); the rows the server \
                 finished before the break are kept: run the same command again to resume",
                sent.rows, sent.last_row_id
            )));
        }
    };
    let (local, read_error) = match read {
        Ok(local) => (local, None),
        Err((local, error)) => (local, Some(error)),
    };
    let read_error = read_error.map(|error| {
        error.context(format!(
            "reading {} stopped early; the rows before are imported: fix the file and run the same command \
             again to resume",
            file.display()
        ))
    });
    Ok((answer, local, read_error))
}

/// Streams the batches `rx` yields to `ImportCustomers`, moving `bar` to each batch's
/// position, until `rx` closes; gives back the server's answer and what was handed over,
/// to say how far a broken upload got. Importing a file and seeding a benchmark share it.
pub async fn upload(
    identification: &mut client::Identification,
    rx: mpsc::Receiver<Batch>,
    bar: &ProgressBar,
) -> (Result<ImportCustomersResponse, Status>, Sent) {
    let (stream, sent) = batch_stream(rx, bar);
    let answer = identification.import_customers(stream).await.map(tonic::Response::into_inner);
    let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();
    (answer, sent)
}

/// The messages of the batches `rx` yields, as a request stream that moves `bar` to each
/// batch's position and notes in the returned [`Sent`] what was handed over.
fn batch_stream<R: Send + 'static>(
    rx: mpsc::Receiver<Batch<R>>,
    bar: &ProgressBar,
) -> (impl tokio_stream::Stream<Item = R> + Send + 'static, Arc<Mutex<Sent>>) {
    let sent = Arc::new(Mutex::new(Sent::default()));
    let stream = {
        let (sent, bar, done) = (sent.clone(), bar.clone(), bar.clone());
        let batches = ReceiverStream::new(rx).map(move |batch| {
            if let Ok(mut sent) = sent.lock() {
                sent.rows += batch.rows;
                sent.last_row_id.clone_from(&batch.last_row_id);
            }
            let per_second = batch.rows_read as f64 / bar.elapsed().as_secs_f64().max(0.001);
            bar.set_position(batch.position);
            bar.set_message(format!("{} rows, {per_second:.0} rows/s", batch.rows_read));
            batch.request
        });
        // Polled once every batch is handed over: the server still works through what
        // the connection buffers before it answers.
        let sent_all = tokio_stream::once(()).filter_map(move |()| {
            done.set_message("all rows sent; waiting for the server to finish them");
            None
        });
        batches.chain(sent_all)
    };
    (stream, sent)
}

/// The rows handed to the stream so far, to say how far a broken import got.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// Rows handed over.
    pub rows: u64,
    /// The row id of the last of them.
    pub last_row_id: String,
}

/// One message for the stream (of ImportCustomers unless said), and where the producer
/// was when it made it.
pub struct Batch<R = ImportCustomersRequest> {
    request: R,
    /// Rows in the message.
    rows: u64,
    /// Where the progress bar stands after this batch (bytes of a file, rows of a seed).
    position: u64,
    rows_read: u64,
    last_row_id: String,
}

impl Batch {
    /// A message of `rows` from `source`, made when the producer stood at `position`
    /// having read `rows_read` rows.
    pub fn new(source: &str, rows: Vec<ImportRow>, position: u64, rows_read: u64) -> Self {
        let last_row_id = rows.last().map(|r| r.row_id.clone()).unwrap_or_default();
        let count = rows.len() as u64;
        Batch::of(ImportCustomersRequest { source: source.to_owned(), rows }, count, last_row_id, position, rows_read)
    }
}

impl<R> Batch<R> {
    /// The message `request` of `rows` rows, the last identified by `last_row_id`.
    fn of(request: R, rows: u64, last_row_id: String, position: u64, rows_read: u64) -> Self {
        Self { request, rows, position, rows_read, last_row_id }
    }
}

/// Rows rejected here, before sending.
#[derive(Debug, Default)]
struct Local {
    rejected: i64,
    errors: Vec<RowError>,
}

impl Local {
    fn reject(&mut self, error: RowError) {
        self.rejected += 1;
        if self.errors.len() < REASONS_KEPT {
            self.errors.push(error);
        }
    }
}

/// Reads the file and hands batches of rows to the stream, until the file ends or the
/// stream is gone (the call ended: its answer says why). `row` turns a record on a line
/// into a row or says why it is rejected; `message` makes a batch of rows at a position
/// of the file. A read error ends the stream early and is given back with the rows
/// rejected so far.
fn read_rows<T, R>(
    mut reader: csv::Reader<File>,
    row: impl Fn(&csv::ByteRecord, u64) -> Result<T, RowError>,
    message: impl Fn(Vec<T>, u64, u64) -> Batch<R>,
    batch: usize,
    tx: &mpsc::Sender<Batch<R>>,
) -> Result<Local, (Local, anyhow::Error)> {
    let mut local = Local::default();
    let mut pending = Vec::with_capacity(batch);
    let mut record = csv::ByteRecord::new();
    let mut rows_read = 0u64;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(String::new(), |p| format!(" at line {}", p.line()));
                return Err((local, anyhow::Error::new(e).context(format!("the CSV{line}"))));
            }
        }
        rows_read += 1;
        let line = record.position().map_or(rows_read + 1, csv::Position::line);
        match row(&record, line) {
            Ok(row) => pending.push(row),
            Err(error) => local.reject(error),
        }
        if pending.len() == batch {
            let batch = message(std::mem::take(&mut pending), reader.position().byte(), rows_read);
            if tx.blocking_send(batch).is_err() {
                return Ok(local);
            }
        }
    }
    if !pending.is_empty() {
        let _ = tx.blocking_send(message(pending, reader.position().byte(), rows_read));
    }
    Ok(local)
}

/// The default source: `file:` and the file name without its extension, made to fit the
/// source syntax.
fn default_source(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default();
    let clean: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || "._:/-".contains(c) { c } else { '-' }).take(95).collect();
    if clean.is_empty() { "file:import".to_owned() } else { format!("file:{clean}") }
}

/// Whether `source` has the syntax of `Provenance.source`.
fn is_source(source: &str) -> bool {
    (1..=100).contains(&source.len()) && source.chars().all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c))
}

/// What a column can say about the customer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    GivenName,
    FamilyName,
    OrganizationName,
    BirthDate,
    Email,
    Phone,
    Address,
    AddressLine,
    Postcode,
    City,
    LoyaltyCard,
    AccountNumber,
    NationalId,
    ExternalId,
    Kind,
    Fact(String),
    RowId,
}

/// The field names, for help and errors.
const FIELD_NAMES: &str = "given_name, family_name, organization_name, birth_date, email, phone, address, \
                           address_line, postcode, city, loyalty_card, account_number, national_id, external_id, \
                           kind, fact:KEY, row_id";

impl FromStr for Field {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "given_name" => Self::GivenName,
            "family_name" => Self::FamilyName,
            "organization_name" => Self::OrganizationName,
            "birth_date" => Self::BirthDate,
            "email" => Self::Email,
            "phone" => Self::Phone,
            "address" => Self::Address,
            "address_line" => Self::AddressLine,
            "postcode" => Self::Postcode,
            "city" => Self::City,
            "loyalty_card" => Self::LoyaltyCard,
            "account_number" => Self::AccountNumber,
            "national_id" => Self::NationalId,
            "external_id" => Self::ExternalId,
            "kind" => Self::Kind,
            "row_id" => Self::RowId,
            _ => match s.strip_prefix("fact:") {
                Some(key) if !key.is_empty() => Self::Fact(key.to_owned()),
                _ => return Err(format!("unknown field {s:?}; the fields are {FIELD_NAMES}")),
            },
        })
    }
}

impl Field {
    /// The name `--map` takes.
    fn name(&self) -> String {
        match self {
            Self::Fact(key) => format!("fact:{key}"),
            Self::GivenName => "given_name".into(),
            Self::FamilyName => "family_name".into(),
            Self::OrganizationName => "organization_name".into(),
            Self::BirthDate => "birth_date".into(),
            Self::Email => "email".into(),
            Self::Phone => "phone".into(),
            Self::Address => "address".into(),
            Self::AddressLine => "address_line".into(),
            Self::Postcode => "postcode".into(),
            Self::City => "city".into(),
            Self::LoyaltyCard => "loyalty_card".into(),
            Self::AccountNumber => "account_number".into(),
            Self::NationalId => "national_id".into(),
            Self::ExternalId => "external_id".into(),
            Self::Kind => "kind".into(),
            Self::RowId => "row_id".into(),
        }
    }

    /// Identifier fields may take several columns (two email columns); the others one.
    fn repeatable(&self) -> bool {
        matches!(
            self,
            Self::Email
                | Self::Phone
                | Self::Address
                | Self::LoyaltyCard
                | Self::AccountNumber
                | Self::NationalId
                | Self::ExternalId
        )
    }

    /// Where the field goes in an `ImportRow`, for the reasons of rows rejected here.
    fn path(&self) -> &'static str {
        match self {
            Self::GivenName => "customer.given_name",
            Self::FamilyName => "customer.family_name",
            Self::OrganizationName => "customer.organization_name",
            Self::BirthDate => "customer.birth_date",
            Self::Kind => "customer.kind",
            Self::Fact(_) => "facts",
            Self::RowId => "row_id",
            _ => "customer.identifiers",
        }
    }
}

/// The fields a column can be mapped to by `--map COLUMN=FIELD`.
/// The field of an importer's `table` named `name`, or an error listing the `names`.
fn field_named<F: Clone>(table: &[(&str, F)], name: &str, names: &str) -> Result<F, String> {
    table
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, field)| field.clone())
        .ok_or_else(|| format!("unknown field {name:?}; the fields are {names}"))
}

trait MapField: FromStr<Err = String> + Clone + Ord + fmt::Debug {
    /// The field naming each row (`--row-id`).
    const ROW_ID: Self;
    /// The field names, for help and errors.
    const NAMES: &'static str;
    /// What the fields describe ("customer"), for errors.
    const OF: &'static str;
    /// The name `--map` takes.
    fn name(&self) -> String;
    /// Whether several columns may map to the field.
    fn repeatable(&self) -> bool;
}

impl MapField for Field {
    const ROW_ID: Self = Self::RowId;
    const NAMES: &'static str = FIELD_NAMES;
    const OF: &'static str = "customer";

    fn name(&self) -> String {
        Field::name(self)
    }

    fn repeatable(&self) -> bool {
        Field::repeatable(self)
    }
}

/// Which column feeds which field (of a customer unless said).
#[derive(Debug)]
struct Mapping<F = Field> {
    /// (column index, field), in column order; the row id column is kept apart.
    columns: Vec<(usize, F)>,
    row_id: Option<usize>,
    width: usize,
}

impl Mapping {
    /// The mapping of customer fields: see [`Mapping::parse`].
    fn new(header: &csv::StringRecord, maps: &[String], row_id: Option<&str>) -> Result<Self, String> {
        Self::parse(header, maps, row_id)
    }
}

impl<F: MapField> Mapping<F> {
    /// The mapping from `--map COLUMN=FIELD` arguments (or, with none, from headers that
    /// are field names) and `--row-id COLUMN`. The error is a usage error.
    fn parse(header: &csv::StringRecord, maps: &[String], row_id: Option<&str>) -> Result<Self, String> {
        let names: Vec<&str> = header.iter().map(|h| h.trim_start_matches('\u{feff}').trim()).collect();
        let column = |name: &str| {
            names
                .iter()
                .position(|h| *h == name)
                .ok_or_else(|| format!("no column {name:?} in the header; the columns are: {}", names.join(", ")))
        };
        let mut pairs = Vec::new();
        if maps.is_empty() {
            pairs.extend(names.iter().enumerate().filter_map(|(i, h)| h.parse::<F>().ok().map(|f| (i, f))));
        }
        for map in maps {
            let (name, field) =
                map.rsplit_once('=').ok_or_else(|| format!("--map {map:?}: write COLUMN=FIELD, e.g. Email=email"))?;
            let field = field.trim().parse::<F>().map_err(|e| format!("--map {map:?}: {e}"))?;
            pairs.push((column(name.trim())?, field));
        }
        if let Some(name) = row_id {
            pairs.push((column(name)?, F::ROW_ID));
        }
        let mut seen = BTreeSet::new();
        for (_, field) in &pairs {
            if !field.repeatable() && !seen.insert(field.clone()) {
                return Err(format!("two columns map to {}; it takes one", field.name()));
            }
        }
        let row_id = pairs.iter().find(|(_, f)| *f == F::ROW_ID).map(|(i, _)| *i);
        pairs.retain(|(_, f)| *f != F::ROW_ID);
        if pairs.is_empty() {
            return Err(format!(
                "no column maps to {} field: map columns with --map COLUMN=FIELD (fields: {})",
                article(F::OF),
                F::NAMES
            ));
        }
        pairs.sort_by_key(|(i, _)| *i);
        Ok(Self { columns: pairs, row_id, width: names.len() })
    }

    fn has(&self, field: &F) -> bool {
        self.columns.iter().any(|(_, f)| f == field)
    }

    /// The trimmed text of `column` in `record`, or why not (as a rejection of `row_id`'s
    /// `path`, on `line`).
    fn cell<'r>(
        record: &'r csv::ByteRecord,
        column: usize,
        path: &str,
        row_id: &str,
        line: u64,
    ) -> Result<&'r str, RowError> {
        std::str::from_utf8(&record[column]).map(str::trim).map_err(|_| RowError {
            row_id: row_id.to_owned(),
            field: path.to_owned(),
            description: format!("line {line}: is not UTF-8 text"),
        })
    }

    /// The id of the row `record` on `line` (the line number unless a column holds
    /// ids), after checking it has as many fields as the header.
    fn row_id(&self, record: &csv::ByteRecord, line: u64) -> Result<String, RowError> {
        let line_id = line.to_string();
        let reject = |field: &str, description: String| RowError {
            row_id: line_id.clone(),
            field: field.to_owned(),
            description,
        };
        if record.len() != self.width {
            return Err(reject("", format!("has {} fields where the header has {}", record.len(), self.width)));
        }
        match self.row_id {
            None => Ok(line_id.clone()),
            Some(column) => match Self::cell(record, column, "row_id", &line_id, line)? {
                "" => Err(reject("row_id", format!("line {line}: the row id column is empty"))),
                id => Ok(id.to_owned()),
            },
        }
    }
}

/// "a customer", "an interaction".
fn article(noun: &str) -> String {
    if noun.starts_with(['a', 'e', 'i', 'o', 'u']) { format!("an {noun}") } else { format!("a {noun}") }
}

/// Turns CSV records into import rows.
#[derive(Debug)]
struct RowBuilder {
    mapping: Mapping,
    phone_region: String,
    external_namespace: String,
    date_order: DateOrder,
    today: DateTime<Utc>,
}

impl RowBuilder {
    /// The row on line `line`, or why it is rejected before sending.
    fn row(&self, record: &csv::ByteRecord, line: u64) -> Result<ImportRow, RowError> {
        let reject = |row_id: &str, field: &str, description: String| RowError {
            row_id: row_id.to_owned(),
            field: field.to_owned(),
            description,
        };
        let row_id = self.mapping.row_id(record, line)?;
        let cell = |column: usize, path: &str, row_id: &str| Mapping::<Field>::cell(record, column, path, row_id, line);
        use common::IdentifierKind as Kind;
        let mut customer = pb::Customer::default();
        let mut facts = Vec::new();
        let mut address_parts = [""; 3];
        let identifier = |kind: common::IdentifierKind, value: &str, namespace: &str| common::Identifier {
            kind: kind as i32,
            value: value.to_owned(),
            namespace: namespace.to_owned(),
        };
        for (column, field) in &self.mapping.columns {
            let value = cell(*column, field.path(), &row_id)?;
            if value.is_empty() {
                continue;
            }
            match field {
                Field::GivenName => customer.given_name = value.to_owned(),
                Field::FamilyName => customer.family_name = value.to_owned(),
                Field::OrganizationName => customer.organization_name = value.to_owned(),
                Field::BirthDate => {
                    let date = BirthDate::parse_text(value, self.date_order, self.today)
                        .map_err(|reason| reject(&row_id, field.path(), format!("{value:?} {reason}")))?;
                    customer.birth_date = Some(pb::Date {
                        year: date.year.map_or(0, i32::from),
                        month: i32::from(date.month),
                        day: i32::from(date.day),
                    });
                }
                Field::Email => customer.identifiers.push(identifier(Kind::Email, value, "")),
                Field::Phone => customer.identifiers.push(identifier(Kind::Phone, value, &self.phone_region)),
                Field::Address => customer.identifiers.push(identifier(Kind::PostalAddress, value, "")),
                Field::AddressLine => address_parts[0] = value,
                Field::Postcode => address_parts[1] = value,
                Field::City => address_parts[2] = value,
                Field::LoyaltyCard => customer.identifiers.push(identifier(Kind::LoyaltyCard, value, "")),
                Field::AccountNumber => customer.identifiers.push(identifier(Kind::AccountNumber, value, "")),
                Field::NationalId => customer.identifiers.push(identifier(Kind::NationalId, value, "")),
                Field::ExternalId => {
                    customer.identifiers.push(identifier(Kind::ExternalId, value, &self.external_namespace));
                }
                Field::Kind => {
                    customer.kind = match value.to_ascii_lowercase().as_str() {
                        "person" => pb::CustomerKind::Person,
                        "organization" | "organisation" => pb::CustomerKind::Organization,
                        _ => {
                            let description = format!("{value:?} is neither person nor organization");
                            return Err(reject(&row_id, field.path(), description));
                        }
                    } as i32;
                }
                Field::Fact(key) => facts.push(pb::ProfileFactInput {
                    key: key.clone(),
                    value: Some(pb::FactValue { kind: Some(pb::fact_value::Kind::StringValue(value.to_owned())) }),
                }),
                Field::RowId => {}
            }
        }
        let address: Vec<&str> = address_parts.into_iter().filter(|p| !p.is_empty()).collect();
        if !address.is_empty() {
            customer.identifiers.push(identifier(Kind::PostalAddress, &address.join(", "), ""));
        }
        Ok(ImportRow { row_id, customer: Some(customer), facts, channel: 0, observe_time: None })
    }
}

/// What became of the rows: the server's answer with the rows rejected here added.
#[derive(Debug)]
struct Summary {
    file: PathBuf,
    source: String,
    received: i64,
    created: i64,
    updated: i64,
    linked_exact: i64,
    linked_probable: i64,
    duplicates: i64,
    rejected_here: i64,
    rejected_by_server: i64,
    review_candidates: i64,
    errors: Vec<RowError>,
}

impl Summary {
    fn new(file: &Path, source: &str, answer: ImportCustomersResponse, local: Local) -> Self {
        let ImportCustomersResponse { summary, linked_exact, linked_probable, review_candidates } = answer;
        let BulkSummary { received, created, updated, duplicates, rejected, errors } = summary.unwrap_or_default();
        let all = all_errors(local.errors, errors);
        Self {
            file: file.to_owned(),
            source: source.to_owned(),
            received: received + local.rejected,
            created,
            updated,
            linked_exact,
            linked_probable,
            duplicates,
            rejected_here: local.rejected,
            rejected_by_server: rejected,
            review_candidates,
            errors: all,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rejected = self.rejected_here + self.rejected_by_server;
        writeln!(f, "imported {} as source {}", self.file.display(), self.source)?;
        writeln!(f, "  received           {:>9}", self.received)?;
        writeln!(f, "  created            {:>9}", self.created)?;
        writeln!(
            f,
            "  updated            {:>9}  (linked exact {}, probable {})",
            self.updated, self.linked_exact, self.linked_probable
        )?;
        writeln!(f, "  duplicates         {:>9}  (already imported: a re-run resumes)", self.duplicates)?;
        writeln!(
            f,
            "  rejected           {:>9}  ({} here, {} by the server)",
            rejected, self.rejected_here, self.rejected_by_server
        )?;
        write_reasons(f, &self.errors, rejected)?;
        writeln!(f, "  review candidates  {:>9}", self.review_candidates)
    }
}

/// Lists the first rejected rows with their reasons, and how many more were rejected.
fn write_reasons(f: &mut fmt::Formatter<'_>, errors: &[RowError], rejected: i64) -> fmt::Result {
    let width = errors.iter().take(REASONS_SHOWN).map(|e| e.field.len()).max().unwrap_or(0);
    for error in errors.iter().take(REASONS_SHOWN) {
        let field = if error.field.is_empty() { "-" } else { &error.field };
        writeln!(f, "    row {:<8} {field:<width$}  {}", error.row_id, error.description)?;
    }
    let unlisted = rejected - errors.len().min(REASONS_SHOWN) as i64;
    if unlisted > 0 {
        writeln!(f, "    and {unlisted} more")?;
    }
    Ok(())
}

/// The rows rejected here and by the server, in file order when the row ids are line
/// numbers (the default).
fn all_errors(local: Vec<RowError>, server: Vec<RowError>) -> Vec<RowError> {
    let mut all = local;
    all.extend(server);
    if all.iter().all(|e| e.row_id.parse::<u64>().is_ok()) {
        all.sort_by_key(|e| e.row_id.parse::<u64>().unwrap_or_default());
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(names.to_vec())
    }

    fn maps(pairs: &[&str]) -> Vec<String> {
        pairs.iter().map(|p| (*p).to_owned()).collect()
    }

    fn builder(mapping: Mapping) -> RowBuilder {
        RowBuilder {
            mapping,
            phone_region: "44".into(),
            external_namespace: "crm".into(),
            date_order: DateOrder::DayFirst,
            today: Utc::now(),
        }
    }

    fn record(cells: &[&str]) -> csv::ByteRecord {
        csv::ByteRecord::from(cells.to_vec())
    }

    #[test]
    fn mapped_columns_become_the_rows_fields_and_others_are_ignored() {
        let header = header(&["First", "Last", "DOB", "Mail", "Tel", "Street", "Zip", "Town", "Notes", "Pet"]);
        let mapping = Mapping::new(
            &header,
            &maps(&[
                "First=given_name",
                "Last=family_name",
                "DOB=birth_date",
                "Mail=email",
                "Tel=phone",
                "Street=address_line",
                "Zip=postcode",
                "Town=city",
                "Pet=fact:household.pet",
            ]),
            None,
        )
        .expect("valid mapping");
        let row = builder(mapping)
            .row(
                &record(&[
                    "Ada",
                    "Lovelace",
                    "10/12/1990",
                    "ada@example.org",
                    "020 7946 0958",
                    "12 St James's Square",
                    "SW1Y 4JH",
                    "London",
                    "ignored",
                    "cat",
                ]),
                7,
            )
            .expect("row");
        assert_eq!(row.row_id, "7", "the line number is the default row id");
        let customer = row.customer.expect("customer");
        assert_eq!((customer.given_name.as_str(), customer.family_name.as_str()), ("Ada", "Lovelace"));
        assert_eq!(customer.birth_date, Some(pb::Date { year: 1990, month: 12, day: 10 }));
        let ids: Vec<(i32, &str, &str)> =
            customer.identifiers.iter().map(|i| (i.kind, i.value.as_str(), i.namespace.as_str())).collect();
        assert_eq!(
            ids,
            [
                (common::IdentifierKind::Email as i32, "ada@example.org", ""),
                (common::IdentifierKind::Phone as i32, "020 7946 0958", "44"),
                (common::IdentifierKind::PostalAddress as i32, "12 St James's Square, SW1Y 4JH, London", ""),
            ]
        );
        assert_eq!(row.facts.len(), 1);
        assert_eq!(row.facts[0].key, "household.pet");
    }

    #[test]
    fn without_maps_columns_named_after_fields_map_to_them() {
        let mapping = Mapping::new(&header(&["\u{feff}email", "given_name", "comment"]), &[], None).expect("mapping");
        assert_eq!(mapping.columns, [(0, Field::Email), (1, Field::GivenName)]);
    }

    #[test]
    fn mapping_mistakes_are_usage_errors_that_say_what_is_valid() {
        let header = header(&["Mail", "Name", "Id"]);
        let unknown = Mapping::new(&header, &maps(&["Mail=e-mail"]), None).expect_err("unknown field");
        assert!(unknown.contains("given_name") && unknown.contains("fact:KEY"), "{unknown}");
        let missing = Mapping::new(&header, &maps(&["Email=email"]), None).expect_err("unknown column");
        assert!(missing.contains("Mail, Name, Id"), "{missing}");
        let twice = Mapping::new(&header, &maps(&["Mail=given_name", "Name=given_name"]), None).expect_err("twice");
        assert!(twice.contains("given_name"), "{twice}");
        assert!(Mapping::new(&header, &maps(&["Mail"]), None).is_err());
        assert!(Mapping::new(&header, &[], None).is_err(), "nothing maps");
        let ok = Mapping::new(&header, &maps(&["Mail=email", "Name=email"]), Some("Id")).expect("identifiers repeat");
        assert_eq!(ok.row_id, Some(2));
    }

    #[test]
    fn rows_are_rejected_here_when_the_date_or_kind_does_not_parse_or_the_row_id_is_missing() {
        let header = header(&["Id", "Name", "Born", "Kind"]);
        let mapping = Mapping::new(&header, &maps(&["Name=given_name", "Born=birth_date", "Kind=kind"]), Some("Id"))
            .expect("mapping");
        let rows = builder(mapping);
        let error = rows.row(&record(&["c-9", "Bob", "31/02/1984", ""]), 3).expect_err("bad date");
        assert_eq!((error.row_id.as_str(), error.field.as_str()), ("c-9", "customer.birth_date"));
        assert!(error.description.contains("31/02/1984"), "{}", error.description);
        let error = rows.row(&record(&["c-9", "Bob", "", "robot"]), 3).expect_err("bad kind");
        assert_eq!(error.field, "customer.kind");
        let error = rows.row(&record(&["", "Bob", "", ""]), 3).expect_err("no row id");
        assert_eq!((error.row_id.as_str(), error.field.as_str()), ("3", "row_id"));
        let error = rows.row(&record(&["c-9", "Bob"]), 3).expect_err("short row");
        assert!(error.description.contains("header has 4"), "{}", error.description);
        let row = rows.row(&record(&["c-10", "Ann", "", "Organisation"]), 4).expect("empty cells are skipped");
        let customer = row.customer.expect("customer");
        assert_eq!(customer.kind, pb::CustomerKind::Organization as i32);
        assert_eq!(customer.birth_date, None);
    }

    #[test]
    fn the_default_source_is_the_file_name_made_to_fit_the_source_syntax() {
        assert_eq!(default_source(Path::new("/data/acme list (2024).csv")), "file:acme-list--2024-");
        assert_eq!(default_source(Path::new("customers.csv")), "file:customers");
        assert!(is_source(&default_source(Path::new(&"é".repeat(300)))));
        assert!(!is_source("has space") && !is_source("") && is_source("list:acme-2024"));
    }

    #[test]
    fn the_summary_adds_local_rejections_and_lists_the_first_reasons_in_file_order() {
        let error =
            |row: &str, field: &str| RowError { row_id: row.into(), field: field.into(), description: "bad".into() };
        let answer = ImportCustomersResponse {
            summary: Some(BulkSummary {
                received: 8,
                created: 5,
                updated: 2,
                duplicates: 0,
                rejected: 1,
                errors: vec![error("9", "customer.identifiers[0].value")],
            }),
            linked_exact: 1,
            linked_probable: 1,
            review_candidates: 1,
        };
        let local = Local { rejected: 1, errors: vec![error("4", "customer.birth_date")] };
        let summary = Summary::new(Path::new("c.csv"), "file:c", answer, local);
        assert_eq!((summary.received, summary.rejected_here, summary.rejected_by_server), (9, 1, 1));
        let text = summary.to_string();
        let row4 = text.find("row 4").expect("local reason listed");
        let row9 = text.find("row 9").expect("server reason listed");
        assert!(row4 < row9, "{text}");
        assert!(text.contains("(linked exact 1, probable 1)"), "{text}");
    }
}
