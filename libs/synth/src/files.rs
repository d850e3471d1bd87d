//! Customer files captured from a population: one file with duplicates, or two files to link.

use rand::RngExt;
use rand::seq::SliceRandom;

use crate::corrupt::{Corruption, capture};
use crate::formats::{Conventions, DateFormat, PhoneFormat};
use crate::{Population, chance, rng_for};

/// One row of a customer file, as a channel captured it. Blank fields are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Unique within the file; says nothing about the person.
    pub record_id: String,
    /// The truth: rows captured from the same [`Person`](crate::Person) share it.
    pub entity_id: u64,
    /// Given name as captured (maybe a nickname, misspelt, or swapped with the family name).
    pub given_name: Option<String>,
    /// Family name as captured.
    pub family_name: Option<String>,
    /// Birth date as written by the channel: "1984-03-07", "07/03/1984", "19840307", ...
    pub birth_date: Option<String>,
    /// Email address as captured.
    pub email: Option<String>,
    /// Phone as typed: "07700 900123", "+44 7700 900123", "0044 7700900123", ...
    pub phone: Option<String>,
    /// House number and street: "12 Acacia Avenue", "12, acacia ave".
    pub address_line: Option<String>,
    /// Postcode as captured.
    pub postcode: Option<String>,
    /// Town or city as captured.
    pub city: Option<String>,
}

impl Record {
    /// The postal address in one line: "12 Acacia Avenue, SW1A 1AA, London" (the parts
    /// captured, joined by commas; empty when none was).
    pub fn address(&self) -> String {
        [self.address_line.as_deref(), self.postcode.as_deref(), self.city.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How the deduplication file writes dates and phones when nothing goes wrong.
const DEDUP_CONVENTIONS: Conventions = Conventions { date: DateFormat::Iso, phone: PhoneFormat::NationalSpaced };
/// File A of a linkage pair: a system storing ISO dates and E.164 phones.
const FILE_A_CONVENTIONS: Conventions = Conventions { date: DateFormat::Iso, phone: PhoneFormat::E164 };
/// File B of a linkage pair: another system, with UK dates and phones as typed.
const FILE_B_CONVENTIONS: Conventions = Conventions { date: DateFormat::SlashDmy, phone: PhoneFormat::NationalSpaced };

/// One customer file with duplicates, for deduplication.
///
/// Every person appears once (a first capture, lightly corrupted: see
/// [`Corruption::first_capture_scale`]); a share `duplicate_rate` of them appear again one to
/// three more times (one extra 78%, two 17%, three 5%), each extra row corrupted at the full
/// rates. The file's usual formats are ISO dates ("1984-03-07") and spaced national phones
/// ("07700 900123"). Rows are shuffled and numbered `D0000001`, `D0000002`, ...
pub fn dedup_file(seed: u64, population: &Population, duplicate_rate: f64, corruption: &Corruption) -> Vec<Record> {
    let mut rng = rng_for(seed, 2);
    // Plan every row as (person, is a first capture), shuffle the plan, then capture in that
    // order: cheaper than shuffling the finished rows.
    let mut plan: Vec<(usize, bool)> = Vec::with_capacity(expected_rows(population.people.len(), duplicate_rate));
    for person in 0..population.people.len() {
        plan.push((person, true));
        if chance(&mut rng, duplicate_rate) {
            let extra = match rng.random_range(0..100u32) {
                0..78 => 1,
                78..95 => 2,
                _ => 3,
            };
            plan.extend(std::iter::repeat_n((person, false), extra));
        }
    }
    plan.shuffle(&mut rng);
    let first = corruption.first_capture();
    plan.iter()
        .enumerate()
        .map(|(row, &(person, is_first))| {
            let rates = if is_first { &first } else { corruption };
            Record {
                record_id: record_id('D', row),
                ..capture(&population.people[person], DEDUP_CONVENTIONS, rates, &mut rng)
            }
        })
        .collect()
}

/// Rows expected in a deduplication file (1.27 extra rows per duplicated person on average).
fn expected_rows(people: usize, duplicate_rate: f64) -> usize {
    (people as f64 * (1.0 + duplicate_rate.clamp(0.0, 1.0) * 1.27)) as usize + 16
}

/// Two customer files to link, neither with duplicates inside.
///
/// File A is a clean-ish capture (first-capture rates) of `n / (2 - overlap)` people drawn at
/// random, written with ISO dates and E.164 phones. File B, from another system writing
/// "07/03/1984" and "07700 900123", holds as many rows: a share `overlap` of A's people plus
/// people not in A, all corrupted at the full rates (so B's matching and non-matching rows look
/// alike). With `overlap` 1 both files hold everyone; with 0 they split the population in two.
/// Rows are shuffled and numbered `A0000001`... and `B0000001`...
pub fn link_files(
    seed: u64,
    population: &Population,
    overlap: f64,
    corruption: &Corruption,
) -> (Vec<Record>, Vec<Record>) {
    let mut rng = rng_for(seed, 3);
    let overlap = overlap.clamp(0.0, 1.0);
    let n = population.people.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let size = ((n as f64 / (2.0 - overlap)).round() as usize).min(n);
    let shared = ((size as f64 * overlap).round() as usize).min(size);
    let only_b = (size - shared).min(n - size);

    // `order` is already random, so A's rows come out shuffled; B's rows are shuffled by index.
    let mut in_b: Vec<usize> = order[..shared].iter().chain(&order[size..size + only_b]).copied().collect();
    in_b.shuffle(&mut rng);

    let first = corruption.first_capture();
    let people = &population.people;
    let a = order[..size]
        .iter()
        .enumerate()
        .map(|(row, &i)| Record {
            record_id: record_id('A', row),
            ..capture(&people[i], FILE_A_CONVENTIONS, &first, &mut rng)
        })
        .collect();
    let b = in_b
        .iter()
        .enumerate()
        .map(|(row, &i)| Record {
            record_id: record_id('B', row),
            ..capture(&people[i], FILE_B_CONVENTIONS, corruption, &mut rng)
        })
        .collect();
    (a, b)
}

/// The id of the row at 0-based position `row`: "D0000001".
fn record_id(prefix: char, row: usize) -> String {
    format!("{prefix}{:07}", row + 1)
}

/// Writes records as CSV with the header
/// `record_id,[entity_id,]given_name,family_name,birth_date,email,phone,address,postcode,city`;
/// `entity_id` (the truth) only `with_truth`. Blank fields are empty; fields holding commas,
/// quotes or line breaks are quoted.
pub fn write_csv<W: std::io::Write>(records: &[Record], out: W, with_truth: bool) -> std::io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    let mut header = vec!["record_id"];
    if with_truth {
        header.push("entity_id");
    }
    header.extend(["given_name", "family_name", "birth_date", "email", "phone", "address", "postcode", "city"]);
    writer.write_record(&header)?;
    for r in records {
        writer.write_field(&r.record_id)?;
        if with_truth {
            writer.write_field(r.entity_id.to_string())?;
        }
        let fields =
            [&r.given_name, &r.family_name, &r.birth_date, &r.email, &r.phone, &r.address_line, &r.postcode, &r.city];
        for value in fields {
            writer.write_field(value.as_deref().unwrap_or(""))?;
        }
        writer.write_record(None::<&[u8]>)?;
    }
    writer.flush()
}
