//! `idic import interactions FILE.csv`: streams a CSV file of contacts to
//! `IngestInteractions` in batches and prints what became of the rows. Columns are mapped
//! to interaction fields by `--map`; kinds, channels, directions, purposes and times are
//! parsed here and rows where they do not parse are rejected without being sent. Each
//! row's request id is made of the source and the row id, so running the same import
//! again resumes an interrupted one.

use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
};

use anyhow::Context as _;
use chrono::DateTime;
use idic_proto::{
    common::v1::{self as common, BulkSummary, RowError},
    interaction::v1::{self as pb, IngestInteractionsRequest, IngestInteractionsResponse, RecordInteractionRequest},
};
use tokio::sync::mpsc;

use super::{Batch, Local, MAX_BATCH, MapField, Mapping, all_errors, default_source, is_source, read_rows};
use crate::client::ServerArgs;

/// Arguments of `idic import interactions`.
#[derive(Debug, clap::Args)]
pub struct ImportInteractionsArgs {
    /// The CSV file, comma-separated, UTF-8, with a header line naming the columns.
    file: PathBuf,
    /// Maps a column (by its header) to an interaction field, as COLUMN=FIELD; repeat for
    /// each column. Fields: customer_id or email (who the contact was with), kind
    /// (purchase, message_sent, inbound_call…), channel (web, email, sms, call_centre…),
    /// direction (inbound or outbound), purpose (marketing, service…), occur_time
    /// (RFC 3339), campaign, offer, handled_by, note and row_id. Columns not mapped are
    /// ignored; without any --map, columns whose header is a field name map to that field.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    maps: Vec<String>,
    /// Where the rows come from (letters, digits and ._:/-, at most 100); with the row id it
    /// identifies a row, so a re-run must give the same source. Default: file:<file name
    /// without extension>.
    #[arg(long)]
    source: Option<String>,
    /// The column holding each row's id (unique in the source); default: the line number.
    #[arg(long, value_name = "COLUMN")]
    row_id: Option<String>,
    /// Check outbound contacts against the contact policy: denied rows are rejected, not
    /// stored. Without it every contact is recorded as a fact.
    #[arg(long)]
    enforce_contact_policy: bool,
    /// Rows per message of the stream, 1–1000.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_BATCH)))]
    batch: u16,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs the import and prints its summary. Errors are failures to run (bad usage, no
/// connection, refused credentials, a broken stream), not rejected rows.
pub async fn run(args: ImportInteractionsArgs) -> anyhow::Result<()> {
    let ImportInteractionsArgs { file, maps, source, row_id, enforce_contact_policy, batch, server } = args;
    let source = match source {
        Some(source) => {
            anyhow::ensure!(is_source(&source), "--source {source:?}: use 1 to 100 letters, digits or ._:/-");
            source
        }
        None => default_source(&file),
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&file)
        .with_context(|| format!("cannot open {}", file.display()))?;
    let header = reader.headers().with_context(|| format!("{}: the header line", file.display()))?.clone();
    let mapping = Mapping::<Field>::parse(&header, &maps, row_id.as_deref()).map_err(anyhow::Error::msg)?;
    let rows = RowBuilder { mapping, source: source.clone(), enforce_contact_policy };
    let client = &mut server.interaction().await?;
    let read = move |reader, tx: mpsc::Sender<Batch<IngestInteractionsRequest>>| {
        let message = |interactions: Vec<RecordInteractionRequest>, position, read| {
            let last = interactions
                .last()
                .and_then(|r| r.interaction.as_ref())
                .map(|i| i.source_reference.clone())
                .unwrap_or_default();
            let count = interactions.len() as u64;
            Batch::of(IngestInteractionsRequest { interactions }, count, last, position, read)
        };
        read_rows(reader, |record, line| rows.row(record, line), message, usize::from(batch), &tx)
    };
    let send = move |stream| async move { client.ingest_interactions(stream).await };
    let (answer, local, read_error) = super::upload_file(&file, reader, read, send).await?;
    print!("{}", Summary::new(&file, &source, answer, local));
    read_error.map_or(Ok(()), Err)
}

/// What a column can say about a contact.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    CustomerId,
    Email,
    Kind,
    Channel,
    Direction,
    Purpose,
    OccurTime,
    Campaign,
    Offer,
    HandledBy,
    Note,
    RowId,
}

const FIELDS: [(&str, Field); 12] = [
    ("customer_id", Field::CustomerId),
    ("email", Field::Email),
    ("kind", Field::Kind),
    ("channel", Field::Channel),
    ("direction", Field::Direction),
    ("purpose", Field::Purpose),
    ("occur_time", Field::OccurTime),
    ("campaign", Field::Campaign),
    ("offer", Field::Offer),
    ("handled_by", Field::HandledBy),
    ("note", Field::Note),
    ("row_id", Field::RowId),
];

impl FromStr for Field {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        super::field_named(&FIELDS, s, Self::NAMES)
    }
}

impl MapField for Field {
    const ROW_ID: Self = Self::RowId;
    const NAMES: &'static str = "customer_id, email, kind, channel, direction, purpose, occur_time, campaign, \
                                 offer, handled_by, note, row_id";
    const OF: &'static str = "interaction";

    fn name(&self) -> String {
        FIELDS.iter().find(|(_, f)| f == self).map_or_else(String::new, |(name, _)| (*name).to_owned())
    }

    fn repeatable(&self) -> bool {
        false
    }
}

impl Field {
    /// Where the field goes in a `RecordInteractionRequest`, for the reasons of rows
    /// rejected here.
    fn path(&self) -> &'static str {
        match self {
            Self::CustomerId | Self::Email => "customer",
            Self::Kind => "interaction.kind",
            Self::Channel => "interaction.channel",
            Self::Direction => "interaction.direction",
            Self::Purpose => "interaction.purpose",
            Self::OccurTime => "interaction.occur_time",
            Self::Campaign => "interaction.campaign",
            Self::Offer => "interaction.offer",
            Self::HandledBy => "interaction.handled_by",
            Self::Note => "interaction.note",
            Self::RowId => "row_id",
        }
    }
}

/// An enum value by its short name (`message_sent` for INTERACTION_KIND_MESSAGE_SENT).
fn enum_value(value: &str, prefix: &str, parse: fn(&str) -> Option<i32>) -> Option<i32> {
    let name = format!("{prefix}{}", value.trim().to_ascii_uppercase().replace([' ', '-'], "_"));
    parse(&name).filter(|v| *v != 0)
}

/// Turns CSV records into rows of the stream.
#[derive(Debug)]
struct RowBuilder {
    mapping: Mapping<Field>,
    source: String,
    enforce_contact_policy: bool,
}

impl RowBuilder {
    /// The row on line `line`, or why it is rejected before sending.
    fn row(&self, record: &csv::ByteRecord, line: u64) -> Result<RecordInteractionRequest, RowError> {
        let row_id = self.mapping.row_id(record, line)?;
        let reject = |field: &Field, description: String| RowError {
            row_id: row_id.clone(),
            field: field.path().to_owned(),
            description,
        };
        let request_id = format!("{}:{row_id}", self.source);
        if request_id.len() > 128 || !request_id.bytes().all(|b| b.is_ascii_graphic()) {
            let description = "must be printable ASCII without spaces, at most 128 characters with the source".into();
            return Err(reject(&Field::RowId, description));
        }
        let mut customer = None;
        let mut interaction = pb::Interaction {
            source: self.source.chars().take(64).collect(),
            source_reference: row_id.clone(),
            ..Default::default()
        };
        for (column, field) in &self.mapping.columns {
            let value = Mapping::<Field>::cell(record, *column, field.path(), &row_id, line)?;
            if value.is_empty() {
                continue;
            }
            let unknown = |what: &str| reject(field, format!("{value:?} is not a known {what}"));
            match field {
                Field::CustomerId => {
                    customer = Some(common::customer_ref::Ref::CustomerId(value.to_owned()));
                }
                Field::Email => {
                    let email = common::Identifier {
                        kind: common::IdentifierKind::Email as i32,
                        value: value.to_owned(),
                        namespace: String::new(),
                    };
                    customer = Some(common::customer_ref::Ref::Identifiers(common::IdentifierSet {
                        identifiers: vec![email],
                    }));
                }
                Field::Kind => {
                    interaction.kind = enum_value(value, "INTERACTION_KIND_", |n| {
                        pb::InteractionKind::from_str_name(n).map(|v| v as i32)
                    })
                    .ok_or_else(|| unknown("kind"))?;
                }
                Field::Channel => {
                    interaction.channel =
                        enum_value(value, "CHANNEL_", |n| common::Channel::from_str_name(n).map(|v| v as i32))
                            .ok_or_else(|| unknown("channel"))?;
                }
                Field::Direction => {
                    interaction.direction = enum_value(value, "INTERACTION_DIRECTION_", |n| {
                        pb::InteractionDirection::from_str_name(n).map(|v| v as i32)
                    })
                    .ok_or_else(|| unknown("direction"))?;
                }
                Field::Purpose => {
                    interaction.purpose = enum_value(value, "CONSENT_PURPOSE_", |n| {
                        common::ConsentPurpose::from_str_name(n).map(|v| v as i32)
                    })
                    .ok_or_else(|| unknown("purpose"))?;
                }
                Field::OccurTime => {
                    let at = DateTime::parse_from_rfc3339(value)
                        .map_err(|e| reject(field, format!("{value:?} is not an RFC 3339 time: {e}")))?;
                    interaction.occur_time = Some(prost_types::Timestamp {
                        seconds: at.timestamp(),
                        nanos: at.timestamp_subsec_nanos() as i32,
                    });
                }
                Field::Campaign => interaction.campaign = value.to_owned(),
                Field::Offer => interaction.offer = value.to_owned(),
                Field::HandledBy => interaction.handled_by = value.to_owned(),
                Field::Note => interaction.note = value.to_owned(),
                Field::RowId => {}
            }
        }
        Ok(RecordInteractionRequest {
            request_id,
            customer: customer.map(|r| common::CustomerRef { r#ref: Some(r) }),
            interaction: Some(interaction),
            create_missing_customer: false,
            enforce_contact_policy: self.enforce_contact_policy,
        })
    }
}

/// What became of the rows: the server's answer with the rows rejected here added.
#[derive(Debug)]
struct Summary {
    file: PathBuf,
    source: String,
    received: i64,
    created: i64,
    duplicates: i64,
    rejected_here: i64,
    rejected_by_server: i64,
    contact_denials: Vec<(String, i64)>,
    errors: Vec<RowError>,
}

impl Summary {
    fn new(file: &Path, source: &str, answer: IngestInteractionsResponse, local: Local) -> Self {
        let IngestInteractionsResponse { summary, contact_denials } = answer;
        let BulkSummary { received, created, updated: _, duplicates, rejected, errors } = summary.unwrap_or_default();
        // The server names rows by request id: give back the row ids of the file.
        let prefix = format!("{source}:");
        let errors = errors
            .into_iter()
            .map(|e| RowError { row_id: e.row_id.strip_prefix(&prefix).unwrap_or(&e.row_id).to_owned(), ..e })
            .collect();
        Self {
            file: file.to_owned(),
            source: source.to_owned(),
            received: received + local.rejected,
            created,
            duplicates,
            rejected_here: local.rejected,
            rejected_by_server: rejected,
            contact_denials: contact_denials
                .iter()
                .map(|d| {
                    let reason = pb::ContactDenialReason::try_from(d.reason)
                        .map_or("unknown", |r| r.as_str_name())
                        .trim_start_matches("CONTACT_DENIAL_REASON_")
                        .to_ascii_lowercase();
                    (reason, d.count)
                })
                .collect(),
            errors: all_errors(local.errors, errors),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rejected = self.rejected_here + self.rejected_by_server;
        writeln!(f, "imported {} as source {}", self.file.display(), self.source)?;
        writeln!(f, "  received           {:>9}", self.received)?;
        writeln!(f, "  created            {:>9}", self.created)?;
        writeln!(f, "  duplicates         {:>9}  (already imported: a re-run resumes)", self.duplicates)?;
        writeln!(
            f,
            "  rejected           {:>9}  ({} here, {} by the server)",
            rejected, self.rejected_here, self.rejected_by_server
        )?;
        super::write_reasons(f, &self.errors, rejected)?;
        for (reason, count) in &self.contact_denials {
            writeln!(f, "  denied by policy   {count:>9}  ({reason})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(header: &[&str], maps: &[&str]) -> RowBuilder {
        let maps: Vec<String> = maps.iter().map(|m| (*m).to_owned()).collect();
        let mapping =
            Mapping::<Field>::parse(&csv::StringRecord::from(header.to_vec()), &maps, Some("Id")).expect("mapping");
        RowBuilder { mapping, source: "file:shop".into(), enforce_contact_policy: true }
    }

    #[test]
    fn rows_carry_a_request_id_of_source_and_row_id_and_parsed_enums() {
        let rows = builder(
            &["Id", "Mail", "What", "Where", "When"],
            &["Mail=email", "What=kind", "Where=channel", "When=occur_time"],
        );
        let record =
            csv::ByteRecord::from(vec!["o-1", "ada@example.org", "Purchase", "call centre", "2026-03-01T10:00:00Z"]);
        let row = rows.row(&record, 2).expect("row");
        assert_eq!(row.request_id, "file:shop:o-1");
        assert!(row.enforce_contact_policy);
        let interaction = row.interaction.expect("interaction");
        assert_eq!(interaction.kind, pb::InteractionKind::Purchase as i32);
        assert_eq!(interaction.channel, common::Channel::CallCentre as i32);
        assert_eq!(interaction.occur_time.map(|t| t.seconds), Some(1_772_359_200));
        assert_eq!(interaction.source_reference, "o-1");
        let record = csv::ByteRecord::from(vec!["o-2", "ada@example.org", "teleport", "web", ""]);
        let error = rows.row(&record, 3).expect_err("unknown kind");
        assert_eq!((error.row_id.as_str(), error.field.as_str()), ("o-2", "interaction.kind"));
    }
}
