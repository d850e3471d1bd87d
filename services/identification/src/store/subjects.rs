//! What the matcher needs of each active person: names, birth date and the
//! identifiers it compares (emails, phones, postal addresses, national ids).

use uuid::Uuid;

use super::Store;
use crate::domain::matching::record::Subject;
use crate::domain::{BirthDate, CustomerId, Identifier, IdentifierKind};
use idic_platform::ApiResult;

type SubjectRow = (Uuid, String, String, Option<i16>, Option<i16>, Option<i16>);

impl Store {
    /// Active persons with ids after `after`, in id order, at most `limit`.
    pub async fn match_subjects(&self, after: Option<CustomerId>, limit: i64) -> ApiResult<Vec<(CustomerId, Subject)>> {
        let rows: Vec<SubjectRow> = sqlx::query_as(
            "SELECT id, given_name, family_name, birth_year, birth_month, birth_day FROM customers \
             WHERE state = 'active' AND kind = 'person' AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.map_or(Uuid::nil(), |c| c.0))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        self.with_identifiers(rows).await
    }

    /// The match data of the given customers that are active persons.
    pub async fn match_subjects_of(&self, ids: &[CustomerId]) -> ApiResult<Vec<(CustomerId, Subject)>> {
        let ids: Vec<Uuid> = ids.iter().map(|c| c.0).collect();
        let rows: Vec<SubjectRow> = sqlx::query_as(
            "SELECT id, given_name, family_name, birth_year, birth_month, birth_day FROM customers \
             WHERE id = ANY($1) AND state = 'active' AND kind = 'person'",
        )
        .bind(&ids)
        .fetch_all(self.pool())
        .await?;
        self.with_identifiers(rows).await
    }

    async fn with_identifiers(&self, rows: Vec<SubjectRow>) -> ApiResult<Vec<(CustomerId, Subject)>> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
        let identifiers: Vec<(Uuid, String, String)> = sqlx::query_as(
            "SELECT customer_id, kind, value FROM identifiers \
             WHERE customer_id = ANY($1) AND state = 'active' AND NOT shared \
               AND kind IN ('email', 'phone', 'postal_address', 'national_id') \
             ORDER BY customer_id, stale, priority DESC, last_seen_time DESC",
        )
        .bind(&ids)
        .fetch_all(self.pool())
        .await?;
        let mut held: std::collections::HashMap<Uuid, Vec<Identifier>> = std::collections::HashMap::new();
        for (customer, kind, value) in identifiers {
            if let Some(kind) = IdentifierKind::parse(&kind) {
                held.entry(customer).or_default().push(Identifier { kind, namespace: String::new(), value });
            }
        }
        Ok(rows
            .into_iter()
            .map(|(id, given, family, year, month, day)| {
                let birth = match (month, day) {
                    (Some(month), Some(day)) => Some(BirthDate {
                        year: year.and_then(|y| u16::try_from(y).ok()),
                        month: u8::try_from(month).unwrap_or(0),
                        day: u8::try_from(day).unwrap_or(0),
                    }),
                    _ => None,
                };
                let identifiers = held.remove(&id).unwrap_or_default();
                (CustomerId(id), Subject::of(&given, &family, birth, &identifiers))
            })
            .collect())
    }
}
