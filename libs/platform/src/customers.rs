//! Customer references (`CustomerRef`: an id, or identifiers a channel knows) resolved to
//! the current customer through identification over gRPC, a batch at a time: cached
//! answers first (one Redis round trip), then concurrent calls for the rest. Every service
//! that is addressed by customer reference (interaction, customization) resolves here.
//!
//! Looking a customer up is done with the calling service's own identity, so that a caller
//! allowed to record interactions need not read profiles; creating a missing customer
//! acts on identification's data and carries the caller's token (`profiles.write`).

use std::{collections::HashMap, time::Duration};

use futures::StreamExt as _;
use idic_proto::{
    common::v1 as common,
    identification::v1::{self as ident, identification_service_client::IdentificationServiceClient},
};
use sha2::{Digest as _, Sha256};
use tonic::Code;
use tonic_types::StatusExt as _;
use uuid::Uuid;

use crate::{
    ApiError, ApiResult, FieldViolation,
    cache::Cache,
    context,
    redis::Redis,
    runtime::{PeerService, Peers},
    validate::{self, Violations},
};

/// Concurrent calls to identification while resolving a batch.
const CONCURRENT_CALLS: usize = 32;
/// Merges followed from a merged id to its survivor.
const MAX_MERGE_HOPS: usize = 8;
/// Most identifiers in one customer reference.
const MAX_REFERENCE_IDENTIFIERS: usize = 20;
/// How long a resolution is cached.
pub const RESOLUTION_TTL: Duration = Duration::from_secs(300);

/// A validated customer reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// An IDIC customer id.
    Id(Uuid),
    /// Identifiers, tried in order by identification.
    Identifiers(Vec<common::Identifier>),
}

impl Reference {
    /// A customer reference from the wire, violations named relative to the reference.
    pub fn from_proto(reference: Option<common::CustomerRef>) -> ApiResult<Self> {
        use common::customer_ref::Ref;
        match reference.and_then(|r| r.r#ref) {
            None => Err(ApiError::invalid("", "is required: a customer_id or identifiers")),
            Some(Ref::CustomerId(id)) => validate::uuid(&id, "customer_id").map(Reference::Id),
            Some(Ref::Identifiers(common::IdentifierSet { identifiers })) => {
                let mut v = Violations::new();
                if identifiers.is_empty() || identifiers.len() > MAX_REFERENCE_IDENTIFIERS {
                    v.add("identifiers.identifiers", format!("must hold 1 to {MAX_REFERENCE_IDENTIFIERS} identifiers"));
                }
                for (i, identifier) in identifiers.iter().enumerate() {
                    let common::Identifier { kind, value, namespace } = identifier;
                    let path = format!("identifiers.identifiers[{i}]");
                    match common::IdentifierKind::try_from(*kind) {
                        Ok(common::IdentifierKind::Unspecified) | Err(_) => {
                            v.add(format!("{path}.kind"), "must be a known identifier kind")
                        }
                        Ok(_) => {}
                    }
                    v.check(&path, validate::required(value, 1024, "value"));
                    v.check(&path, validate::max_chars(namespace, 128, "namespace"));
                }
                v.finish()?;
                Ok(Reference::Identifiers(identifiers))
            }
        }
    }

    /// The key of its resolution in the cache: the id, or a digest of the identifiers
    /// (no personal data in Redis keys).
    pub fn cache_key(&self) -> String {
        match self {
            Self::Id(id) => id_key(*id),
            Self::Identifiers(identifiers) => {
                let mut hash = Sha256::new();
                for i in identifiers {
                    hash.update(i.kind.to_le_bytes());
                    for part in [&i.namespace, &i.value] {
                        hash.update((part.len() as u64).to_le_bytes());
                        hash.update(part.as_bytes());
                    }
                }
                let digest = hash.finalize();
                let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
                format!("ids:{hex}")
            }
        }
    }
}

/// Resolved customer references, under `{service}:resolved:{reference key}`: an id to its
/// current customer, a set of identifiers to the customer holding them, so that
/// high-volume paths do not call identification per request. Entries expire after
/// [`RESOLUTION_TTL`]; merges and erasures also drop the entries of the ids involved.
#[derive(Debug, Clone)]
pub struct ResolutionCache {
    cache: Cache,
}

impl ResolutionCache {
    /// The cache of `service` in `redis`.
    pub fn new(redis: Redis, service: &str) -> Self {
        Self { cache: Cache::new(redis, &format!("{service}:resolved"), RESOLUTION_TTL) }
    }

    /// The cached customers of `keys`, in order.
    pub async fn get_many(&self, keys: &[&str]) -> Vec<Option<Uuid>> {
        self.cache.get_many(keys).await
    }

    /// Remembers that `key` designates `customer`.
    pub async fn put(&self, key: &str, customer: Uuid) {
        self.cache.put(key, &customer).await;
    }

    /// Forgets the resolutions of these customer ids (after a merge or an erasure).
    pub async fn forget_ids(&self, ids: &[Uuid]) {
        let keys: Vec<String> = ids.iter().map(|id| id_key(*id)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        self.cache.invalidate(&keys).await;
    }
}

/// The cache key of a reference by customer id.
fn id_key(id: Uuid) -> String {
    format!("id:{id}")
}

/// One reference to resolve, and whether a missing customer may be created from it.
#[derive(Debug, Clone)]
pub struct Lookup<'a> {
    /// The reference.
    pub reference: &'a Reference,
    /// Create the customer when the identifiers match nobody (`create_missing_customer`).
    pub create: bool,
}

/// Resolves customer references through identification, with a cache.
#[derive(Debug, Clone)]
pub struct Customers {
    peers: Peers,
    cache: ResolutionCache,
}

type Client = IdentificationServiceClient<crate::client::PeerChannel>;

impl Customers {
    /// Resolution through `peers`' identification, cached in `cache`.
    pub fn new(peers: Peers, cache: ResolutionCache) -> Self {
        Self { peers, cache }
    }

    /// The resolution cache (merges and erasures drop entries from it).
    pub fn cache(&self) -> &ResolutionCache {
        &self.cache
    }

    /// Resolves one reference.
    pub async fn resolve(&self, lookup: Lookup<'_>) -> Result<Uuid, ApiError> {
        self.resolve_many(&[lookup]).await.pop().unwrap_or_else(|| Err(ApiError::NotFound("customer".into())))
    }

    /// Resolves `lookups`, answering in order. Each answer is the current customer, or
    /// NOT_FOUND (unknown, erased), INVALID_ARGUMENT (identification refused an
    /// identifier, the violation named under `customer`), UNAVAILABLE, ...
    pub async fn resolve_many(&self, lookups: &[Lookup<'_>]) -> Vec<Result<Uuid, ApiError>> {
        let keys: Vec<String> = lookups.iter().map(|l| l.reference.cache_key()).collect();
        let mut distinct: HashMap<&str, usize> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            // A reference that may create wins over one that may not.
            let first = *distinct.entry(key.as_str()).or_insert(i);
            if lookups[i].create && !lookups[first].create {
                distinct.insert(key.as_str(), i);
            }
        }
        let distinct: Vec<(&str, usize)> = distinct.into_iter().collect();
        let cache_keys: Vec<&str> = distinct.iter().map(|(k, _)| *k).collect();
        let cached = self.cache.get_many(&cache_keys).await;
        let mut answers: HashMap<&str, Result<Uuid, ApiError>> = HashMap::new();
        let mut misses = Vec::new();
        for ((key, i), hit) in distinct.into_iter().zip(cached) {
            match hit {
                Some(id) => {
                    answers.insert(key, Ok(id));
                }
                None => misses.push((key, i)),
            }
        }
        if !misses.is_empty() {
            let client = match self.peers.channel(PeerService::Identification) {
                Ok(channel) => IdentificationServiceClient::new(channel),
                Err(e) => {
                    tracing::warn!(error = %e, "no channel to identification");
                    for (key, _) in misses {
                        answers.insert(key, Err(ApiError::Unavailable("identification unreachable".into())));
                    }
                    return keys.iter().map(|k| clone_answer(&answers[k.as_str()])).collect();
                }
            };
            // Built eagerly: a stream mapped through a borrowing closure is not Send.
            let calls: Vec<_> = misses
                .into_iter()
                .map(|(key, i)| {
                    let (client, lookup) = (client.clone(), lookups[i].clone());
                    async move { (key, self.resolve_remote(client, &lookup).await) }
                })
                .collect();
            let resolved: Vec<(&str, Result<Uuid, ApiError>)> =
                futures::stream::iter(calls).buffer_unordered(CONCURRENT_CALLS).collect().await;
            for (key, answer) in resolved {
                if let Ok(id) = &answer {
                    self.cache.put(key, *id).await;
                }
                answers.insert(key, answer);
            }
        }
        keys.iter().map(|k| clone_answer(&answers[k.as_str()])).collect()
    }

    async fn resolve_remote(&self, mut client: Client, lookup: &Lookup<'_>) -> Result<Uuid, ApiError> {
        match lookup.reference {
            Reference::Id(id) => self.follow(client, *id).await,
            Reference::Identifiers(identifiers) => {
                let request = ident::LookupCustomerRequest { identifiers: identifiers.clone() };
                let found = context::as_service(async {
                    crate::client::retry_idempotent(self.peers.max_attempts(), || {
                        let (mut client, request) = (client.clone(), request.clone());
                        async move { client.lookup_customer(request).await }
                    })
                    .await
                })
                .await;
                match found {
                    Ok(answer) => customer_id(answer.into_inner().customer.as_ref()),
                    Err(status) if status.code() == Code::NotFound && lookup.create => {
                        let request = ident::ResolveCustomerRequest {
                            customer: Some(ident::Customer { identifiers: identifiers.clone(), ..Default::default() }),
                            provenance: None,
                            request_id: format!("resolve:{}", lookup.reference.cache_key()),
                        };
                        let answer = client.resolve_customer(request).await.map_err(|s| from_status(&s))?;
                        customer_id(answer.into_inner().customer.as_ref())
                    }
                    Err(status) => Err(from_status(&status)),
                }
            }
        }
    }

    /// The current customer of `id`: itself when active, its survivor when merged.
    async fn follow(&self, client: Client, mut id: Uuid) -> Result<Uuid, ApiError> {
        for _ in 0..MAX_MERGE_HOPS {
            let request = ident::GetCustomerRequest { name: format!("customers/{id}") };
            let customer = context::as_service(crate::client::retry_idempotent(self.peers.max_attempts(), || {
                let (mut client, request) = (client.clone(), request.clone());
                async move { client.get_customer(request).await }
            }))
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
            match ident::CustomerState::try_from(customer.state) {
                Ok(ident::CustomerState::Active) => return Ok(id),
                Ok(ident::CustomerState::Merged) => {
                    id = parse_name(&customer.merged_into)
                        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("merged customer without survivor")))?;
                }
                _ => return Err(ApiError::NotFound(format!("customers/{id}"))),
            }
        }
        Err(ApiError::NotFound(format!("customers/{id}")))
    }
}

fn parse_name(name: &str) -> Option<Uuid> {
    name.strip_prefix("customers/").and_then(|id| Uuid::parse_str(id).ok())
}

fn customer_id(customer: Option<&ident::Customer>) -> Result<Uuid, ApiError> {
    customer
        .and_then(|c| parse_name(&c.name))
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("identification answered no customer name")))
}

/// Our answer for a refusal of identification.
fn from_status(status: &tonic::Status) -> ApiError {
    match status.code() {
        Code::NotFound => ApiError::NotFound("customer".into()),
        Code::InvalidArgument => {
            let details = status.get_error_details();
            let violations: Vec<FieldViolation> = details
                .bad_request()
                .map(|b| {
                    b.field_violations
                        .iter()
                        .map(|v| {
                            FieldViolation::new(format!("customer.identifiers.{}", v.field), v.description.clone())
                        })
                        .collect()
                })
                .unwrap_or_default();
            if violations.is_empty() {
                ApiError::invalid("customer", status.message().to_owned())
            } else {
                ApiError::InvalidArgument(violations)
            }
        }
        Code::PermissionDenied => ApiError::PermissionDenied(format!(
            "creating a missing customer needs the profiles.write scope: {}",
            status.message()
        )),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted => {
            ApiError::Unavailable(format!("identification: {}", status.message()))
        }
        _ => ApiError::Internal(anyhow::anyhow!("identification answered {:?}: {}", status.code(), status.message())),
    }
}

fn clone_answer(answer: &Result<Uuid, ApiError>) -> Result<Uuid, ApiError> {
    match answer {
        Ok(id) => Ok(*id),
        Err(e) => Err(match e {
            ApiError::InvalidArgument(v) => ApiError::InvalidArgument(v.clone()),
            ApiError::NotFound(n) => ApiError::NotFound(n.clone()),
            ApiError::PermissionDenied(m) => ApiError::PermissionDenied(m.clone()),
            ApiError::Unavailable(m) => ApiError::Unavailable(m.clone()),
            other => {
                tracing::warn!(error = %other, "resolving a customer reference failed");
                ApiError::Unavailable("customer resolution failed; retry".into())
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_cache_keys_hold_no_personal_data_and_tell_sets_apart() {
        let email = |v: &str| common::Identifier { kind: 1, value: v.into(), namespace: String::new() };
        let a = Reference::Identifiers(vec![email("ada@example.org")]).cache_key();
        let b = Reference::Identifiers(vec![email("bob@example.org")]).cache_key();
        assert_ne!(a, b);
        assert!(!a.contains("ada"));
        assert!(a.starts_with("ids:"));
    }
}
