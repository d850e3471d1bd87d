//! Jobs started by a client command and followed to their end: `idic segment rescore`,
//! `idic identify cleanse` and `idic customize retrain` start a job, show its progress and
//! print its result, exiting non-zero when it fails (so a Kubernetes CronJob sees failures).

use std::{future::Future, time::Duration};

use idic_proto::common::v1::{GetJobRequest, Job, JobState};
use tonic::Status;

use crate::client;

/// Follows `job` through `get_job` until it ends, then prints its result under `what`
/// ("rescoring", "cleansing", ...). Fails unless the job succeeded.
pub async fn follow<F, Fut>(what: &str, job: Job, mut get_job: F) -> anyhow::Result<Job>
where
    F: FnMut(GetJobRequest) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Job>, Status>>,
{
    println!("{what} {} started", job.name);
    let bar = client::progress_bar(0, indicatif::ProgressStyle::default_bar());
    let job = loop {
        let now =
            get_job(GetJobRequest { name: job.name.clone() }).await.map_err(|s| client::explain(&s))?.into_inner();
        bar.set_length(now.progress_total.max(0) as u64);
        bar.set_position(now.progress_done.max(0) as u64);
        match JobState::try_from(now.state) {
            Ok(JobState::Succeeded | JobState::Failed | JobState::Cancelled) => break now,
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    bar.finish_and_clear();
    match JobState::try_from(job.state) {
        Ok(JobState::Succeeded) => {
            println!("{what} {} succeeded", job.name);
            if let Some(result) = &job.result {
                let mut fields: Vec<_> = result.fields.iter().collect();
                fields.sort_by(|a, b| a.0.cmp(b.0));
                for (key, value) in fields {
                    println!("  {key}: {}", show_value(value));
                }
            }
            Ok(job)
        }
        Ok(JobState::Cancelled) => anyhow::bail!("{what} {} was cancelled", job.name),
        _ => anyhow::bail!("{what} {} failed: {}", job.name, job.error_message),
    }
}

/// A job result's value as text.
pub fn show_value(value: &prost_types::Value) -> String {
    use prost_types::value::Kind;
    match &value.kind {
        Some(Kind::NumberValue(n)) => format!("{n}"),
        Some(Kind::StringValue(s)) => s.clone(),
        Some(Kind::BoolValue(b)) => b.to_string(),
        Some(Kind::StructValue(s)) => {
            let mut fields: Vec<_> = s.fields.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            fields.iter().map(|(k, v)| format!("{k} {}", show_value(v))).collect::<Vec<_>>().join(", ")
        }
        Some(Kind::ListValue(l)) => l.values.iter().map(show_value).collect::<Vec<_>>().join(", "),
        Some(Kind::NullValue(_)) | None => "-".into(),
    }
}

/// Arguments of `idic identify cleanse`.
#[derive(Debug, clap::Args)]
pub struct CleanseArgs {
    /// Find and report duplicates without merging anything.
    #[arg(long)]
    dry_run: bool,
    /// Merge probability at or above which duplicates are merged; default: the server's.
    #[arg(long)]
    auto_merge_threshold: Option<f64>,
    /// Probability from which pairs are queued for review; default: the server's.
    #[arg(long)]
    review_threshold: Option<f64>,
    /// Idempotency key: running the command again with it reattaches to the same job.
    #[arg(long, default_value = "")]
    request_id: String,
    #[command(flatten)]
    server: client::ServerArgs,
}

/// Starts a cleansing of the customer file and follows it.
pub async fn cleanse(args: CleanseArgs) -> anyhow::Result<()> {
    use idic_proto::identification::v1::StartCleansingRequest;
    let CleanseArgs { dry_run, auto_merge_threshold, review_threshold, request_id, server } = args;
    let mut identification = server.identification().await?;
    let request = StartCleansingRequest { request_id, dry_run, auto_merge_threshold, review_threshold };
    let job = identification.start_cleansing(request).await.map_err(|s| client::explain(&s))?.into_inner();
    follow("cleansing", job, |r| {
        let mut c = identification.clone();
        async move { c.get_job(r).await }
    })
    .await?;
    Ok(())
}

/// Arguments of `idic customize retrain`.
#[derive(Debug, clap::Args)]
pub struct RetrainArgs {
    /// Neighbours kept per item (10–1000); default: the server's (100).
    #[arg(long, default_value_t = 0)]
    neighbours_per_item: i32,
    /// Half-life of the recency weight, in days (1–1825); default: the server's (90).
    #[arg(long)]
    half_life_days: Option<f64>,
    /// Idempotency key: running the command again with it reattaches to the same job.
    #[arg(long, default_value = "")]
    request_id: String,
    #[command(flatten)]
    server: client::ServerArgs,
}

/// Starts a retraining of the recommender and follows it.
pub async fn retrain(args: RetrainArgs) -> anyhow::Result<()> {
    use idic_proto::customization::v1::StartRetrainingRequest;
    let RetrainArgs { neighbours_per_item, half_life_days, request_id, server } = args;
    let mut customization = server.customization().await?;
    let recency_half_life = half_life_days.map(|d| prost_types::Duration { seconds: (d * 86_400.0) as i64, nanos: 0 });
    let request = StartRetrainingRequest { window: None, recency_half_life, neighbours_per_item, request_id };
    let job = customization.start_retraining(request).await.map_err(|s| client::explain(&s))?.into_inner();
    follow("retraining", job, |r| {
        let mut c = customization.clone();
        async move { c.get_job(r).await }
    })
    .await?;
    Ok(())
}
