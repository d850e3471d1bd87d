//! Applying a resolution in one transaction: link the contact to its customer
//! (attaching the identifiers it presented, recording its names and birth date as
//! facts) or create the customer, and file a review candidate when asked;
//! idempotent under the caller's key, whose answer is stored with the effect.

use idic_platform::{ApiError, ApiResult, idempotency};
use serde::{Deserialize, Serialize};
use sqlx::Acquire as _;
use uuid::Uuid;

use super::identifiers::{NewIdentifier, attach_identifier};
use super::merges::{CandidateOrigin, NewMergeCandidate, file_merge_candidate};
use super::{FactProvenance, Store, append_facts, field_facts, insert_customer, lock_active};
use crate::domain::facts::{FactKey, FactValue};
use crate::domain::{CustomerId, Identifier, IdentifierKind, NewCustomer};
use crate::match_index::BestMatch;

/// How a contact matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchKind {
    /// On a strong identifier.
    Exact,
    /// By the matcher, above the auto-link threshold.
    Probable,
    /// A customer was created.
    New,
}

/// One field's evidence as stored and answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvidence {
    /// The compared field.
    pub field: String,
    /// The level reached.
    pub level: String,
    /// Weight in bits.
    pub weight: f64,
}

/// The answer of a resolution, stored for replays of the same request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolutionRecord {
    /// The customer the contact belongs to (nil until a created one is known).
    pub customer: Uuid,
    /// How it matched.
    pub match_kind: MatchKind,
    /// Match probability with the best candidate (1 for exact, 0 without candidate).
    pub score: f64,
    /// Total weight in bits with the best candidate.
    pub weight: f64,
    /// Per-field evidence with the best candidate.
    pub evidence: Vec<StoredEvidence>,
    /// The best existing candidate.
    pub best_candidate: Option<Uuid>,
    /// For an exact match: the identifier that decided it.
    pub matched_identifier: Option<Identifier>,
    /// The review candidate filed, if any.
    pub merge_candidate: Option<Uuid>,
}

impl ResolutionRecord {
    /// An exact match on `identifier`.
    pub fn exact(customer: CustomerId, identifier: Identifier) -> Self {
        Self {
            customer: customer.0,
            match_kind: MatchKind::Exact,
            score: 1.0,
            weight: 0.0,
            evidence: Vec::new(),
            best_candidate: Some(customer.0),
            matched_identifier: Some(identifier),
            merge_candidate: None,
        }
    }

    /// A new customer with no candidate at all.
    pub fn new_without_candidate() -> Self {
        Self {
            customer: Uuid::nil(),
            match_kind: MatchKind::New,
            score: 0.0,
            weight: 0.0,
            evidence: Vec::new(),
            best_candidate: None,
            matched_identifier: None,
            merge_candidate: None,
        }
    }

    /// A scored outcome against `best` (linked to it for PROBABLE).
    pub fn scored(kind: MatchKind, candidate: CustomerId, best: &BestMatch, evidence: Vec<StoredEvidence>) -> Self {
        Self {
            customer: if kind == MatchKind::Probable { candidate.0 } else { Uuid::nil() },
            match_kind: kind,
            score: best.probability,
            weight: best.weight,
            evidence,
            best_candidate: Some(candidate.0),
            matched_identifier: None,
            merge_candidate: None,
        }
    }
}

/// Where the contact goes.
#[derive(Debug, Clone, Copy)]
pub enum Decision {
    /// To this existing customer.
    Link(CustomerId),
    /// To a new customer.
    Create,
}

/// A pair to file for review.
#[derive(Debug, Clone)]
pub struct Review {
    /// The existing customer, proposed survivor.
    pub survivor: CustomerId,
    /// The other customer; `None` for the one this resolution creates.
    pub duplicate: Option<CustomerId>,
    /// Match probability.
    pub score: f64,
    /// Match weight in bits.
    pub weight: f64,
    /// Per-field evidence.
    pub evidence: Vec<StoredEvidence>,
}

/// Everything a resolution writes.
pub struct ResolveWrite<'a> {
    /// What the contact said, validated.
    pub presented: &'a NewCustomer,
    /// Further facts the contact brought (an imported row's).
    pub facts: &'a [(FactKey, FactValue)],
    /// Where and when.
    pub provenance: &'a FactProvenance,
    /// Who asked.
    pub caller: &'a str,
    /// Link or create.
    pub decision: Decision,
    /// A pair to file for review.
    pub review: Option<Review>,
    /// What found the review pair.
    pub origin: CandidateOrigin,
    /// The per-kind identifier limits.
    pub limits: &'a (dyn Fn(IdentifierKind) -> usize + Sync),
    /// Idempotency method name ("ResolveCustomer", "ImportCustomers").
    pub method: &'a str,
    /// Idempotency key and request hash.
    pub key: Option<(&'a str, &'a [u8])>,
    /// The answer, completed with the customer and candidate once written.
    pub record: ResolutionRecord,
    /// Commit without waiting for the disk: the caller makes the commit durable with
    /// [`Store::flush_commits`] before acknowledging it (imports, once per message).
    pub deferred_flush: bool,
}

/// What applying did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The answer.
    pub record: ResolutionRecord,
    /// False for a replay of an earlier request (nothing written now).
    pub changed: bool,
}

impl Store {
    /// The answer of an earlier resolution under `key` (method, request id, hash), if
    /// it finished: a retried contact or a re-imported row needs no matching.
    pub async fn replayed_resolution(&self, method: &str, key: (&str, &[u8])) -> ApiResult<Option<ResolutionRecord>> {
        let mut conn = self.pool().acquire().await?;
        match idempotency::peek(&mut conn, method, key.0, key.1).await? {
            Some(bytes) => {
                Ok(Some(serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("stored resolution: {e}"))?))
            }
            None => Ok(None),
        }
    }

    /// Makes every commit before it durable: a transaction with an id commits
    /// synchronously, which flushes the write-ahead log up to its commit, and with it
    /// the commits made with `deferred_flush`.
    pub async fn flush_commits(&self) -> ApiResult<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT pg_current_xact_id()").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applies a resolution (see the module documentation).
    pub async fn apply_resolution(&self, write: &ResolveWrite<'_>) -> ApiResult<Applied> {
        let mut tx = self.pool().begin().await?;
        if write.deferred_flush {
            sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        }
        if let Some((key, hash)) = write.key
            && let idempotency::Claim::Replay(bytes) = idempotency::claim(&mut tx, write.method, key, hash).await?
        {
            let record = serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("stored resolution: {e}"))?;
            return Ok(Applied { record, changed: false });
        }
        let mut record = write.record.clone();
        let customer = match write.decision {
            Decision::Link(customer) => {
                lock_active(&mut tx, customer).await?;
                for identifier in &write.presented.identifiers {
                    let new = NewIdentifier {
                        identifier: identifier.clone(),
                        priority: None,
                        verified: false,
                        provenance: write.provenance.clone(),
                    };
                    // A value held elsewhere, blocked, or beyond the limit is skipped,
                    // not an error: the contact still belongs to this customer.
                    let mut attempt = tx.begin().await?;
                    match attach_identifier(&mut attempt, customer, &new, (write.limits)(identifier.kind)).await {
                        Ok(_) => attempt.commit().await?,
                        Err(ApiError::InvalidArgument(_) | ApiError::Conflict(_) | ApiError::FailedPrecondition(_)) => {
                            attempt.rollback().await?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                let facts = presented_facts(write.presented);
                append_facts(&mut tx, customer, &facts, write.provenance, write.caller, |_, _, v| v).await?;
                customer
            }
            Decision::Create => insert_customer(&mut tx, write.presented, write.provenance, write.caller).await?,
        };
        if !write.facts.is_empty() {
            append_facts(&mut tx, customer, write.facts, write.provenance, write.caller, |_, _, v| v).await?;
        }
        record.customer = customer.0;
        if let Some(review) = &write.review {
            let evidence = serde_json::to_value(&review.evidence).map_err(anyhow::Error::from)?;
            record.merge_candidate = file_merge_candidate(
                &mut tx,
                &NewMergeCandidate {
                    customer: review.survivor,
                    duplicate: review.duplicate.unwrap_or(customer),
                    score: review.score,
                    match_weight: review.weight,
                    evidence: &evidence,
                    origin: write.origin,
                    cleansing: None,
                },
            )
            .await?;
        }
        if let Some((key, _)) = write.key {
            let bytes = serde_json::to_vec(&record).map_err(anyhow::Error::from)?;
            idempotency::complete(&mut tx, write.method, key, &bytes).await?;
        }
        tx.commit().await?;
        Ok(Applied { record, changed: true })
    }
}

/// The names and birth date a contact presented, as facts.
fn presented_facts(presented: &NewCustomer) -> Vec<(FactKey, FactValue)> {
    const PRESENTED: [&str; 4] = ["given_name", "family_name", "organization_name", "birth_date"];
    field_facts(presented).into_iter().filter(|(key, _)| PRESENTED.contains(&key.as_str())).collect()
}
