//! `idic segment rescore` (start a rescoring and wait for its job) and `idic models show`
//! (print a fitted model's parameters, log-likelihood, data window and holdout check):
//! clients of a running segmentation service.

use idic_proto::{
    common::v1::Period,
    segmentation::v1::{GetModelRequest, Model, ModelKind, RescoringMode, StartRescoringRequest},
};

use crate::client::{self, ServerArgs};

/// Arguments of `idic segment rescore`.
#[derive(Debug, clap::Args)]
pub struct RescoreArgs {
    /// Keep the active models and only re-grade with them (after a settings change)
    /// instead of refitting every model.
    #[arg(long)]
    reuse_models: bool,
    /// Purchase model to fit: bg-nbd or pareto-nbd; default: the value settings'.
    #[arg(long, value_parser = ["bg-nbd", "pareto-nbd"])]
    model: Option<String>,
    /// Fixed number of needs clusters (2–50); default: chosen by silhouette.
    #[arg(long)]
    clusters: Option<i32>,
    /// Why the rescoring is run (kept in the audit log).
    #[arg(long, default_value = "")]
    reason: String,
    /// Idempotency key: running the command again with it reattaches to the same job.
    #[arg(long, default_value = "")]
    request_id: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// Starts a rescoring, follows its progress and prints its result.
pub async fn rescore(args: RescoreArgs) -> anyhow::Result<()> {
    let RescoreArgs { reuse_models, model, clusters, reason, request_id, server } = args;
    let mut segmentation = server.segmentation().await?;
    let transaction_model = match model.as_deref() {
        Some("pareto-nbd") => ModelKind::ParetoNbd,
        Some(_) => ModelKind::BgNbd,
        None => ModelKind::Unspecified,
    };
    let mode = if reuse_models { RescoringMode::ReuseModels } else { RescoringMode::Refit };
    let job = segmentation
        .start_rescoring(StartRescoringRequest {
            request_id,
            mode: mode as i32,
            transaction_model: transaction_model as i32,
            cluster_count: clusters,
            holdout: None,
            reason,
        })
        .await
        .map_err(|s| client::explain(&s))?
        .into_inner();
    crate::jobs::follow("rescoring", job, |r| {
        let mut c = segmentation.clone();
        async move { c.get_job(r).await }
    })
    .await?;
    Ok(())
}

/// Arguments of `idic models show`.
#[derive(Debug, clap::Args)]
pub struct ShowModelArgs {
    /// The model: models/ID (or ID).
    model: String,
    #[command(flatten)]
    server: ServerArgs,
}

fn period(p: Option<&Period>) -> String {
    let time = |t: Option<&prost_types::Timestamp>| {
        t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map_or("-".to_owned(), |t| t.format("%Y-%m-%d").to_string())
    };
    p.map_or("-".into(), |p| format!("{} to {}", time(p.start_time.as_ref()), time(p.end_time.as_ref())))
}

/// Prints one model.
pub async fn show_model(args: ShowModelArgs) -> anyhow::Result<()> {
    let ShowModelArgs { model, server } = args;
    let name = if model.starts_with("models/") { model } else { format!("models/{model}") };
    let mut segmentation = server.segmentation().await?;
    let model = segmentation.get_model(GetModelRequest { name }).await.map_err(|s| client::explain(&s))?.into_inner();
    print!("{}", describe(&model));
    Ok(())
}

/// The text `idic models show` prints.
pub fn describe(m: &Model) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let kind = ModelKind::try_from(m.kind).map_or("unknown", |k| k.as_str_name());
    let _ = writeln!(out, "{}  {kind}  {}", m.name, if m.state == 1 { "ACTIVE" } else { "SUPERSEDED" });
    let _ = writeln!(out, "job:           {}", m.job);
    let _ = writeln!(out, "data window:   {}", period(m.data_window.as_ref()));
    let _ = writeln!(out, "customers:     {}", m.customer_count);
    let _ = writeln!(out, "transactions:  {}", m.transaction_count);
    if let Some(unit) = &m.time_unit {
        let _ = writeln!(out, "time unit:     {} days", unit.seconds / 86_400);
    }
    if !m.currency_code.is_empty() {
        let _ = writeln!(out, "currency:      {}", m.currency_code);
    }
    let _ = writeln!(out, "parameters:");
    for p in &m.parameters {
        let _ = writeln!(out, "  {:<8} {:.6}", p.name, p.value);
    }
    if let Some(ll) = m.log_likelihood {
        let _ = writeln!(out, "log-likelihood: {ll:.4}");
    }
    let _ = writeln!(out, "iterations:    {} (converged: {})", m.iterations, m.converged);
    if let Some(h) = &m.holdout_check {
        let _ = writeln!(out, "holdout check ({}):", h.metric);
        let _ = writeln!(out, "  calibration: {}", period(h.calibration.as_ref()));
        let _ = writeln!(out, "  holdout:     {}", period(h.holdout.as_ref()));
        let params: Vec<String> =
            h.calibration_parameters.iter().map(|p| format!("{} {:.4}", p.name, p.value)).collect();
        let _ = writeln!(out, "  calibration parameters: {}", params.join(", "));
        let error = h.relative_error.map_or("-".into(), |e| format!("{:+.1}%", 100.0 * e));
        let _ = writeln!(
            out,
            "  predicted {:.2}, actual {:.2} ({error}), {} customers",
            h.predicted, h.actual, h.customer_count
        );
        for f in &h.by_calibration_frequency {
            let _ = writeln!(
                out,
                "  {:>3}{} repeats: {:>6} customers, predicted {:.3}, actual {:.3}",
                f.calibration_repeat_purchases,
                if f.or_more { "+" } else { " " },
                f.customer_count,
                f.predicted_mean,
                f.actual_mean
            );
        }
    }
    if let Some(c) = &m.clustering {
        let _ = writeln!(
            out,
            "clusters:      {} (silhouette {:.3}, inertia {:.2})",
            c.cluster_count, c.silhouette, c.inertia
        );
        for k in &c.candidates {
            let _ = writeln!(out, "  k={:<3} {} {:.3}", k.cluster_count, c.criterion, k.score);
        }
    }
    out
}
