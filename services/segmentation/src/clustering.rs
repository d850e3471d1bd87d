//! Needs clustering inside a rescoring: each purchaser's behaviour features (category and
//! channel mix, basket, rhythm, discounts) clustered by k-means on standardised features,
//! k fixed or chosen by silhouette; the model, its clusters (sizes, distinguishing features,
//! generated labels) and every customer's assignment written in bulk.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use idic_platform::jobs::timestamp;
use idic_proto::{common::v1::Channel, segmentation::v1 as pb};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{
    behaviour::{FeatureSpace, Order, OrderLine},
    kmeans::{KChoice, KMeansSettings, cluster},
};

/// A purchase as clustering reads it: customer, time, channel, amount in the reporting
/// currency (None without an exchange rate), categories.
type PurchaseRow = (Uuid, DateTime<Utc>, i32, Option<f64>, Vec<String>);

/// How the clustering was asked for.
#[derive(Debug, Clone, Copy)]
pub struct ClusterPlan {
    /// Fixed k, when configured.
    pub fixed: Option<usize>,
    /// Range of k tried otherwise.
    pub min: usize,
    /// Largest k tried.
    pub max: usize,
    /// Categories with their own feature.
    pub categories: usize,
}

/// A channel's lowercase name ("web").
fn channel_name(channel: i32) -> String {
    Channel::try_from(channel)
        .unwrap_or(Channel::Unspecified)
        .as_str_name()
        .trim_start_matches("CHANNEL_")
        .to_ascii_lowercase()
}

fn slug(text: &str) -> String {
    let mut s: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').chars().take(55).collect()
}

/// Fits the needs clusters of the base and stores them with model `model_id` (kind KMEANS,
/// made active). `clv` and `tier` give each customer's grade for the cluster summaries.
/// Returns the number of clusters, or None when fewer than three customers purchased.
pub async fn fit_and_store(
    pool: &PgPool,
    job: Uuid,
    plan: ClusterPlan,
    rates: &serde_json::Value,
    grades: &HashMap<Uuid, (f64, i16)>,
) -> anyhow::Result<Option<usize>> {
    let started = std::time::Instant::now();
    let rows: Vec<PurchaseRow> = sqlx::query_as(
        "SELECT customer_id, occur_time, channel, \
                amount_minor * (CASE WHEN currency_code = '' THEN 1 ELSE ($1::jsonb ->> currency_code)::float8 END) / 100.0, \
                categories \
         FROM interactions WHERE kind = 'purchase' ORDER BY customer_id, occur_time",
    )
    .bind(rates)
    .fetch_all(pool)
    .await?;
    let mut by_customer: Vec<(Uuid, Vec<Order>)> = Vec::new();
    let mut category_spend: HashMap<String, f64> = HashMap::new();
    let mut channels: Vec<String> = Vec::new();
    for (customer, time, channel, amount, categories) in rows {
        let Some(amount) = amount else { continue };
        let categories = if categories.is_empty() { vec!["other".to_owned()] } else { categories };
        let share = amount / categories.len() as f64;
        for c in &categories {
            *category_spend.entry(c.clone()).or_default() += share;
        }
        let channel = channel_name(channel);
        if !channels.contains(&channel) {
            channels.push(channel.clone());
        }
        let order = Order {
            on: time.date_naive(),
            channel,
            lines: categories
                .into_iter()
                .map(|category| OrderLine { category, amount: share, discount: 0.0 })
                .collect(),
        };
        match by_customer.last_mut() {
            Some((c, orders)) if *c == customer => orders.push(order),
            _ => by_customer.push((customer, vec![order])),
        }
    }
    if by_customer.len() < 3 {
        return Ok(None);
    }
    let mut top: Vec<(String, f64)> = category_spend.into_iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let categories: Vec<String> = top.into_iter().take(plan.categories).map(|(c, _)| c).collect();
    channels.sort();
    let space = FeatureSpace::new(categories, channels);
    let names = space.names();
    let raw: Vec<Vec<f64>> = by_customer.iter().filter_map(|(_, o)| space.features(o)).collect();
    let (matrix, kept) = space.matrix(&by_customer.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>())?;
    let n = matrix.rows();
    let choice = match plan.fixed {
        Some(k) => KChoice::Fixed(k.min(n - 1).max(2)),
        None => KChoice::BestSilhouette { min: plan.min.min(n - 1).max(2), max: plan.max.min(n - 1).max(2) },
    };
    let fitted = cluster(&matrix, choice, &KMeansSettings::default())?;
    let k = fitted.clustering.k;
    let d = names.len();
    // Population means and standard deviations of the raw features.
    let mean: Vec<f64> = (0..d).map(|j| raw.iter().map(|r| r[j]).sum::<f64>() / n as f64).collect();
    let sd: Vec<f64> =
        (0..d).map(|j| (raw.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n as f64).sqrt()).collect();
    let now = Utc::now();
    let model_id = Uuid::now_v7();
    let model = pb::Model {
        name: format!("models/{model_id}"),
        kind: pb::ModelKind::Kmeans as i32,
        state: pb::ModelState::Active as i32,
        fit_time: Some(timestamp(now)),
        job: format!("jobs/{job}"),
        data_window: None,
        customer_count: n as i64,
        transaction_count: by_customer.iter().map(|(_, o)| o.len() as i64).sum(),
        parameters: vec![pb::ModelParameter { name: "k".into(), value: k as f64, standard_error: None }],
        log_likelihood: None,
        iterations: 0,
        converged: true,
        fit_duration: prost_types::Duration::try_from(started.elapsed()).ok(),
        time_unit: None,
        currency_code: String::new(),
        holdout_check: None,
        clustering: Some(pb::ClusteringDiagnostics {
            cluster_count: k as i32,
            cluster_count_configured: plan.fixed.is_some(),
            criterion: if plan.fixed.is_some() { String::new() } else { "silhouette".into() },
            candidates: fitted
                .tried
                .iter()
                .map(|(k, s)| pb::ClusterCountScore { cluster_count: *k as i32, score: *s })
                .collect(),
            inertia: fitted.clustering.inertia,
            silhouette: fitted.silhouette,
            features: names.clone(),
        }),
    };
    let cluster_ids: Vec<Uuid> = (0..k).map(|_| Uuid::now_v7()).collect();
    let mut labels: Vec<String> = Vec::new();
    let mut tx = pool.begin().await?;
    crate::store::models::activate(&mut tx, model_id, &model, now).await?;
    for (c, id) in cluster_ids.iter().enumerate() {
        let members: Vec<usize> = (0..n).filter(|&i| fitted.clustering.assignments[i] == c).collect();
        let size = members.len().max(1) as f64;
        let features: Vec<serde_json::Value> = (0..d)
            .map(|j| {
                let cm = members.iter().map(|&i| raw[i][j]).sum::<f64>() / size;
                let z = if sd[j] > 0.0 { (cm - mean[j]) / sd[j] } else { 0.0 };
                serde_json::json!({ "feature": names[j], "cluster_mean": cm, "population_mean": mean[j], "z_score": z })
            })
            .collect();
        let strongest = features
            .iter()
            .max_by(|a, b| {
                a["z_score"].as_f64().unwrap_or(0.0).abs().total_cmp(&b["z_score"].as_f64().unwrap_or(0.0).abs())
            })
            .map(|f| {
                let z = f["z_score"].as_f64().unwrap_or(0.0);
                format!("{} {}", if z >= 0.0 { "high" } else { "low" }, f["feature"].as_str().unwrap_or("mix"))
            })
            .unwrap_or_else(|| "cluster".into());
        let mut label = slug(&strongest);
        if label.is_empty() || labels.contains(&label) {
            label = format!("{}-{}", if label.is_empty() { "cluster" } else { &label }, c + 1);
        }
        labels.push(label.clone());
        let mut tiers: HashMap<String, i64> = HashMap::new();
        let mut clv = 0.0;
        for &i in &members {
            if let Some((v, tier)) = grades.get(&by_customer[kept[i]].0) {
                clv += v;
                *tiers.entry(tier.to_string()).or_default() += 1;
            }
        }
        sqlx::query(
            "INSERT INTO clusters (id, model, label, display_name, description, customer_count, customer_share, \
                                   features, average_clv, tier_counts, create_time, update_time) \
             VALUES ($1, $2, $3, '', $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(id)
        .bind(model_id)
        .bind(&label)
        .bind(format!("Customers with {strongest} compared with the whole base."))
        .bind(members.len() as i64)
        .bind(members.len() as f64 / n as f64)
        .bind(serde_json::Value::Array(features))
        .bind(clv / size)
        .bind(serde_json::to_value(&tiers)?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    // Every customer's assignment, distance to the centroid (standard units) and features.
    let (mut customers, mut clusters, mut distances, mut feature_maps, mut cluster_labels) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let c = fitted.clustering.assignments[i];
        let centroid = &fitted.clustering.centroids[c * d..(c + 1) * d];
        let distance = (0..d)
            .map(|j| {
                let z = if sd[j] > 0.0 { (raw[i][j] - mean[j]) / sd[j] } else { 0.0 };
                (z - centroid[j]).powi(2)
            })
            .sum::<f64>()
            .sqrt();
        customers.push(by_customer[kept[i]].0);
        clusters.push(cluster_ids[c]);
        distances.push(distance);
        feature_maps.push(serde_json::Value::Object(
            names.iter().zip(&raw[i]).map(|(n, v)| (n.clone(), serde_json::json!(v))).collect(),
        ));
        cluster_labels.push(labels[c].clone());
    }
    sqlx::query("DELETE FROM customer_clusters").execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO customer_clusters (customer_id, cluster_id, distance, features, assign_time) \
         SELECT c, k, dist, f, $5 FROM UNNEST($1::uuid[], $2::uuid[], $3::float8[], $4::jsonb[]) AS u(c, k, dist, f)",
    )
    .bind(&customers)
    .bind(&clusters)
    .bind(&distances)
    .bind(&feature_maps)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE customer_values v SET cluster_id = u.k, cluster_label = u.l \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS u(c, k, l) WHERE v.customer_id = u.c",
    )
    .bind(&customers)
    .bind(&clusters)
    .bind(&cluster_labels)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(k))
}
