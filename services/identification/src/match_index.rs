//! The matcher of the running service: every active person's match record in
//! memory, loaded at start, kept current on every write (this process's own writes
//! at once; other replicas' through Postgres notifications), and the model fitted to
//! the loaded file.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use idic_platform::ApiResult;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::CustomerId;
use crate::domain::matching::blocking::{Population, Slot};
use crate::domain::matching::engine::{Matcher, Scored};
use crate::domain::matching::model::{Evidence, Fit};
use crate::domain::matching::record::{MatchRecord, Subject};
use crate::store::Store;

/// Channel on which the schema announces customers whose match data changed.
pub const CHANGES_CHANNEL: &str = "identification_subjects";

/// Customers loaded per query at start.
const LOAD_PAGE: i64 = 20_000;

/// EM iterations per training set when fitting.
const FIT_ITERATIONS: usize = 200;

/// The in-memory matcher of the service.
#[derive(Debug, Clone)]
pub struct MatchIndex {
    state: Arc<RwLock<State>>,
    store: Store,
}

#[derive(Debug)]
struct State {
    matcher: Matcher,
    slot_of: HashMap<Uuid, Slot>,
    customer_of: Vec<Uuid>,
}

/// The best existing customer for a contact, scored.
#[derive(Debug, Clone)]
pub struct BestMatch {
    /// The customer.
    pub customer: CustomerId,
    /// Match probability, 0–1.
    pub probability: f64,
    /// Total weight in bits.
    pub weight: f64,
    /// Per-field evidence.
    pub evidence: Vec<Evidence>,
}

impl MatchIndex {
    /// Loads every active person from the store and fits the model to them.
    pub async fn load(store: Store) -> ApiResult<(Self, Option<Fit>)> {
        let mut state =
            State { matcher: Matcher::new(Population::new()), slot_of: HashMap::new(), customer_of: Vec::new() };
        let mut after = None;
        loop {
            let page = store.match_subjects(after, LOAD_PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(*last);
            for (id, subject) in &page {
                state.put(id.0, subject);
            }
        }
        let (state, fit) = tokio::task::spawn_blocking(move || {
            let fit = state.matcher.fit(FIT_ITERATIONS);
            (state, fit)
        })
        .await
        .map_err(|e| anyhow::anyhow!("fitting the match model: {e}"))?;
        Ok((Self { state: Arc::new(RwLock::new(state)), store }, fit))
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.read().matcher.population.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The best-scoring active customer for `subject`, if any candidate was found.
    pub fn best_match(&self, subject: &Subject) -> Option<BestMatch> {
        let query = MatchRecord::new(subject);
        if query.is_empty() {
            return None;
        }
        let state = self.read();
        let best: Scored = state.matcher.best_match(&query, |_| false)?;
        let customer = CustomerId(*state.customer_of.get(best.slot as usize)?);
        Some(BestMatch {
            customer,
            probability: best.probability(),
            weight: f64::from(best.weight),
            evidence: state.matcher.evidence(&best.comparison),
        })
    }

    /// Reloads the match data of `ids` from the store (an inactive or absent customer
    /// leaves the index).
    pub async fn refresh(&self, ids: &[CustomerId]) -> ApiResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let subjects = self.store.match_subjects_of(ids).await?;
        let mut state = self.write();
        for id in ids {
            match subjects.iter().find(|(s, _)| s == id) {
                Some((_, subject)) => state.put(id.0, subject),
                None => state.drop_customer(id.0),
            }
        }
        Ok(())
    }

    /// Follows the schema's change notifications until `shutdown`, refreshing the
    /// customers they name (in batches), so writes by other replicas are seen.
    /// After a lost connection everything is reloaded, since notifications may
    /// have been missed.
    pub async fn follow_changes(self, pool: sqlx::PgPool, shutdown: CancellationToken) {
        loop {
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                result = self.listen(&pool, &shutdown) => result,
            };
            if let Err(error) = result {
                tracing::warn!(%error, "match index lost its change feed; reloading");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if let Err(error) = self.reload().await {
                tracing::warn!(%error, "match index reload failed");
            }
        }
    }

    async fn listen(&self, pool: &sqlx::PgPool, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        loop {
            // try_recv answers None when the connection dropped: notifications may be lost.
            let first = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                n = listener.try_recv() => n?.ok_or_else(|| anyhow::anyhow!("change feed connection lost"))?,
            };
            let mut ids = vec![first.payload().to_owned()];
            // Gather what else arrives within a moment: one query refreshes them all.
            while ids.len() < 1_000 {
                match tokio::time::timeout(Duration::from_millis(20), listener.try_recv()).await {
                    Ok(Ok(Some(next))) => ids.push(next.payload().to_owned()),
                    Ok(Ok(None)) => anyhow::bail!("change feed connection lost"),
                    Ok(Err(error)) => return Err(error.into()),
                    Err(_quiet) => break,
                }
            }
            let ids: Vec<CustomerId> = ids.iter().filter_map(|s| s.parse().ok()).map(CustomerId).collect();
            self.refresh(&ids).await?;
        }
    }

    /// Replaces the whole index with a fresh load (after missed notifications).
    async fn reload(&self) -> ApiResult<()> {
        let (fresh, _) = Self::load(self.store.clone()).await?;
        let fresh = Arc::try_unwrap(fresh.state).map_err(|_| anyhow::anyhow!("fresh index shared"))?;
        let fresh = fresh.into_inner().map_err(|_| anyhow::anyhow!("fresh index poisoned"))?;
        *self.write() = fresh;
        Ok(())
    }

    /// Refits the model to the records held now; answers the fit (None when too few).
    pub async fn refit(&self) -> ApiResult<Option<Fit>> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.matcher.fit(FIT_ITERATIONS)
        })
        .await
        .map_err(|e| anyhow::anyhow!("fitting the match model: {e}").into())
    }

    /// Runs `f` over the matcher and the slot → customer map (for batch work).
    pub fn with_matcher<T>(&self, f: impl FnOnce(&Matcher, &[Uuid]) -> T) -> T {
        let state = self.read();
        f(&state.matcher, &state.customer_of)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (updates are small steps).
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    fn put(&mut self, id: Uuid, subject: &Subject) {
        self.drop_customer(id);
        let record = MatchRecord::new(subject);
        if record.is_empty() {
            return;
        }
        let slot = self.matcher.population.insert(record);
        if self.customer_of.len() <= slot as usize {
            self.customer_of.resize(slot as usize + 1, Uuid::nil());
        }
        self.customer_of[slot as usize] = id;
        self.slot_of.insert(id, slot);
    }

    fn drop_customer(&mut self, id: Uuid) {
        if let Some(slot) = self.slot_of.remove(&id) {
            self.matcher.population.remove(slot);
            self.customer_of[slot as usize] = Uuid::nil();
        }
    }
}
