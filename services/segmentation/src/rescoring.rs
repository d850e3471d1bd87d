//! The rescoring job (`segmentation.rescore`): reads every customer's history, fits (or
//! reuses) the purchase and spend models with their calibration/holdout checks, computes
//! P(alive), expected purchases and spend, CLV, cost to serve, profit, RFM quintiles and
//! tiers, then writes them in bulk with the tier changes and their events.

use std::{collections::HashMap, time::Instant};

use chrono::{DateTime, NaiveDate, Utc};
use idic_platform::{events, jobs::Jobs, jobs::timestamp};
use idic_proto::{common::v1 as common, segmentation::v1 as pb};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    cache::ValueCache,
    domain::{
        Fit, PurchaseModel,
        bgnbd::BgNbd,
        clv::{ClvSettings, Margin, lifetime_value},
        cost::Profit,
        gamma_gamma::{GammaGamma, SpendHistory},
        history::{CustomerHistory, Purchase, RepeatHistory, summarise},
        holdout::{CheckedFit, DataWindow, fit_and_check},
        pareto_nbd::ParetoNbd,
        rfm::{Rfm, score},
        tiers::{self, CustomerValue, TierSettings, grade},
    },
    events::{CUSTOMER_TIER_CHANGED, tier_changed},
    settings,
};

/// The job kind.
pub const KIND: &str = "segmentation.rescore";
/// Customers written per transaction (and per progress report).
const CHUNK: usize = 5_000;

/// What one rescoring was asked to do.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// Refit the models (false: reuse the active ones).
    pub refit: bool,
    /// Purchase model kind (BG/NBD or Pareto/NBD).
    pub transaction_model: i32,
    /// Holdout length in days; None means the settings'.
    pub holdout_days: Option<i64>,
    /// The idempotency key, when given.
    pub request_id: Option<String>,
    /// Fixed number of needs clusters for this refit; None means the settings'.
    #[serde(default)]
    pub cluster_count: Option<i32>,
}

/// A fitted purchase model of either kind.
#[derive(Debug, Clone, Copy)]
pub enum Purchases {
    /// BG/NBD.
    BgNbd(BgNbd),
    /// Pareto/NBD.
    ParetoNbd(ParetoNbd),
}

impl PurchaseModel for Purchases {
    fn probability_alive(&self, h: &RepeatHistory) -> f64 {
        match self {
            Self::BgNbd(m) => m.probability_alive(h),
            Self::ParetoNbd(m) => m.probability_alive(h),
        }
    }
    fn conditional_expected_purchases(&self, h: &RepeatHistory, weeks: f64) -> f64 {
        match self {
            Self::BgNbd(m) => m.conditional_expected_purchases(h, weeks),
            Self::ParetoNbd(m) => m.conditional_expected_purchases(h, weeks),
        }
    }
}

impl Purchases {
    fn parameters(&self) -> Vec<(&'static str, f64)> {
        match self {
            Self::BgNbd(m) => vec![("r", m.r), ("alpha", m.alpha), ("a", m.a), ("b", m.b)],
            Self::ParetoNbd(m) => vec![("r", m.r), ("alpha", m.alpha), ("s", m.s), ("beta", m.beta)],
        }
    }

    /// The model stored as `model`, when it is a purchase model with its parameters.
    pub fn from_model(model: &pb::Model) -> Option<Self> {
        let p = |name: &str| model.parameters.iter().find(|p| p.name == name).map(|p| p.value);
        match pb::ModelKind::try_from(model.kind).ok()? {
            pb::ModelKind::BgNbd => Some(Self::BgNbd(BgNbd { r: p("r")?, alpha: p("alpha")?, a: p("a")?, b: p("b")? })),
            pb::ModelKind::ParetoNbd => {
                Some(Self::ParetoNbd(ParetoNbd { r: p("r")?, alpha: p("alpha")?, s: p("s")?, beta: p("beta")? }))
            }
            _ => None,
        }
    }
}

fn parameters(values: &[(&str, f64)]) -> Vec<pb::ModelParameter> {
    values.iter().map(|(n, v)| pb::ModelParameter { name: (*n).to_owned(), value: *v, standard_error: None }).collect()
}

fn gg_parameters(m: &GammaGamma) -> Vec<(&'static str, f64)> {
    vec![("p", m.p), ("q", m.q), ("v", m.gamma)]
}

fn day_start(d: NaiveDate) -> prost_types::Timestamp {
    timestamp(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

fn period(start: NaiveDate, end_inclusive: NaiveDate) -> common::Period {
    common::Period {
        start_time: Some(day_start(start)),
        end_time: Some(day_start(end_inclusive + chrono::Days::new(1))),
    }
}

/// One customer's history as the job reads it.
#[derive(Debug, Default)]
struct Customer {
    purchases: Vec<Purchase>,
    /// Net revenue (purchases less returns) in the behaviour window, reporting currency.
    window_revenue: f64,
    /// Net revenue over all history.
    total_revenue: f64,
    /// Interactions in the window by (kind, channel).
    contacts: HashMap<(String, i32), i64>,
    purchases_in_window: u32,
    previous_tier: i16,
    previous_at_risk: bool,
    previous_p_alive: Option<f64>,
}

/// Runs rescorings.
#[derive(Debug, Clone)]
pub struct Rescorer {
    /// The service's schema.
    pub pool: PgPool,
    /// Its jobs.
    pub jobs: Jobs,
    /// The value cache, invalidated after the writes.
    pub cache: ValueCache,
    /// Segment memberships, re-evaluated for everyone after a rescoring.
    pub segments: crate::membership::Memberships,
}

impl Rescorer {
    /// Runs job `job` to its end, recording success or failure on the job.
    pub async fn run(self, job: Uuid, plan: Plan) {
        let outcome = self.rescore(job, &plan).await;
        let recorded = match outcome {
            Ok(Some(result)) => {
                // Rules read the new tiers, scores and clusters: members enter and exit now.
                let reason = idic_proto::segmentation::v1::MembershipChangeReason::Rescoring;
                if let Err(e) = self.segments.refresh_all(reason).await {
                    tracing::error!(error = ?e, %job, "re-evaluating segments after rescoring failed");
                }
                self.jobs.succeed(job, result).await
            }
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::error!(error = ?e, %job, "rescoring failed");
                self.jobs.fail(job, &format!("{e:#}")).await
            }
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, %job, "recording the rescoring's end failed");
        }
    }

    /// The rescoring itself; `None` when it was cancelled.
    async fn rescore(&self, job: Uuid, plan: &Plan) -> anyhow::Result<Option<serde_json::Value>> {
        let started = Instant::now();
        let s = settings::load(&self.pool).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let live = crate::events::live_from(&s);
        let window_days = i64::from(live.window_days);
        let now = Utc::now();
        let today = now.date_naive();
        let (mut customers, ids, skipped) = self.load(&live, window_days, now).await?;
        self.jobs.start(job, ids.len() as i64).await.map_err(|e| anyhow::anyhow!("{e}"))?;

        // Summaries for the models: every customer with a purchase before today.
        let purchases_of: Vec<Vec<Purchase>> = ids.iter().map(|id| customers[id].purchases.clone()).collect();
        let histories: Vec<Option<CustomerHistory>> = purchases_of.iter().map(|p| summarise(p, today)).collect();
        let repeat: Vec<RepeatHistory> = histories.iter().flatten().map(|h| h.repeat).collect();
        let spends: Vec<SpendHistory> = histories
            .iter()
            .flatten()
            .filter_map(|h| h.mean_repeat_spend.and_then(|m| SpendHistory::new(h.repeat.frequency(), m).ok()))
            .collect();
        let first_day = purchases_of.iter().flatten().map(|p| p.on).min();
        let transactions = purchases_of.iter().map(|p| p.len() as i64).sum::<i64>();

        let (purchase_model, purchase_id, spend_model, spend_id, holdout_report) = if plan.refit {
            let kind = pb::ModelKind::try_from(plan.transaction_model).unwrap_or(pb::ModelKind::BgNbd);
            let fit_started = Instant::now();
            let fitted: Fit<Purchases> = match kind {
                pb::ModelKind::ParetoNbd => {
                    let f = ParetoNbd::fit(&repeat)?;
                    Fit {
                        params: Purchases::ParetoNbd(f.params),
                        log_likelihood: f.log_likelihood,
                        customers: f.customers,
                        evaluations: f.evaluations,
                    }
                }
                _ => {
                    let f = BgNbd::fit(&repeat)?;
                    Fit {
                        params: Purchases::BgNbd(f.params),
                        log_likelihood: f.log_likelihood,
                        customers: f.customers,
                        evaluations: f.evaluations,
                    }
                }
            };
            let purchase_duration = fit_started.elapsed();
            let holdout_days = plan.holdout_days.unwrap_or_else(|| settings::days(s.holdout.as_ref()));
            let window = first_day.and_then(|start| {
                let span = (today - start).num_days();
                let holdout = if holdout_days == 0 { span / 2 } else { holdout_days };
                (holdout > 0 && holdout < span)
                    .then(|| DataWindow::new(start, today - chrono::Days::new(holdout as u64), today).ok())
                    .flatten()
            });
            let purchase_check = window.and_then(|w| match kind {
                pb::ModelKind::ParetoNbd => fit_and_check(&purchases_of, w, ParetoNbd::fit).ok().map(|c| {
                    holdout_proto(
                        &c,
                        &[
                            ("r", c.fit.params.r),
                            ("alpha", c.fit.params.alpha),
                            ("s", c.fit.params.s),
                            ("beta", c.fit.params.beta),
                        ],
                    )
                }),
                _ => fit_and_check(&purchases_of, w, BgNbd::fit).ok().map(|c| {
                    holdout_proto(
                        &c,
                        &[
                            ("r", c.fit.params.r),
                            ("alpha", c.fit.params.alpha),
                            ("a", c.fit.params.a),
                            ("b", c.fit.params.b),
                        ],
                    )
                }),
            });
            let fit_started = Instant::now();
            let gg = GammaGamma::fit(&spends)?;
            let spend_duration = fit_started.elapsed();
            let spend_check = window.and_then(|w| spend_holdout(&purchases_of, w));
            let data_window = first_day.map(|d| period(d, today));
            let purchase_id = Uuid::now_v7();
            let purchase_model = pb::Model {
                name: format!("models/{purchase_id}"),
                kind: kind as i32,
                state: pb::ModelState::Active as i32,
                fit_time: Some(timestamp(Utc::now())),
                job: format!("jobs/{job}"),
                data_window,
                customer_count: fitted.customers as i64,
                transaction_count: transactions,
                parameters: parameters(&fitted.params.parameters()),
                log_likelihood: Some(fitted.log_likelihood),
                iterations: i32::try_from(fitted.evaluations).unwrap_or(i32::MAX),
                converged: fitted.log_likelihood.is_finite(),
                fit_duration: prost_types::Duration::try_from(purchase_duration).ok(),
                time_unit: Some(settings::duration_days(7)),
                currency_code: String::new(),
                holdout_check: purchase_check.clone(),
                clustering: None,
            };
            let spend_id = Uuid::now_v7();
            let spend_model = pb::Model {
                name: format!("models/{spend_id}"),
                kind: pb::ModelKind::GammaGamma as i32,
                state: pb::ModelState::Active as i32,
                fit_time: Some(timestamp(Utc::now())),
                job: format!("jobs/{job}"),
                data_window,
                customer_count: gg.customers as i64,
                transaction_count: transactions,
                parameters: parameters(&gg_parameters(&gg.params)),
                log_likelihood: Some(gg.log_likelihood),
                iterations: i32::try_from(gg.evaluations).unwrap_or(i32::MAX),
                converged: gg.log_likelihood.is_finite(),
                fit_duration: prost_types::Duration::try_from(spend_duration).ok(),
                time_unit: None,
                currency_code: s.currency_code.clone(),
                holdout_check: spend_check,
                clustering: None,
            };
            let mut tx = self.pool.begin().await?;
            crate::store::models::activate(&mut tx, purchase_id, &purchase_model, now).await?;
            crate::store::models::activate(&mut tx, spend_id, &spend_model, now).await?;
            tx.commit().await?;
            let report = purchase_check.map(|c| serde_json::json!({ "predicted": c.predicted, "actual": c.actual }));
            (fitted.params, purchase_id, gg.params, spend_id, report)
        } else {
            let kind = pb::ModelKind::try_from(plan.transaction_model).unwrap_or(pb::ModelKind::BgNbd);
            let active = crate::store::models::active(&self.pool, kind).await?;
            let spend = crate::store::models::active(&self.pool, pb::ModelKind::GammaGamma).await?;
            let (Some(active), Some(spend)) = (active, spend) else {
                anyhow::bail!("no active {} and Gamma-Gamma models to reuse", kind.as_str_name());
            };
            let purchases =
                Purchases::from_model(&active).ok_or_else(|| anyhow::anyhow!("unreadable {}", active.name))?;
            let p = |n: &str| spend.parameters.iter().find(|p| p.name == n).map_or(f64::NAN, |p| p.value);
            let gg = GammaGamma { p: p("p"), q: p("q"), gamma: p("v") };
            let id = |m: &pb::Model| Uuid::parse_str(m.name.trim_start_matches("models/")).unwrap_or_default();
            (purchases, id(&active), gg, id(&spend), None)
        };

        // Per-customer predictions and values.
        let horizon_days = settings::days(s.clv_horizon.as_ref()).max(1);
        let months = ((horizon_days as f64) / 30.4375).round().max(1.0) as u32;
        let horizon_weeks = horizon_days as f64 / 7.0;
        let monthly_rate = (1.0 + s.annual_discount_rate).powf(1.0 / 12.0) - 1.0;
        let margin = Margin::new(s.margin).map_err(|e| anyhow::anyhow!("{e}"))?;
        let clv_settings = ClvSettings::new(months, horizon_weeks / f64::from(months), monthly_rate, margin)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let unit_costs: HashMap<(String, i32), f64> = s
            .unit_costs
            .iter()
            .map(|u| {
                (
                    (u.interaction_kind.clone(), u.channel),
                    u.cost.as_ref().map_or(0.0, |m| m.amount_minor as f64 / 100.0),
                )
            })
            .collect();
        let mut scored = Vec::with_capacity(ids.len());
        for (id, history) in ids.iter().zip(&histories) {
            let c = customers.get_mut(id).ok_or_else(|| anyhow::anyhow!("customer vanished"))?;
            let mut lines = Vec::new();
            let mut cost = 0.0;
            let mut contacts: Vec<_> = c.contacts.iter().collect();
            contacts.sort();
            for ((kind, channel), count) in contacts {
                let unit = unit_costs
                    .get(&(kind.clone(), *channel))
                    .map(|u| (*u, *channel))
                    .or_else(|| unit_costs.get(&(kind.clone(), 0)).map(|u| (*u, 0)));
                if let Some((unit, applied_channel)) = unit {
                    cost += unit * *count as f64;
                    lines.push(
                        serde_json::json!({ "kind": kind, "channel": applied_channel, "count": count, "unit": unit }),
                    );
                }
            }
            let prediction = history.map(|h| {
                let p_alive = purchase_model.probability_alive(&h.repeat);
                let expected = purchase_model.conditional_expected_purchases(&h.repeat, horizon_weeks);
                let spend = spend_model
                    .expected_spend(h.mean_repeat_spend.and_then(|m| SpendHistory::new(h.repeat.frequency(), m).ok()));
                let clv = lifetime_value(&purchase_model, &h.repeat, spend, &clv_settings);
                (p_alive, expected, spend, if clv.is_finite() { clv } else { 0.0 })
            });
            let profit = Profit { margin: s.margin * c.window_revenue, cost_to_serve: cost };
            scored.push(Scored {
                customer: *id,
                prediction,
                cost,
                lines: serde_json::Value::Array(lines),
                profit,
                growth_ratio: prediction
                    .filter(|_| s.margin * c.total_revenue > 0.0)
                    .map(|(_, _, _, clv)| clv / (s.margin * c.total_revenue)),
                recency_weeks: history.map(|h| h.weeks_since_last),
                window_frequency: c.purchases_in_window,
                window_revenue: c.window_revenue,
                previous_tier: c.previous_tier,
                previous_at_risk: c.previous_at_risk,
                previous_p_alive: c.previous_p_alive,
            });
        }

        // Grades and quintiles over the whole base.
        let t = s.tiers.clone().unwrap_or_default();
        let tier_settings = TierSettings::new(
            t.mvc_value_share,
            t.long_tail_value_share,
            t.mgc_min_growth_ratio.max(1.000_001),
            t.mgc_max_share_of_wallet,
            t.at_risk_max_p_alive,
            t.at_risk_min_p_alive_drop,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let values: Vec<CustomerValue> = scored
            .iter()
            .map(|c| CustomerValue {
                profit: c.profit,
                predicted_value: c.prediction.map_or(0.0, |p| p.3),
                share_of_wallet: None,
                probability_alive: c.prediction.map_or(0.0, |p| p.0),
                previous_probability_alive: c.previous_p_alive,
            })
            .collect();
        let grades = grade(&values, &tier_settings);
        let rfm_base: Vec<(usize, Rfm)> = scored
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                c.recency_weeks
                    .map(|r| (i, Rfm { recency_weeks: r, frequency: c.window_frequency, monetary: c.window_revenue }))
            })
            .collect();
        let rfm_scores = score(&rfm_base.iter().map(|(_, r)| *r).collect::<Vec<_>>());
        let mut quintiles: Vec<Option<(i16, i16, i16)>> = vec![None; scored.len()];
        for ((i, _), q) in rfm_base.iter().zip(rfm_scores) {
            quintiles[*i] =
                Some((i16::from(q.recency.get()), i16::from(q.frequency.get()), i16::from(q.monetary.get())));
        }
        // Percentile of each customer by CLV (100 = the most valuable).
        let mut order: Vec<usize> = (0..scored.len()).collect();
        order.sort_by(|&a, &b| values[a].predicted_value.total_cmp(&values[b].predicted_value));
        let mut percentile = vec![0.0; scored.len()];
        let n = scored.len().max(1) as f64;
        for (rank, &i) in order.iter().enumerate() {
            percentile[i] = 100.0 * (rank + 1) as f64 / n;
        }

        // Bulk writes, chunk by chunk, with progress and cancellation.
        let mut changes = 0usize;
        let mut done = 0usize;
        for chunk in (0..scored.len()).collect::<Vec<_>>().chunks(CHUNK) {
            let mut rows = Rows::default();
            let mut tier_rows = TierRows::default();
            let mut events_out: Vec<(&str, Vec<u8>)> = Vec::new();
            for &i in chunk {
                let c = &scored[i];
                let tier = tier_proto(grades[i].tier);
                let p_alive = c.prediction.map(|p| p.0);
                let at_risk = percentile[i] >= t.at_risk_min_value_percentile
                    && p_alive.is_some_and(|p| {
                        p < t.at_risk_max_p_alive
                            || (t.at_risk_min_p_alive_drop > 0.0
                                && c.previous_p_alive.is_some_and(|q| q - p >= t.at_risk_min_p_alive_drop))
                    });
                let changed = tier as i16 != c.previous_tier || at_risk != c.previous_at_risk;
                if changed {
                    let previous = pb::Tier::try_from(i32::from(c.previous_tier)).unwrap_or(pb::Tier::Unspecified);
                    tier_rows.push(
                        c.customer,
                        tier as i16,
                        c.previous_tier,
                        at_risk,
                        c.previous_at_risk,
                        c.prediction.map_or(0.0, |p| p.3),
                        p_alive.unwrap_or(0.0),
                    );
                    events_out.push((
                        CUSTOMER_TIER_CHANGED,
                        tier_changed(
                            c.customer,
                            tier,
                            previous,
                            at_risk,
                            c.previous_at_risk,
                            pb::TierChangeReason::Rescoring,
                            Some(job),
                            now,
                        ),
                    ));
                }
                rows.push(c, quintiles[i], tier as i16, changed, at_risk, percentile[i]);
            }
            changes += tier_rows.customer.len();
            let mut tx = self.pool.begin().await?;
            rows.write(&mut tx, purchase_id, spend_id, horizon_days as i32, s.annual_discount_rate, s.margin, now)
                .await?;
            tier_rows.write(&mut tx, job, now).await?;
            events::enqueue_many(&mut tx, &events_out).await?;
            tx.commit().await?;
            done += chunk.len();
            let still_running =
                self.jobs.progress(job, done as i64, scored.len() as i64).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            self.cache.invalidate(&chunk.iter().map(|&i| scored[i].customer).collect::<Vec<_>>()).await;
            if !still_running {
                return Ok(None);
            }
        }
        let clusters = if plan.refit {
            let c = s.clustering.unwrap_or_default();
            let cluster_plan = crate::clustering::ClusterPlan {
                fixed: plan.cluster_count.or(c.cluster_count).map(|k| k.max(2) as usize),
                min: c.min_cluster_count.max(2) as usize,
                max: c.max_cluster_count.max(2) as usize,
                categories: c.category_feature_count.max(1) as usize,
            };
            let graded: HashMap<Uuid, (f64, i16)> = scored
                .iter()
                .zip(&grades)
                .map(|(c, g)| (c.customer, (c.prediction.map_or(0.0, |p| p.3), tier_proto(g.tier) as i16)))
                .collect();
            let fitted = crate::clustering::fit_and_store(&self.pool, job, cluster_plan, &live.rates, &graded).await?;
            self.cache.invalidate(&ids).await;
            fitted
        } else {
            None
        };
        let aliases: Vec<Uuid> =
            sqlx::query_scalar("SELECT customer_id FROM merged_customers").fetch_all(&self.pool).await?;
        for chunk in aliases.chunks(CHUNK) {
            self.cache.invalidate(chunk).await;
        }
        Ok(Some(serde_json::json!({
            "customers_scored": scored.len(),
            "tier_changes": changes,
            "purchase_model": format!("models/{purchase_id}"),
            "spend_model": format!("models/{spend_id}"),
            "holdout_repeat_purchases": holdout_report,
            "purchases_without_exchange_rate": skipped,
            "needs_clusters": clusters,
            "seconds": started.elapsed().as_secs_f64(),
        })))
    }

    /// Every known customer's history in the reporting currency, and how many amounts had
    /// no exchange rate.
    async fn load(
        &self,
        live: &crate::store::value::LiveSettings,
        window_days: i64,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(HashMap<Uuid, Customer>, Vec<Uuid>, i64)> {
        let known: Vec<(Uuid, i16, bool, Option<f64>)> =
            sqlx::query_as("SELECT customer_id, tier, at_risk, p_alive FROM customer_values ORDER BY customer_id")
                .fetch_all(&self.pool)
                .await?;
        let mut customers: HashMap<Uuid, Customer> = HashMap::with_capacity(known.len());
        let ids: Vec<Uuid> = known.iter().map(|k| k.0).collect();
        for (id, tier, at_risk, p_alive) in known {
            customers.insert(
                id,
                Customer {
                    previous_tier: tier,
                    previous_at_risk: at_risk,
                    previous_p_alive: p_alive,
                    ..Default::default()
                },
            );
        }
        let rows: Vec<InteractionRow> = sqlx::query_as(
            "SELECT customer_id, kind, channel, occur_time, \
                    amount_minor * (CASE WHEN currency_code = '' THEN 1 ELSE ($1::jsonb ->> currency_code)::float8 END) / 100.0 \
             FROM interactions",
        )
        .bind(&live.rates)
        .fetch_all(&self.pool)
        .await?;
        let window_start = now - chrono::Duration::days(window_days);
        let mut skipped = 0;
        for (id, kind, channel, time, amount) in rows {
            let Some(c) = customers.get_mut(&id) else { continue };
            let in_window = time > window_start;
            let money = kind == "purchase" || kind == "return";
            if money && amount.is_none() {
                skipped += 1;
                continue;
            }
            let amount = amount.unwrap_or(0.0);
            if money {
                c.total_revenue += amount;
                if in_window {
                    c.window_revenue += amount;
                }
            }
            if kind == "purchase" {
                c.purchases.push(Purchase { on: time.date_naive(), amount });
                if in_window {
                    c.purchases_in_window += 1;
                }
            }
            if in_window && kind != "purchase" {
                *c.contacts.entry((kind, channel)).or_default() += 1;
            }
        }
        Ok((customers, ids, skipped))
    }
}

/// One interaction as the job reads it: customer, kind, channel, time, amount in the
/// reporting currency (None without an exchange rate).
type InteractionRow = (Uuid, String, i32, DateTime<Utc>, Option<f64>);

/// A customer scored, before grading.
struct Scored {
    customer: Uuid,
    /// P(alive), expected purchases, expected spend, CLV.
    prediction: Option<(f64, f64, f64, f64)>,
    cost: f64,
    lines: serde_json::Value,
    profit: Profit,
    growth_ratio: Option<f64>,
    recency_weeks: Option<f64>,
    window_frequency: u32,
    window_revenue: f64,
    previous_tier: i16,
    previous_at_risk: bool,
    previous_p_alive: Option<f64>,
}

fn tier_proto(t: tiers::Tier) -> pb::Tier {
    match t {
        tiers::Tier::MostValuable => pb::Tier::Mvc,
        tiers::Tier::MostGrowable => pb::Tier::Mgc,
        tiers::Tier::Middle => pb::Tier::Middle,
        tiers::Tier::LongTail => pb::Tier::LongTail,
        tiers::Tier::BelowZero => pb::Tier::Bzc,
    }
}

fn holdout_proto<P>(c: &CheckedFit<P>, calibration: &[(&str, f64)]) -> pb::HoldoutCheck {
    let w = c.window;
    pb::HoldoutCheck {
        calibration: Some(period(w.start, w.calibration_end)),
        holdout: Some(period(w.calibration_end + chrono::Days::new(1), w.holdout_end)),
        calibration_parameters: parameters(calibration),
        metric: "repeat_purchases".to_owned(),
        predicted: c.holdout.predicted,
        actual: c.holdout.actual as f64,
        relative_error: (c.holdout.actual > 0).then(|| c.holdout.relative_error()),
        customer_count: c.holdout.customers as i64,
        by_calibration_frequency: c
            .holdout
            .by_frequency
            .iter()
            .enumerate()
            .map(|(i, b)| pb::FrequencyCheck {
                calibration_repeat_purchases: b.frequency as i32,
                or_more: i + 1 == c.holdout.by_frequency.len() && b.frequency >= 7,
                customer_count: b.customers as i64,
                predicted_mean: b.predicted_mean,
                actual_mean: b.actual_mean,
            })
            .collect(),
        tracking: Vec::new(),
    }
}

/// Gamma-Gamma refitted on the calibration period, predicting the mean spend per purchase of
/// the holdout's purchases (each weighted by its customer's calibration history).
fn spend_holdout(customers: &[Vec<Purchase>], w: DataWindow) -> Option<pb::HoldoutCheck> {
    let mut calibration = Vec::new();
    let mut holdout: Vec<(Option<SpendHistory>, Vec<f64>)> = Vec::new();
    for purchases in customers {
        let Some(h) = summarise(purchases, w.calibration_end) else { continue };
        let spend = h.mean_repeat_spend.and_then(|m| SpendHistory::new(h.repeat.frequency(), m).ok());
        if let Some(s) = spend {
            calibration.push(s);
        }
        let later: Vec<f64> =
            purchases.iter().filter(|p| p.on > w.calibration_end && p.on <= w.holdout_end).map(|p| p.amount).collect();
        if !later.is_empty() {
            holdout.push((spend, later));
        }
    }
    let fit = GammaGamma::fit(&calibration).ok()?;
    let (mut predicted, mut actual, mut n) = (0.0, 0.0, 0.0);
    for (spend, later) in &holdout {
        let expected = fit.params.expected_spend(*spend);
        predicted += expected * later.len() as f64;
        actual += later.iter().sum::<f64>();
        n += later.len() as f64;
    }
    if n == 0.0 {
        return None;
    }
    let (predicted, actual) = (predicted / n, actual / n);
    Some(pb::HoldoutCheck {
        calibration: Some(period(w.start, w.calibration_end)),
        holdout: Some(period(w.calibration_end + chrono::Days::new(1), w.holdout_end)),
        calibration_parameters: parameters(&gg_parameters(&fit.params)),
        metric: "average_spend".to_owned(),
        predicted,
        actual,
        relative_error: (actual != 0.0).then(|| predicted / actual - 1.0),
        customer_count: holdout.len() as i64,
        by_calibration_frequency: Vec::new(),
        tracking: Vec::new(),
    })
}

/// Column arrays of a chunk's score updates.
#[derive(Default)]
struct Rows {
    customer: Vec<Uuid>,
    recency: Vec<Option<i16>>,
    frequency: Vec<Option<i16>>,
    monetary: Vec<Option<i16>>,
    expected_purchases: Vec<Option<f64>>,
    p_alive: Vec<Option<f64>>,
    expected_spend: Vec<Option<f64>>,
    clv: Vec<Option<f64>>,
    cost: Vec<f64>,
    lines: Vec<serde_json::Value>,
    profit: Vec<f64>,
    revenue: Vec<f64>,
    growth: Vec<Option<f64>>,
    tier: Vec<i16>,
    changed: Vec<bool>,
    at_risk: Vec<bool>,
    percentile: Vec<f64>,
}

impl Rows {
    fn push(
        &mut self,
        c: &Scored,
        q: Option<(i16, i16, i16)>,
        tier: i16,
        changed: bool,
        at_risk: bool,
        percentile: f64,
    ) {
        self.customer.push(c.customer);
        self.recency.push(q.map(|q| q.0));
        self.frequency.push(q.filter(|_| c.window_frequency > 0).map(|q| q.1));
        self.monetary.push(q.filter(|_| c.window_frequency > 0).map(|q| q.2));
        self.expected_purchases.push(c.prediction.map(|p| p.1));
        self.p_alive.push(c.prediction.map(|p| p.0));
        self.expected_spend.push(c.prediction.map(|p| p.2).filter(|v| v.is_finite()));
        self.clv.push(c.prediction.map(|p| p.3));
        self.cost.push(c.cost);
        self.lines.push(c.lines.clone());
        self.profit.push(c.profit.net());
        self.revenue.push(c.window_revenue);
        self.growth.push(c.growth_ratio.filter(|g| g.is_finite()));
        self.tier.push(tier);
        self.changed.push(changed);
        self.at_risk.push(at_risk);
        self.percentile.push(percentile);
    }

    #[allow(clippy::too_many_arguments, reason = "the scalar columns shared by the chunk")]
    async fn write(
        &self,
        tx: &mut sqlx::PgConnection,
        purchase_model: Uuid,
        spend_model: Uuid,
        horizon_days: i32,
        discount_rate: f64,
        margin: f64,
        now: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE customer_values v SET recency_score = u.r, frequency_score = u.f, monetary_score = u.m, \
                    purchase_model = CASE WHEN u.p_alive IS NULL THEN NULL ELSE $18 END, \
                    spend_model = CASE WHEN u.p_alive IS NULL THEN NULL ELSE $19 END, \
                    expected_purchases = u.ep, p_alive_change = u.p_alive - v.p_alive, p_alive = u.p_alive, \
                    expected_spend = u.es, clv = u.clv, cost_to_serve = u.cost, cost_lines = u.lines, \
                    profit = u.profit, window_revenue = u.revenue, growth_ratio = u.growth, \
                    previous_tier = CASE WHEN u.tier <> v.tier THEN v.tier ELSE v.previous_tier END, \
                    tier_start_time = CASE WHEN u.tier <> v.tier THEN $23 ELSE v.tier_start_time END, \
                    tier = u.tier, at_risk = u.at_risk, value_percentile = u.pct, \
                    horizon_days = $20, discount_rate = $21, margin = $22, score_time = $23, compute_time = $23 \
             FROM UNNEST($1::uuid[], $2::int2[], $3::int2[], $4::int2[], $5::float8[], $6::float8[], $7::float8[], \
                         $8::float8[], $9::float8[], $10::jsonb[], $11::float8[], $12::float8[], $13::float8[], \
                         $14::int2[], $15::bool[], $16::bool[], $17::float8[]) \
                  AS u(id, r, f, m, ep, p_alive, es, clv, cost, lines, profit, revenue, growth, tier, changed, at_risk, pct) \
             WHERE v.customer_id = u.id",
        )
        .bind(&self.customer)
        .bind(&self.recency)
        .bind(&self.frequency)
        .bind(&self.monetary)
        .bind(&self.expected_purchases)
        .bind(&self.p_alive)
        .bind(&self.expected_spend)
        .bind(&self.clv)
        .bind(&self.cost)
        .bind(&self.lines)
        .bind(&self.profit)
        .bind(&self.revenue)
        .bind(&self.growth)
        .bind(&self.tier)
        .bind(&self.changed)
        .bind(&self.at_risk)
        .bind(&self.percentile)
        .bind(purchase_model)
        .bind(spend_model)
        .bind(horizon_days)
        .bind(discount_rate)
        .bind(margin)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Column arrays of a chunk's tier changes.
#[derive(Default)]
struct TierRows {
    customer: Vec<Uuid>,
    tier: Vec<i16>,
    previous: Vec<i16>,
    at_risk: Vec<bool>,
    previous_at_risk: Vec<bool>,
    clv: Vec<f64>,
    p_alive: Vec<f64>,
}

impl TierRows {
    #[allow(clippy::too_many_arguments, reason = "one argument per column")]
    fn push(
        &mut self,
        customer: Uuid,
        tier: i16,
        previous: i16,
        at_risk: bool,
        previous_at_risk: bool,
        clv: f64,
        p_alive: f64,
    ) {
        self.customer.push(customer);
        self.tier.push(tier);
        self.previous.push(previous);
        self.at_risk.push(at_risk);
        self.previous_at_risk.push(previous_at_risk);
        self.clv.push(clv);
        self.p_alive.push(p_alive);
    }

    async fn write(&self, tx: &mut sqlx::PgConnection, job: Uuid, now: DateTime<Utc>) -> sqlx::Result<()> {
        if self.customer.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = self.customer.iter().map(|_| Uuid::now_v7()).collect();
        sqlx::query(
            "INSERT INTO tier_changes (id, customer_id, tier, previous_tier, at_risk, previous_at_risk, change_time, \
                                       reason, job, clv, p_alive) \
             SELECT id, c, t, pt, r, pr, $8, $9, $10, clv, pa \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::int2[], $4::int2[], $5::bool[], $6::bool[], $7::float8[], $11::float8[]) \
                  AS u(id, c, t, pt, r, pr, clv, pa)",
        )
        .bind(&ids)
        .bind(&self.customer)
        .bind(&self.tier)
        .bind(&self.previous)
        .bind(&self.at_risk)
        .bind(&self.previous_at_risk)
        .bind(&self.clv)
        .bind(now)
        .bind(pb::TierChangeReason::Rescoring as i16)
        .bind(job)
        .bind(&self.p_alive)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}
