//! The contact-policy check: gathers what the policy needs about a customer (one
//! Postgres round trip, the Redis counter of their contacts) and decides with
//! [`domain::contact_policy`](crate::domain::contact_policy). Identification is called
//! only to fill the local copies on a miss (consent state, time zone): the steady state
//! makes no remote call.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use idic_platform::{
    ApiError, ApiResult, context,
    runtime::{PeerService, Peers},
};
use idic_proto::identification::v1 as ident;
use sqlx::{PgConnection, PgPool};
use tonic::Code;
use uuid::Uuid;

use crate::{
    contact_counters::ContactCounters,
    domain::Interaction,
    domain::contact_policy::{self as policy, Channel, Consent, ConsentCopy, CountedContact, Decision, Facts, Purpose},
    store::contact_policy::{self as store, CheckFacts, ConsentFact},
};

/// How long a fetched time zone is trusted before it is fetched again.
const PROFILE_REFRESH: Duration = Duration::days(1);
/// How far in the past a check may be made (the contract's bound): counters hold the
/// contacts of the longest cap window before it.
const MAX_PAST: Duration = Duration::days(1);

/// One check.
#[derive(Debug, Clone)]
pub struct Check {
    /// The customer (an id; merged ids are followed to their survivor).
    pub customer: Uuid,
    /// The contact's channel.
    pub channel: Channel,
    /// The contact's purpose.
    pub purpose: Purpose,
    /// When the contact would happen.
    pub at: DateTime<Utc>,
    /// A zone overriding the customer's own for quiet hours.
    pub time_zone: Option<(String, Tz)>,
}

/// The answer of a check.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The customer checked (the survivor when a merged id was given).
    pub customer: Uuid,
    /// The decision.
    pub decision: Decision,
    /// The zone quiet hours were evaluated in.
    pub time_zone: String,
}

/// Checks contacts against the policy.
#[derive(Debug, Clone)]
pub struct ContactChecker {
    pool: PgPool,
    counters: ContactCounters,
    peers: Peers,
}

/// The facts of a check gathered before counting contacts.
struct Gathered {
    customer: Uuid,
    facts: CheckFacts,
    consent: Consent,
    time_zone: (String, Tz),
}

impl ContactChecker {
    /// A checker over the service's schema, its Redis counters and identification.
    pub fn new(pool: PgPool, counters: ContactCounters, peers: Peers) -> Self {
        Self { pool, counters, peers }
    }

    /// The Redis counters (recording code adds committed contacts to them).
    pub fn counters(&self) -> &ContactCounters {
        &self.counters
    }

    /// Counts the outbound contacts among `rows` whose ids are in `inserted` (just
    /// committed) in the Redis counters. Call it after every commit that stores
    /// interactions.
    pub async fn count_recorded(&self, rows: &[Interaction], inserted: &HashSet<Uuid>) {
        for interaction in rows.iter().filter(|r| inserted.contains(&r.id)) {
            if let (true, Some(customer)) = (interaction.is_outbound_contact(), interaction.customer_id) {
                let contact = CountedContact {
                    channel: Channel(interaction.channel),
                    purpose: Purpose(interaction.purpose),
                    time: interaction.occurred_at,
                };
                self.counters.add(customer, interaction.id, &contact).await;
            }
        }
    }

    /// Decides `check`, counting contacts from Redis (from Postgres when Redis is down).
    /// Read-only: nothing is counted.
    pub async fn check(&self, check: &Check) -> ApiResult<Checked> {
        let gathered = self.gather(check).await?;
        let contacts = self.recent_contacts(gathered.customer, &gathered.facts.policy, check.at).await?;
        Ok(decide(check, gathered, &contacts))
    }

    /// Decides `check` inside the transaction that will record the contact, counting
    /// contacts from Postgres under the customer's contact lock (held until `tx` ends),
    /// so that checking and counting are atomic. See [`store::lock_contacts`].
    pub async fn check_locked(&self, tx: &mut PgConnection, check: &Check) -> ApiResult<Checked> {
        let gathered = self.gather(check).await?;
        store::lock_contacts(tx, gathered.customer).await?;
        let window = gathered.facts.policy.longest_window_secs();
        let contacts = if window == 0 {
            Vec::new()
        } else {
            store::outbound_contacts(tx, gathered.customer, check.at - Duration::seconds(window)).await?
        };
        let contacts: Vec<CountedContact> = contacts.into_iter().map(|(_, c)| c).collect();
        Ok(decide(check, gathered, &contacts))
    }

    async fn gather(&self, check: &Check) -> ApiResult<Gathered> {
        let mut customer = check.customer;
        let mut facts = store::check_facts(&self.pool, customer, check.purpose, check.channel).await?;
        for _ in 0..32 {
            let Some(survivor) = facts.merged_into else { break };
            customer = survivor;
            facts = store::check_facts(&self.pool, customer, check.purpose, check.channel).await?;
        }
        if facts.erased {
            return Err(ApiError::NotFound(format!("customers/{customer}")));
        }
        let exempt = facts.policy.consent_exempt_purposes.contains(&check.purpose);
        let needs_profile = check.time_zone.is_none()
            && facts.profile.as_ref().is_none_or(|(_, fetched)| *fetched < Utc::now() - PROFILE_REFRESH);
        let copy_decides = (exempt || facts.consent_snapshot).then(|| consent_from(&facts.consents, check)).flatten();
        // The two remote fills, when both are needed, run together.
        let (profile, consent) = tokio::join!(
            async { if needs_profile { self.fetch_time_zone(customer).await.map(Some) } else { Ok(None) } },
            async {
                match copy_decides {
                    Some(consent) => Ok(consent),
                    None if exempt => Ok(Consent::Allowed),
                    None => self.fetch_consent(customer, check).await,
                }
            }
        );
        let consent = consent?;
        let customer_zone = match profile? {
            Some(fetched) => fetched,
            None => facts.profile.as_ref().map(|(zone, _)| zone.clone()),
        };
        let time_zone = match &check.time_zone {
            Some(zone) => zone.clone(),
            None => zone_or_default(customer_zone.as_deref(), &facts.policy.default_time_zone),
        };
        Ok(Gathered { customer, facts, consent, time_zone })
    }

    /// The customer's contacts in the longest cap window before `at`: from the Redis
    /// counter, rebuilt from Postgres when missing; from Postgres when Redis is down.
    async fn recent_contacts(
        &self,
        customer: Uuid,
        policy: &policy::Policy,
        at: DateTime<Utc>,
    ) -> ApiResult<Vec<CountedContact>> {
        let window = policy.longest_window_secs();
        if window == 0 {
            return Ok(Vec::new());
        }
        let since = at - Duration::seconds(window);
        match self.counters.read(customer, since).await {
            Ok(Some(contacts)) => return Ok(contacts),
            Ok(None) => {
                // Rebuild with everything a check of the next minutes may count.
                let earliest = since.min(Utc::now() - MAX_PAST - Duration::seconds(window));
                let mut conn = self.pool.acquire().await?;
                let all = store::outbound_contacts(&mut conn, customer, earliest).await?;
                let _ = self.counters.rebuild(customer, &all).await;
                return Ok(all.into_iter().map(|(_, c)| c).filter(|c| c.time > since).collect());
            }
            Err(_) => {}
        }
        let mut conn = self.pool.acquire().await?;
        let contacts = store::outbound_contacts(&mut conn, customer, since).await?;
        Ok(contacts.into_iter().map(|(_, c)| c).collect())
    }

    fn identification(
        &self,
    ) -> ApiResult<ident::identification_service_client::IdentificationServiceClient<idic_platform::client::PeerChannel>>
    {
        let channel = self.peers.channel(PeerService::Identification).map_err(ApiError::Internal)?;
        Ok(ident::identification_service_client::IdentificationServiceClient::new(channel))
    }

    /// The customer's time zone from identification (empty when unknown), remembered.
    async fn fetch_time_zone(&self, customer: Uuid) -> ApiResult<Option<String>> {
        let client = self.identification()?;
        let name = format!("customers/{customer}");
        let request = ident::GetCustomerRequest { name: name.clone() };
        let fetched = as_service(idic_platform::client::retry_idempotent(self.peers.max_attempts(), || {
            let mut client = client.clone();
            let request = request.clone();
            async move { client.get_customer(request).await }
        }))
        .await;
        match fetched {
            Ok(response) => {
                let found = response.into_inner();
                if found.state == ident::CustomerState::Erased as i32 {
                    return Err(ApiError::NotFound(name));
                }
                store::save_profile(&self.pool, customer, &found.time_zone).await?;
                Ok(Some(found.time_zone))
            }
            Err(status) if status.code() == Code::NotFound => Err(ApiError::NotFound(name)),
            Err(status) => {
                // Quiet hours fall back to the copy held, or the policy's default zone.
                tracing::warn!(%customer, %status, "identification unreachable: customer time zone not refreshed");
                Ok(None)
            }
        }
    }

    /// Consent for the check from identification (GetConsents), storing the customer's
    /// whole consent state locally; UNKNOWN when identification cannot answer.
    async fn fetch_consent(&self, customer: Uuid, check: &Check) -> ApiResult<Consent> {
        let client = self.identification()?;
        let name = format!("customers/{customer}");
        let request = ident::GetConsentsRequest { parent: name.clone(), purpose: 0, channel: 0 };
        let fetched = as_service(idic_platform::client::retry_idempotent(self.peers.max_attempts(), || {
            let mut client = client.clone();
            let request = request.clone();
            async move { client.get_consents(request).await }
        }))
        .await;
        let consents = match fetched {
            Ok(response) => response.into_inner().consents,
            Err(status) if status.code() == Code::NotFound => return Err(ApiError::NotFound(name)),
            Err(status) if status.code() == Code::FailedPrecondition => return Err(ApiError::NotFound(name)),
            Err(status) => {
                tracing::warn!(%customer, %status, "identification unreachable: consent unknown");
                return Ok(Consent::Unknown);
            }
        };
        let facts: Vec<ConsentFact> = consents.iter().filter_map(consent_fact).collect();
        store::save_consent_snapshot(&self.pool, customer, &facts).await?;
        let copies: Vec<ConsentCopy> = facts
            .iter()
            .filter(|f| f.purpose == check.purpose)
            .map(|f| ConsentCopy {
                channel: f.channel,
                granted: f.granted,
                observe_time: f.observe_time,
                expire_time: f.expire_time,
            })
            .collect();
        // Identification already left lapsed grants out of what it answered.
        Ok(match policy::consent_from_copy(&copies, check.purpose, check.channel, check.at) {
            Some(true) => Consent::Allowed,
            Some(false) => Consent::Denied,
            None => Consent::Denied,
        })
    }
}

/// Runs `fut` (calls to identification filling the local copies) with this service's
/// identity rather than the caller's token: a caller allowed to check the policy need not
/// read profiles or consents. The caller's request id and deadline are kept.
async fn as_service<F: std::future::Future>(fut: F) -> F::Output {
    match context::current() {
        Some(mut ctx) => {
            ctx.token = None;
            context::scope(ctx, fut).await
        }
        None => fut.await,
    }
}

fn consent_from(copies: &[ConsentCopy], check: &Check) -> Option<Consent> {
    policy::consent_from_copy(copies, check.purpose, check.channel, check.at)
        .map(|allowed| if allowed { Consent::Allowed } else { Consent::Denied })
}

/// A recorded decision of GetConsents as a local fact; None for pairs decided by default.
pub(crate) fn consent_fact(consent: &ident::Consent) -> Option<ConsentFact> {
    let granted = match ident::ConsentStatus::try_from(consent.status).ok()? {
        ident::ConsentStatus::Granted => true,
        ident::ConsentStatus::Withdrawn => false,
        ident::ConsentStatus::Unspecified => return None,
    };
    let to_time = |t: &prost_types::Timestamp| DateTime::<Utc>::from_timestamp(t.seconds, t.nanos.max(0) as u32);
    Some(ConsentFact {
        purpose: Purpose(i16::try_from(consent.purpose).ok()?),
        channel: (consent.channel != 0).then(|| i16::try_from(consent.channel).ok().map(Channel)).flatten(),
        granted,
        observe_time: consent.observe_time.as_ref().and_then(to_time)?,
        expire_time: consent.expire_time.as_ref().and_then(to_time),
    })
}

/// The customer's zone when it is a known IANA name, else the policy's default (UTC when
/// that is unusable too).
fn zone_or_default(customer_zone: Option<&str>, default: &str) -> (String, Tz) {
    [customer_zone.unwrap_or_default(), default]
        .into_iter()
        .find_map(|name| policy::parse_time_zone(name).map(|tz| (name.to_owned(), tz)))
        .unwrap_or_else(|| ("UTC".to_owned(), Tz::UTC))
}

fn decide(check: &Check, gathered: Gathered, contacts: &[CountedContact]) -> Checked {
    let Gathered { customer, facts, consent, time_zone } = gathered;
    let decision = policy::decide(&Facts {
        policy: &facts.policy,
        channel: check.channel,
        purpose: check.purpose,
        at: check.at,
        do_not_contact: facts.do_not_contact.as_ref(),
        consent,
        open_complaint: facts.open_complaint,
        contacts,
        time_zone: time_zone.1,
    });
    Checked { customer, decision, time_zone: time_zone.0 }
}
