//! Segment membership kept current: the full materialisation of one segment (a job, run
//! when a segment is created or its rule changes), the re-evaluation of every segment for
//! customers whose metrics changed ([`Memberships::refresh_customers`], called by the value
//! side after an interaction event or a rescoring), previews, and the `entered`/`exited`
//! events and cache invalidations that go with every change.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, NaiveDate, Utc};
use idic_platform::{ApiResult, cache::Cache, events, jobs::Jobs, jobs::timestamp, redis::Redis};
use idic_proto::segmentation::v1::{self as pb, MembershipChange, MembershipChangeReason};
use prost::Message as _;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    domain::{
        rng::SplitMix64,
        rules::{CustomerMetrics, Rule, Subject},
    },
    store::segments::{self as store, MembershipRow, MetricsRecord, SegmentRow},
};

/// Stream of membership changes (published).
pub const MEMBERSHIP_CHANGED: &str = "segment.membership_changed";
/// Job kind of a segment's materialisation.
pub const MATERIALIZE_JOB: &str = "segmentation.materialize_segment";
/// Customers read, evaluated and written per transaction by a materialisation.
const PAGE: i64 = 5000;
/// How long a customer's segment list stays cached; every change invalidates it sooner.
const CUSTOMER_SEGMENTS_TTL: Duration = Duration::from_secs(600);

/// MembershipState numbers as stored.
pub mod state {
    /// Being computed.
    pub const PENDING: i16 = 1;
    /// Up to date.
    pub const CURRENT: i16 = 2;
    /// The last materialisation failed.
    pub const FAILED: i16 = 3;
}

/// Parsed rules by (segment id, rule version).
type RuleCache = Arc<Mutex<HashMap<(String, i64), Arc<Rule>>>>;

/// Keeps segment memberships, their events and the customer → segments cache.
#[derive(Debug, Clone)]
pub struct Memberships {
    pool: PgPool,
    jobs: Jobs,
    /// `segmentation:customer_segments:{customer}`: the customer's memberships.
    cache: Cache,
    /// Parsed rules, so that an event does not re-parse every segment's rule.
    rules: RuleCache,
}

/// What a preview found.
#[derive(Debug, Clone)]
pub struct Preview {
    /// Customers matched.
    pub matched: i64,
    /// Customers evaluated.
    pub evaluated: i64,
    /// Sum of the matched customers' CLV (major units).
    pub matched_clv: f64,
    /// Matched customers per tier number (0 = not graded).
    pub tiers: HashMap<i32, i64>,
    /// A uniform sample of matched customers.
    pub sample: Vec<(Uuid, CustomerMetrics)>,
    /// The newest metric update read.
    pub evaluate_time: Option<DateTime<Utc>>,
}

/// Today, in the service's time zone (UTC).
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

impl Memberships {
    /// Memberships over the service's schema, jobs and Redis.
    pub fn new(pool: PgPool, jobs: Jobs, redis: Redis) -> Self {
        let cache = Cache::new(redis, "segmentation:customer_segments", CUSTOMER_SEGMENTS_TTL);
        Self { pool, jobs, cache, rules: Arc::default() }
    }

    /// The parsed rule of a segment version (cached; `None` if it no longer parses, which a
    /// stored rule only does after a language change).
    pub fn rule(&self, segment: &SegmentRow) -> Option<Arc<Rule>> {
        let key = (segment.segment_id.clone(), segment.rule_version);
        if let Ok(rules) = self.rules.lock()
            && let Some(r) = rules.get(&key)
        {
            return Some(r.clone());
        }
        let rule = Arc::new(Rule::parse(&segment.rule).ok()?);
        if let Ok(mut rules) = self.rules.lock() {
            rules.retain(|(id, _), _| id != &segment.segment_id);
            rules.insert(key, rule.clone());
        }
        Some(rule)
    }

    /// Exchange rates to the reporting currency, as the value side applies them.
    async fn rates(&self) -> serde_json::Value {
        match crate::events::live_settings(&self.pool).await {
            Ok(live) => live.rates,
            Err(e) => {
                tracing::warn!(error = %e, "segment evaluation: no value settings; amounts unconverted");
                serde_json::json!({})
            }
        }
    }

    /// Queues the materialisation of the segment's current rule version as a job and runs it
    /// in the background; returns the job id.
    pub async fn start_materialization(
        &self,
        segment: &SegmentRow,
        reason: MembershipChangeReason,
        caller: &str,
    ) -> ApiResult<Uuid> {
        let params = serde_json::json!({
            "segment": format!("segments/{}", segment.segment_id),
            "rule_version": segment.rule_version,
        });
        let job = self.jobs.create(MATERIALIZE_JOB, caller, params).await?;
        store::set_membership_job(&self.pool, &segment.segment_id, segment.rule_version, job).await?;
        let this = self.clone();
        let (id, version) = (segment.segment_id.clone(), segment.rule_version);
        tokio::spawn(async move { this.run_materialization(job, id, version, reason).await });
        Ok(job)
    }

    /// Re-evaluates, every `every`, the segments whose rules depend on the date
    /// (`days_since_purchase > 60` becomes true without any event), until `shutdown`.
    pub async fn sweep_periodically(self, every: Duration, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.sweep_time_dependent().await {
                tracing::warn!(error = %e, "sweep of time-dependent segments failed; retrying at the next one");
            }
        }
    }

    /// One sweep: re-materialises every CURRENT segment whose rule depends on the date.
    pub async fn sweep_time_dependent(&self) -> anyhow::Result<()> {
        for segment in store::all_segments(&self.pool).await? {
            let timed = self.rule(&segment).is_some_and(|r| r.depends_on_time());
            if timed && segment.membership_state == state::CURRENT {
                let reason = MembershipChangeReason::CustomerUpdated;
                self.materialize(None, &segment.segment_id, segment.rule_version, reason).await?;
            }
        }
        Ok(())
    }

    async fn run_materialization(self, job: Uuid, segment_id: String, version: i64, reason: MembershipChangeReason) {
        let _ = self.jobs.start(job, 0).await;
        match self.materialize(Some(job), &segment_id, version, reason).await {
            Ok((entered, exited)) => {
                let current = store::finish_membership(&self.pool, &segment_id, version, state::CURRENT).await;
                let result =
                    serde_json::json!({ "entered": entered, "exited": exited, "current": current.unwrap_or(false) });
                let _ = self.jobs.succeed(job, result).await;
            }
            Err(e) => {
                tracing::warn!(segment = %segment_id, error = %e, "segment materialisation failed");
                let _ = store::finish_membership(&self.pool, &segment_id, version, state::FAILED).await;
                let _ = self.jobs.fail(job, "materialisation failed; see the service log").await;
            }
        }
    }

    /// Evaluates the segment's rule over every customer and writes the difference, page by
    /// page. Returns the numbers of customers who entered and exited.
    async fn materialize(
        &self,
        job: Option<Uuid>,
        segment_id: &str,
        version: i64,
        reason: MembershipChangeReason,
    ) -> anyhow::Result<(usize, usize)> {
        let segment = store::segment(&self.pool, segment_id)
            .await?
            .filter(|s| s.rule_version == version)
            .ok_or_else(|| anyhow::anyhow!("segment {segment_id} changed before its materialisation"))?;
        let rule = self.rule(&segment).ok_or_else(|| anyhow::anyhow!("segment {segment_id}: stored rule invalid"))?;
        let rates = self.rates().await;
        let today = today();
        let (mut entered, mut exited, mut done) = (0, 0, 0i64);
        let mut after = None;
        loop {
            let page = store::metrics_page(&self.pool, after, PAGE, &rates).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.customer_id);
            let ids: Vec<Uuid> = page.iter().map(|r| r.customer_id).collect();
            let matched: Vec<Uuid> = page
                .iter()
                .filter(|r| rule.matches(&Subject { metrics: &r.metrics, today }))
                .map(|r| r.customer_id)
                .collect();
            let current = store::members_among(&self.pool, segment_id, &ids).await?;
            let enter: Vec<Uuid> = matched.iter().filter(|c| !current.contains(c)).copied().collect();
            let exit: Vec<Uuid> = current.iter().filter(|c| !matched.contains(c)).copied().collect();
            let (e, x) = self.apply(segment_id, version, &enter, &exit, reason).await?;
            entered += e;
            exited += x;
            done += page.len() as i64;
            if let Some(job) = job
                && !self.jobs.progress(job, done, done).await.unwrap_or(true)
            {
                anyhow::bail!("job {job} was cancelled");
            }
        }
        let mut tx = self.pool.begin().await?;
        if store::rule_version(&mut tx, segment_id).await? == Some(version) {
            let vanished = store::remove_vanished_members(&mut tx, segment_id).await?;
            self.enqueue(&mut tx, segment_id, version, &[], &vanished, reason).await?;
            tx.commit().await?;
            self.invalidate(&vanished).await;
            exited += vanished.len();
        }
        Ok((entered, exited))
    }

    /// Writes one segment's entries and exits with their events in one transaction, unless
    /// the rule changed meanwhile. Returns how many actually entered and exited.
    async fn apply(
        &self,
        segment_id: &str,
        version: i64,
        enter: &[Uuid],
        exit: &[Uuid],
        reason: MembershipChangeReason,
    ) -> anyhow::Result<(usize, usize)> {
        if enter.is_empty() && exit.is_empty() {
            return Ok((0, 0));
        }
        let mut tx = self.pool.begin().await?;
        if store::rule_version(&mut tx, segment_id).await? != Some(version) {
            return Ok((0, 0));
        }
        let added = store::add_members(&mut tx, segment_id, enter).await?;
        let removed = store::remove_members(&mut tx, segment_id, exit).await?;
        self.enqueue(&mut tx, segment_id, version, &added, &removed, reason).await?;
        tx.commit().await?;
        self.invalidate(&added).await;
        self.invalidate(&removed).await;
        Ok((added.len(), removed.len()))
    }

    /// Writes the `segment.membership_changed` events of a change to the outbox.
    async fn enqueue(
        &self,
        tx: &mut sqlx::PgConnection,
        segment_id: &str,
        version: i64,
        entered: &[Uuid],
        exited: &[Uuid],
        reason: MembershipChangeReason,
    ) -> sqlx::Result<()> {
        let n = entered.len() + exited.len();
        if n == 0 {
            return Ok(());
        }
        let sequences = store::next_sequences(tx, n).await?;
        let now = timestamp(Utc::now());
        let changes = entered
            .iter()
            .map(|c| (c, MembershipChange::Entered))
            .chain(exited.iter().map(|c| (c, MembershipChange::Exited)));
        let payloads: Vec<(&str, Vec<u8>)> = changes
            .zip(sequences)
            .map(|((customer, change), sequence)| {
                let event = pb::SegmentMembershipChanged {
                    event_id: Uuid::new_v4().to_string(),
                    segment: format!("segments/{segment_id}"),
                    customer_id: customer.to_string(),
                    change: change as i32,
                    reason: reason as i32,
                    rule_version: version,
                    sequence,
                    time: Some(now),
                };
                (MEMBERSHIP_CHANGED, event.encode_to_vec())
            })
            .collect();
        events::enqueue_many(tx, &payloads).await
    }

    /// Exits every member of a segment being deleted (inside the caller's transaction).
    pub async fn delete_in(&self, tx: &mut sqlx::PgConnection, segment: &SegmentRow) -> sqlx::Result<Vec<Uuid>> {
        let members = store::delete_segment(tx, &segment.segment_id).await?;
        let reason = MembershipChangeReason::SegmentDeleted;
        self.enqueue(tx, &segment.segment_id, segment.rule_version, &[], &members, reason).await?;
        Ok(members)
    }

    /// Removes every membership of erased `customers` inside the erasure's transaction, with
    /// an `exited` event (reason CUSTOMER_ERASED) for each; invalidate their cache entries
    /// after the commit.
    pub async fn erase_in(&self, tx: &mut sqlx::PgConnection, customers: &[Uuid]) -> sqlx::Result<()> {
        let removed = store::erase_memberships(tx, customers).await?;
        let mut start = 0;
        while start < removed.len() {
            let (segment, version, _) = &removed[start];
            let end = removed[start..].iter().position(|r| &r.0 != segment).map_or(removed.len(), |n| start + n);
            let exited: Vec<Uuid> = removed[start..end].iter().map(|r| r.2).collect();
            self.enqueue(tx, segment, *version, &[], &exited, MembershipChangeReason::CustomerErased).await?;
            start = end;
        }
        Ok(())
    }

    /// Re-evaluates every segment for every customer, page by page (after a rescoring
    /// re-graded, re-scored or re-clustered the base).
    pub async fn refresh_all(&self, reason: MembershipChangeReason) -> anyhow::Result<()> {
        let mut after = None;
        loop {
            let ids = store::customer_ids_page(&self.pool, after, PAGE).await?;
            let Some(last) = ids.last() else { return Ok(()) };
            after = Some(*last);
            self.refresh_customers(&ids, reason).await?;
        }
    }

    /// Forgets the cached segment lists of `customers` (after a commit that changed them).
    pub async fn invalidate(&self, customers: &[Uuid]) {
        if customers.is_empty() {
            return;
        }
        let ids: Vec<String> = customers.iter().map(Uuid::to_string).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.cache.invalidate(&refs).await;
    }

    /// Re-evaluates every segment for `customers` (survivor ids) after their metrics changed,
    /// writing entries and exits with their events. Customers segmentation does not know
    /// leave every segment. Segments read through `in_segment` are evaluated first.
    ///
    /// The value side calls it after applying an `interaction.recorded` event (reason
    /// CUSTOMER_UPDATED), after a merge (CUSTOMER_MERGED) and after a rescoring (RESCORING;
    /// in pages of customers).
    pub async fn refresh_customers(&self, customers: &[Uuid], reason: MembershipChangeReason) -> anyhow::Result<()> {
        if customers.is_empty() {
            return Ok(());
        }
        let segments = dependency_order(store::all_segments(&self.pool).await?, |s| self.rule(s));
        if segments.is_empty() {
            return Ok(());
        }
        let rates = self.rates().await;
        let mut records: HashMap<Uuid, MetricsRecord> =
            store::metrics_of(&self.pool, customers, &rates).await?.into_iter().map(|r| (r.customer_id, r)).collect();
        let mut current: HashMap<Uuid, Vec<String>> = HashMap::new();
        for (customer, segment) in store::segment_ids_of(&self.pool, customers).await? {
            current.entry(customer).or_default().push(segment);
        }
        let today = today();
        for (segment, rule) in &segments {
            let mut enter = Vec::new();
            let mut exit = Vec::new();
            for customer in customers {
                let is_member = current.get(customer).is_some_and(|s| s.contains(&segment.segment_id));
                let wanted =
                    records.get(customer).is_some_and(|r| rule.matches(&Subject { metrics: &r.metrics, today }));
                if wanted && !is_member {
                    enter.push(*customer);
                } else if !wanted && is_member {
                    exit.push(*customer);
                }
                // Later segments reading `in_segment` see this one's new membership.
                if let Some(r) = records.get_mut(customer) {
                    r.metrics.segments.retain(|s| s != &segment.segment_id);
                    if wanted {
                        r.metrics.segments.push(segment.segment_id.clone());
                    }
                }
            }
            self.apply(&segment.segment_id, segment.rule_version, &enter, &exit, reason).await?;
        }
        Ok(())
    }

    /// A customer's current memberships, from the cache or Postgres.
    pub async fn customer_segments(&self, customer: Uuid) -> ApiResult<Vec<MembershipRow>> {
        let pool = self.pool.clone();
        let (rows, _) = self
            .cache
            .get_or_load(&customer.to_string(), || async move { store::memberships(&pool, customer).await.map(Some) })
            .await?;
        Ok(rows.unwrap_or_default())
    }

    /// Evaluates `rule` over every customer without saving anything.
    pub async fn preview(
        &self,
        rule: &Rule,
        sample_size: usize,
        deadline: Option<tokio::time::Instant>,
    ) -> ApiResult<Preview> {
        let rates = self.rates().await;
        let today = today();
        let mut rng = SplitMix64::new(Uuid::new_v4().as_u64_pair().0);
        let mut preview = Preview {
            matched: 0,
            evaluated: 0,
            matched_clv: 0.0,
            tiers: HashMap::new(),
            sample: Vec::new(),
            evaluate_time: None,
        };
        let mut after = None;
        loop {
            if deadline.is_some_and(|d| tokio::time::Instant::now() > d) {
                return Err(idic_platform::ApiError::DeadlineExceeded("the preview did not finish in time".into()));
            }
            let page = store::metrics_page(&self.pool, after, PAGE, &rates).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.customer_id);
            for record in page {
                preview.evaluated += 1;
                preview.evaluate_time = preview.evaluate_time.max(Some(record.update_time));
                if !rule.matches(&Subject { metrics: &record.metrics, today }) {
                    continue;
                }
                preview.matched += 1;
                preview.matched_clv += record.metrics.clv.unwrap_or(0.0);
                *preview.tiers.entry(tier_number(&record.metrics)).or_default() += 1;
                // Reservoir sampling keeps a uniform sample in one pass.
                if preview.sample.len() < sample_size {
                    preview.sample.push((record.customer_id, record.metrics));
                } else {
                    let j = rng.below(preview.matched as usize);
                    if j < sample_size {
                        preview.sample[j] = (record.customer_id, record.metrics);
                    }
                }
            }
        }
        preview.sample.sort_by_key(|(id, _)| *id);
        Ok(preview)
    }
}

/// The idic.segmentation.v1.Tier number of a customer's tier (0 when not graded).
pub fn tier_number(metrics: &CustomerMetrics) -> i32 {
    use crate::domain::tiers::Tier;
    match metrics.tier {
        None => 0,
        Some(Tier::MostValuable) => pb::Tier::Mvc as i32,
        Some(Tier::MostGrowable) => pb::Tier::Mgc as i32,
        Some(Tier::BelowZero) => pb::Tier::Bzc as i32,
        Some(Tier::Middle) => pb::Tier::Middle as i32,
        Some(Tier::LongTail) => pb::Tier::LongTail as i32,
    }
}

/// Segments with parsed rules, each after the segments its rule reads through `in_segment`
/// (a cycle, which creation refuses, leaves the remaining segments in id order).
fn dependency_order(
    segments: Vec<SegmentRow>,
    parse: impl Fn(&SegmentRow) -> Option<Arc<Rule>>,
) -> Vec<(SegmentRow, Arc<Rule>)> {
    let mut pending: Vec<(SegmentRow, Arc<Rule>)> =
        segments.into_iter().filter_map(|s| parse(&s).map(|r| (s, r))).collect();
    let mut ordered: Vec<(SegmentRow, Arc<Rule>)> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|(_, r)| {
            r.referenced_segments().iter().all(|dep| !pending.iter().any(|(s, _)| &s.segment_id == dep))
        });
        let next = pending.remove(ready.unwrap_or(0));
        ordered.push(next);
    }
    ordered
}
