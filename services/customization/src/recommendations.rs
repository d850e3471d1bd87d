//! The recommender as served: a model held in memory by every replica, built from the
//! feedback log in Postgres (the truth) and kept current by tailing it, so that what one
//! replica's consumer learns from `interaction.recorded` reaches every replica within a
//! second, and a new item has neighbours long before the next retraining.
//!
//! A retraining (job `customization.retrain`) rebuilds the model from scratch in the process
//! that runs it and records a new model version; the other replicas see the version and
//! rebuild with the same settings. Merges and erasures are announced in `customer_changes`:
//! the customers' histories are reloaded from Postgres (aggregate co-occurrence counts,
//! which hold no identity, are corrected at the next retraining).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    domain::recommend::{
        CustomerKey, FeedbackKind, FeedbackWeights, History, Interaction, ItemFacts, ItemId, NeighbourIndex,
        PopularityTable, TrainSettings, product_clusters,
    },
    store::feedback::{self as store, FeedbackRow, ItemFactsRow, ModelVersion},
};

/// How often the tails are polled.
const POLL: Duration = Duration::from_millis(250);
/// How long a missing sequence number is waited for (a transaction still in flight) before it
/// is taken as rolled back.
const GAP_WAIT: Duration = Duration::from_secs(10);
/// Most gaps remembered at once.
const MAX_GAPS: usize = 100_000;
/// Rows read per poll.
const TAIL_BATCH: i64 = 10_000;
/// Popular items kept per group.
const POPULAR_PER_GROUP: usize = 500;
/// Similarity at which a neighbour joins its leader's product cluster.
const CLUSTER_SIMILARITY: f32 = 0.3;
/// Feedback learned from by default: the last two years.
pub const DEFAULT_WINDOW_DAYS: i64 = 730;

/// The feedback kinds of the log, as stored.
pub fn kind_from_code(code: i16) -> Option<FeedbackKind> {
    match code {
        1 => Some(FeedbackKind::View),
        2 => Some(FeedbackKind::Basket),
        3 => Some(FeedbackKind::Purchase),
        4 => Some(FeedbackKind::Negative),
        _ => None,
    }
}

/// The stored code of a feedback kind.
pub fn kind_code(kind: FeedbackKind) -> i16 {
    match kind {
        FeedbackKind::View => 1,
        FeedbackKind::Basket => 2,
        FeedbackKind::Purchase => 3,
        FeedbackKind::Negative => 4,
    }
}

/// A product as the model knows it.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its id.
    pub product_id: String,
    /// Its sku.
    pub sku: String,
    /// Its title, for reasons.
    pub title: String,
    /// Its category paths.
    pub categories: Vec<String>,
}

/// Products by dense index, with their facts and the categories' members.
#[derive(Debug, Clone, Default)]
pub struct Items {
    ids: HashMap<String, ItemId>,
    skus: HashMap<String, ItemId>,
    /// Per index; `None` for a product seen in feedback but not (yet) in the catalog.
    pub info: Vec<Option<Item>>,
    /// Per index, what the recommender needs.
    pub facts: Vec<ItemFacts>,
    /// Every category path and each of its prefixes, to the items in it.
    by_category: HashMap<String, Vec<ItemId>>,
}

impl Items {
    /// The index of a product, when known.
    pub fn get(&self, product_id: &str) -> Option<ItemId> {
        self.ids.get(product_id).copied()
    }

    /// The index of a product by sku, when known.
    pub fn by_sku(&self, sku: &str) -> Option<ItemId> {
        self.skus.get(sku).copied()
    }

    /// The index of a product, assigned on first sight.
    fn intern(&mut self, product_id: &str) -> ItemId {
        if let Some(&id) = self.ids.get(product_id) {
            return id;
        }
        let id = ItemId(self.info.len() as u32);
        self.ids.insert(product_id.to_owned(), id);
        self.info.push(None);
        self.facts.push(ItemFacts { sellable: false, consumable: false, cluster: None });
        id
    }

    /// The product of an index.
    pub fn product(&self, item: ItemId) -> Option<&Item> {
        self.info.get(item.0 as usize).and_then(Option::as_ref)
    }

    /// The items in any of these categories (a path matches itself and its sub-paths).
    pub fn in_categories(&self, categories: &[String]) -> HashSet<ItemId> {
        categories.iter().filter_map(|c| self.by_category.get(c)).flatten().copied().collect()
    }

    /// Applies a catalog row (new product or change).
    fn upsert(&mut self, row: ItemFactsRow) {
        let id = self.intern(&row.product_id);
        let i = id.0 as usize;
        if let Some(old) = &self.info[i] {
            self.skus.remove(&old.sku);
            for path in old.categories.iter().flat_map(|c| prefixes(c)) {
                if let Some(members) = self.by_category.get_mut(path) {
                    members.retain(|m| *m != id);
                }
            }
        }
        for path in row.categories.iter().flat_map(|c| prefixes(c)) {
            self.by_category.entry(path.to_owned()).or_default().push(id);
        }
        // Lifecycle 3 is RETIRED; availability 2 is OUT_OF_STOCK.
        self.facts[i].sellable = row.lifecycle != 3 && row.availability != 2;
        self.facts[i].consumable = row.consumable;
        self.skus.insert(row.sku.clone(), id);
        self.info[i] =
            Some(Item { product_id: row.product_id, sku: row.sku, title: row.title, categories: row.categories });
    }
}

/// A path and each of its `/`-prefixes: "a/b/c", "a/b", "a".
fn prefixes(path: &str) -> impl Iterator<Item = &str> {
    std::iter::once(path).chain(path.match_indices('/').map(|(i, _)| &path[..i]))
}

/// Which appended rows of a table have been applied, in a table whose sequence may leave gaps
/// (rolled-back or conflicting inserts) and may commit out of order (concurrent writers).
#[derive(Debug, Clone, Default)]
pub struct Tail {
    high: i64,
    gaps: BTreeMap<i64, Instant>,
}

impl Tail {
    /// A tail that has applied everything up to `high`.
    pub fn at(high: i64) -> Self {
        Self { high, gaps: BTreeMap::new() }
    }

    /// The highest sequence number applied.
    pub fn high(&self) -> i64 {
        self.high
    }

    /// Whether row `seq` is new (then it counts as applied).
    pub fn accept(&mut self, seq: i64, now: Instant) -> bool {
        if seq > self.high {
            for missing in (self.high + 1)..seq {
                if self.gaps.len() >= MAX_GAPS {
                    break;
                }
                self.gaps.insert(missing, now);
            }
            self.high = seq;
            true
        } else {
            self.gaps.remove(&seq).is_some()
        }
    }

    /// The missing sequence numbers still waited for; forgets those waited for too long.
    pub fn gaps(&mut self, now: Instant) -> Vec<i64> {
        self.gaps.retain(|_, seen| now.duration_since(*seen) < GAP_WAIT);
        self.gaps.keys().copied().collect()
    }
}

/// Settings of one build of the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildSettings {
    /// Feedback since this time is learned from.
    pub window_start: DateTime<Utc>,
    /// Weights and neighbour count.
    pub train: TrainSettings,
}

impl BuildSettings {
    /// The default settings as of `now`.
    pub fn default_at(now: DateTime<Utc>) -> Self {
        Self { window_start: now - chrono::Duration::days(DEFAULT_WINDOW_DAYS), train: TrainSettings::default() }
    }

    fn from_version(v: &ModelVersion) -> Self {
        let mut train = TrainSettings::default();
        train.weights.half_life_days = v.half_life_days;
        train.neighbours_per_item = usize::try_from(v.neighbours_per_item).unwrap_or(100);
        Self { window_start: v.window_start, train }
    }
}

/// The model a replica serves from.
#[derive(Debug, Default)]
pub struct Model {
    /// The catalog as the model knows it.
    pub items: Items,
    /// Every item's neighbours.
    pub index: NeighbourIndex,
    /// Popular items overall.
    pub popularity: PopularityTable,
    /// Each customer's history.
    pub histories: HashMap<Uuid, History>,
    /// Customers who withdrew profiling consent: served like guests.
    pub no_profiling: HashSet<Uuid>,
    /// The feedback weights in force.
    pub weights: FeedbackWeights,
    /// The retraining this model was built for (0: built at start without one).
    pub version: i64,
    /// When the neighbour lists were last rebuilt.
    pub model_time: Option<DateTime<Utc>>,
    /// Interactions learned from at the build.
    pub trained_on: u64,
    feedback: Tail,
    changes: Tail,
    consent: Tail,
    catalog_since: Option<DateTime<Utc>>,
}

/// What a build produced, for the retraining job's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildSummary {
    /// Interactions learned from.
    pub interactions: u64,
    /// Items known.
    pub items: usize,
    /// Customers with a history.
    pub customers: usize,
}

impl Model {
    /// Builds a model from the tables as they are now.
    pub async fn build(pool: &PgPool, settings: BuildSettings, version: i64) -> anyhow::Result<Self> {
        // Tails start where the snapshot ends; changes and consent read first, so one landing
        // during the scan is applied again (idempotently) rather than missed.
        let changes = Tail::at(store::last_change_seq(pool).await?);
        let mut model = Model { changes, version, weights: settings.train.weights, ..Model::default() };
        for row in store::item_facts_since(pool, DateTime::<Utc>::UNIX_EPOCH).await? {
            model.catalog_since = Some(model.catalog_since.map_or(row.update_time, |t| t.max(row.update_time)));
            model.items.upsert(row);
        }
        let mut consent_high = 0;
        loop {
            let rows = store::consent_after(pool, consent_high).await?;
            model.apply_consent(&rows, Instant::now());
            consent_high = model.consent.high();
            if rows.len() < TAIL_BATCH as usize {
                break;
            }
        }
        let until = store::last_feedback_seq(pool).await?;
        let mut customers: HashMap<Uuid, CustomerKey> = HashMap::new();
        let mut log: Vec<Interaction> = Vec::new();
        let items = &mut model.items;
        let total = store::scan_feedback(pool, settings.window_start, until, |rows| {
            for r in rows {
                let Some(kind) = kind_from_code(r.kind) else { continue };
                let next = CustomerKey(customers.len() as u32);
                let customer = *customers.entry(r.customer_id).or_insert(next);
                log.push(Interaction {
                    customer,
                    item: items.intern(&r.product_id),
                    kind,
                    at: r.occur_time.timestamp(),
                });
            }
        })
        .await?;
        let now = Utc::now();
        let n_items = model.items.info.len();
        let train = settings.train;
        let built = tokio::task::spawn_blocking(move || {
            let index = NeighbourIndex::train(&log, n_items, now.timestamp(), &train);
            let popularity =
                PopularityTable::train(&log, now.timestamp(), &train.weights, |_| Vec::new(), POPULAR_PER_GROUP);
            let mut by_customer: Vec<Vec<Interaction>> = vec![Vec::new(); customers.len()];
            for x in &log {
                by_customer[x.customer.0 as usize].push(*x);
            }
            let histories: HashMap<Uuid, History> = customers
                .into_iter()
                .map(|(id, key)| {
                    (id, History::from_interactions(&by_customer[key.0 as usize], now.timestamp(), &train.weights))
                })
                .collect();
            let clusters = product_clusters(&index, CLUSTER_SIMILARITY);
            (index, popularity, histories, clusters)
        })
        .await?;
        let (index, popularity, histories, clusters) = built;
        for (facts, cluster) in model.items.facts.iter_mut().zip(clusters) {
            facts.cluster = cluster;
        }
        model.index = index;
        model.popularity = popularity;
        model.histories = histories;
        model.feedback = Tail::at(until);
        model.model_time = Some(now);
        model.trained_on = total;
        Ok(model)
    }

    /// What the build learned from.
    pub fn summary(&self) -> BuildSummary {
        BuildSummary { interactions: self.trained_on, items: self.items.info.len(), customers: self.histories.len() }
    }

    /// Applies one feedback row (one already applied changes nothing: weights are maxima).
    fn observe(&mut self, row: &FeedbackRow) {
        let Some(kind) = kind_from_code(row.kind) else { return };
        let item = self.items.intern(&row.product_id);
        let now = Utc::now().timestamp();
        let event = Interaction { customer: CustomerKey(0), item, kind, at: row.occur_time.timestamp() };
        let history = self.histories.entry(row.customer_id).or_default();
        // A second delivery of a row changes no weight in the history (weights are maxima),
        // so only a history that changed counts for popularity.
        let before = history.weight(item);
        self.index.observe(history, &event, now, &self.weights);
        history.apply(&event, now, &self.weights);
        if history.weight(item) > before {
            self.popularity.observe(&[], &event, now, &self.weights, POPULAR_PER_GROUP);
        }
    }

    fn apply_consent(&mut self, rows: &[(i64, Uuid, bool)], now: Instant) {
        for &(seq, customer, withdrawn) in rows {
            self.consent.accept(seq, now);
            if withdrawn {
                self.no_profiling.insert(customer);
            } else {
                self.no_profiling.remove(&customer);
            }
        }
    }

    /// Replaces the histories of `customers` with what the log holds for them now.
    fn reload_histories(&mut self, customers: &[Uuid], rows: &[FeedbackRow]) {
        let now = Utc::now().timestamp();
        for c in customers {
            self.histories.remove(c);
        }
        let wanted: HashSet<&Uuid> = customers.iter().collect();
        for r in rows.iter().filter(|r| wanted.contains(&r.customer_id)) {
            let Some(kind) = kind_from_code(r.kind) else { continue };
            let item = self.items.intern(&r.product_id);
            let event = Interaction { customer: CustomerKey(0), item, kind, at: r.occur_time.timestamp() };
            self.histories.entry(r.customer_id).or_default().apply(&event, now, &self.weights);
        }
    }
}

/// The served model, shared by the API and the tailer.
#[derive(Debug, Clone)]
pub struct Recommendations {
    pool: PgPool,
    model: Arc<RwLock<Model>>,
    /// Set while a rebuild runs, so versions seen meanwhile do not start another.
    rebuilding: Arc<AtomicBool>,
}

impl Recommendations {
    /// Builds the model from the latest retraining's settings (or the defaults).
    pub async fn start(pool: PgPool) -> anyhow::Result<Self> {
        let (settings, version) = match store::latest_model(&pool).await? {
            Some(v) => (BuildSettings::from_version(&v), v.version),
            None => (BuildSettings::default_at(Utc::now()), 0),
        };
        let model = Model::build(&pool, settings, version).await?;
        Ok(Self { pool, model: Arc::new(RwLock::new(model)), rebuilding: Arc::default() })
    }

    /// Reads the model. Hold the guard briefly and never across an await: the tailer waits
    /// for it to apply updates.
    pub fn read(&self) -> RwLockReadGuard<'_, Model> {
        self.model.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Model> {
        self.model.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Rebuilds the model with `settings` and serves it; the retraining job's work. The old
    /// model serves (and follows the log) until the new one has caught up.
    pub async fn rebuild(&self, settings: BuildSettings, version: i64) -> anyhow::Result<BuildSummary> {
        let new = RwLock::new(Model::build(&self.pool, settings, version).await?);
        catch_up(&self.pool, &new).await?;
        let model = new.into_inner().unwrap_or_else(PoisonError::into_inner);
        let summary = model.summary();
        *self.write() = model;
        Ok(summary)
    }

    /// Keeps the model current until `shutdown`: new feedback, changed customers, consent and
    /// catalog changes, and retrainings recorded by other replicas.
    pub async fn follow(self, shutdown: CancellationToken) {
        let mut last_error: Option<Instant> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(POLL) => {}
            }
            if let Err(e) = self.poll_once().await {
                // One line per minute at most while Postgres is away.
                if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(error = %e, "recommendations: catching up with the feedback log failed; retrying");
                    last_error = Some(Instant::now());
                }
            }
        }
    }

    /// One round of catching up; also starts a rebuild when another replica retrained.
    pub async fn poll_once(&self) -> anyhow::Result<()> {
        let version = self.read().version;
        if let Some(latest) = store::latest_model(&self.pool).await?
            && latest.version > version
            && !self.rebuilding.swap(true, Ordering::AcqRel)
        {
            let me = self.clone();
            tokio::spawn(async move {
                if let Err(e) = me.rebuild(BuildSettings::from_version(&latest), latest.version).await {
                    tracing::warn!(error = %e, version = latest.version, "recommendations: rebuilding failed");
                }
                me.rebuilding.store(false, Ordering::Release);
            });
        }
        catch_up(&self.pool, &self.model).await
    }

    /// The retraining job's work: rebuilds the model (waiting for a rebuild already running),
    /// records the new model version and serves the model as that version, so that this
    /// replica does not rebuild it again when it sees the version.
    pub async fn retrain(&self, settings: BuildSettings, job: Uuid) -> anyhow::Result<(i64, BuildSummary)> {
        while self.rebuilding.swap(true, Ordering::AcqRel) {
            tokio::time::sleep(POLL).await;
        }
        let result = async {
            let summary = self.rebuild(settings, 0).await?;
            let version = store::insert_model(
                &self.pool,
                job,
                settings.window_start,
                settings.train.weights.half_life_days,
                i32::try_from(settings.train.neighbours_per_item).unwrap_or(i32::MAX),
                i64::try_from(summary.interactions).unwrap_or(i64::MAX),
                i32::try_from(summary.items).unwrap_or(i32::MAX),
                Utc::now(),
            )
            .await?;
            let mut m = self.write();
            m.version = m.version.max(version);
            Ok((version, summary))
        }
        .await;
        self.rebuilding.store(false, Ordering::Release);
        result
    }
}

/// Applies to `model` everything the tables gained since it was built or last caught up:
/// rows are read without the lock, then applied under it in one short write.
async fn catch_up(pool: &PgPool, model: &RwLock<Model>) -> anyhow::Result<()> {
    let (high, gaps, changes_high, consent_high, catalog_since) = {
        let mut m = model.write().unwrap_or_else(PoisonError::into_inner);
        let gaps = m.feedback.gaps(Instant::now());
        (m.feedback.high(), gaps, m.changes.high(), m.consent.high(), m.catalog_since)
    };
    // Re-read a little before the last catalog change seen: a transaction that committed late
    // with an earlier timestamp is not missed (applying a row twice changes nothing).
    let since = catalog_since.map_or(DateTime::<Utc>::UNIX_EPOCH, |t| t - chrono::Duration::seconds(5));
    let catalog = store::item_facts_since(pool, since).await?;
    let consent = store::consent_after(pool, consent_high).await?;
    let mut feedback = store::feedback_after(pool, high, TAIL_BATCH).await?;
    if !gaps.is_empty() {
        feedback.extend(store::feedback_at(pool, &gaps).await?);
    }
    let changes = store::changes_after(pool, changes_high).await?;
    let changed: Vec<Uuid> = changes.iter().map(|(_, c)| *c).collect();
    let reloaded = if changed.is_empty() { Vec::new() } else { store::feedback_of(pool, &changed).await? };

    let mut m = model.write().unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    for row in catalog {
        m.catalog_since = Some(m.catalog_since.map_or(row.update_time, |t| t.max(row.update_time)));
        m.items.upsert(row);
    }
    m.apply_consent(&consent, now);
    for row in &feedback {
        if m.feedback.accept(row.seq, now) {
            m.observe(row);
        }
    }
    let fresh: Vec<Uuid> = changes.iter().filter(|(seq, _)| m.changes.accept(*seq, now)).map(|(_, c)| *c).collect();
    if !fresh.is_empty() {
        m.reload_histories(&fresh, &reloaded);
    }
    Ok(())
}

/// How long answers of Recommend are kept for attributing feedback.
const ANSWERS_KEPT: chrono::Duration = chrono::Duration::days(30);
/// Answers waiting to be written at most.
const ANSWERS_QUEUED: usize = 10_000;

enum AnswerMessage {
    Answer(Uuid, Option<Uuid>, Vec<String>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The answers of Recommend, written to Postgres in batches off the request path: an answer
/// is a record for attributing feedback, not a write the caller waits for.
#[derive(Debug, Clone)]
pub struct AnswerLog {
    queue: tokio::sync::mpsc::Sender<AnswerMessage>,
}

impl std::fmt::Debug for AnswerMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Answer(id, ..) => write!(f, "Answer({id})"),
            Self::Flush(_) => write!(f, "Flush"),
        }
    }
}

impl AnswerLog {
    /// Starts the writer; it stops with `shutdown`, after writing what is queued.
    pub fn start(pool: PgPool, shutdown: CancellationToken) -> Self {
        let (queue, mut rx) = tokio::sync::mpsc::channel::<AnswerMessage>(ANSWERS_QUEUED);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut waiting = Vec::new();
            let mut last_prune = Instant::now();
            loop {
                let message = tokio::select! {
                    m = rx.recv() => m,
                    () = shutdown.cancelled() => None,
                };
                match message {
                    Some(AnswerMessage::Answer(id, customer, products)) => batch.push((id, customer, products)),
                    Some(AnswerMessage::Flush(done)) => waiting.push(done),
                    None => {}
                }
                while batch.len() < 500 {
                    match rx.try_recv() {
                        Ok(AnswerMessage::Answer(id, customer, products)) => batch.push((id, customer, products)),
                        Ok(AnswerMessage::Flush(done)) => waiting.push(done),
                        Err(_) => break,
                    }
                }
                if let Err(e) = store::insert_recommendations(&pool, &batch).await {
                    tracing::warn!(error = %e, answers = batch.len(), "recommendations: answers not recorded");
                }
                batch.clear();
                for done in waiting.drain(..) {
                    let _ = done.send(());
                }
                if last_prune.elapsed() > Duration::from_secs(3600) {
                    last_prune = Instant::now();
                    if let Err(e) = store::prune_recommendations(&pool, Utc::now() - ANSWERS_KEPT).await {
                        tracing::warn!(error = %e, "recommendations: old answers not pruned");
                    }
                }
                if message_closed(&rx, &shutdown) {
                    return;
                }
            }
        });
        Self { queue }
    }

    /// Queues an answer; dropped (with a warning) when the writer is far behind.
    pub fn remember(&self, id: Uuid, customer: Option<Uuid>, products: Vec<String>) {
        if self.queue.try_send(AnswerMessage::Answer(id, customer, products)).is_err() {
            tracing::warn!(%id, "recommendations: answer log full; answer not recorded");
        }
    }

    /// Waits until every answer queued before now is written.
    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.queue.send(AnswerMessage::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

fn message_closed(rx: &tokio::sync::mpsc::Receiver<AnswerMessage>, shutdown: &CancellationToken) -> bool {
    rx.is_closed() || (shutdown.is_cancelled() && rx.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_applies_each_row_once_and_waits_for_gaps() {
        let now = Instant::now();
        let mut tail = Tail::at(10);
        assert!(!tail.accept(9, now), "below the start: applied by the snapshot");
        assert!(tail.accept(11, now));
        assert!(!tail.accept(11, now), "a row read twice is applied once");
        assert!(tail.accept(14, now));
        assert_eq!(tail.gaps(now), vec![12, 13], "rows still in flight are waited for");
        assert!(tail.accept(13, now), "a late commit is applied");
        assert_eq!(tail.gaps(now), vec![12]);
        assert!(tail.gaps(now + GAP_WAIT).is_empty(), "a gap waited for too long is given up");
        assert!(!tail.accept(12, now + GAP_WAIT));
    }

    #[test]
    fn category_prefixes_cover_every_level() {
        assert_eq!(
            prefixes("apparel/jeans/slim").collect::<Vec<_>>(),
            vec!["apparel/jeans/slim", "apparel", "apparel/jeans"]
        );
        assert_eq!(prefixes("books").collect::<Vec<_>>(), vec!["books"]);
    }
}
