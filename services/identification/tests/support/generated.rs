//! Generated customer-file rows as the matcher sees them (shared by the accuracy
//! tests and the matching benchmark).

use idic_identification::domain::DateOrder;
use idic_identification::domain::matching::record::{RawFields, Subject};
use idic_synth::Record;

/// What a generated row tells the matcher, normalised as the service would (UK phones).
pub fn subject(record: &Record) -> Subject {
    Subject::from_raw(&RawFields {
        given_name: record.given_name.as_deref().unwrap_or_default(),
        family_name: record.family_name.as_deref().unwrap_or_default(),
        birth_date: record.birth_date.as_deref().unwrap_or_default(),
        email: record.email.as_deref().unwrap_or_default(),
        phone: record.phone.as_deref().unwrap_or_default(),
        address: &record.address(),
        phone_region: "44",
        date_order: DateOrder::DayFirst,
    })
}
