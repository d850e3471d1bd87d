//! `idic`: the one IDIC binary. `idic serve --target all` runs the four services on one
//! port (monolithic mode); `--target identification` etc. runs one (microservices mode);
//! `idic migrate` applies schema migrations; `idic demo` shows the services at work;
//! `idic import`, `idic export`, `idic bench`, `idic segment` and `idic models` are clients
//! of a running server; `idic eval` works offline on files.

mod bench;
mod client;
mod demo;
mod eval;
mod export;
mod import;
mod jobs;
mod segment;

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand};
use idic::{IdicConfig, Target};
use tokio_util::sync::CancellationToken;

/// IDIC, a one-to-one marketing engine: identification, segmentation, interaction and
/// customization as gRPC services.
#[derive(Debug, Parser)]
#[command(name = "idic", version, after_long_help = settings_help())]
struct Cli {
    /// Configuration file (TOML). Every setting can also be given as an `IDIC_*`
    /// environment variable, which wins over the file; `idic config` lists them all.
    #[arg(long, short, global = true, env = "IDIC_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC: all services on one port, or one service.
    #[command(after_long_help = settings_help())]
    Serve {
        /// Which services to run: all, identification, segmentation, interaction, customization.
        #[arg(long, default_value = "all")]
        target: Target,
        /// Address to listen on (overrides `server.listen`); port 0 picks a free port.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Apply migrations before serving.
        #[arg(long)]
        migrate: bool,
    },
    /// Apply database migrations of the target's services, each into its own schema.
    Migrate {
        /// Which services to migrate.
        #[arg(long, default_value = "all")]
        target: Target,
    },
    /// Print every setting with its documentation, default and environment variable,
    /// as a TOML template.
    Config,
    /// Start all services in this process on a loopback port against the configured
    /// Postgres and Redis, and exercise them through gRPC, printing what happens.
    Demo,
    /// Load data into a running server (a client: needs only --server and a token).
    #[command(subcommand)]
    Import(ImportCommand),
    /// Write data from a running server to files (a client: needs only --server and a token).
    #[command(subcommand)]
    Export(ExportCommand),
    /// Measure a running server under load (a client: needs only --server and a token).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Segmentation work on a running server (a client: needs only --server and a token).
    #[command(subcommand)]
    Segment(SegmentCommand),
    /// Fitted value and clustering models of a running server (a client).
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Identification work on a running server (a client: needs only --server and a token).
    #[command(subcommand)]
    Identify(IdentifyCommand),
    /// Customization work on a running server (a client: needs only --server and a token).
    #[command(subcommand)]
    Customize(CustomizeCommand),
    /// Offline evaluations on files (no server needed).
    #[command(subcommand)]
    Eval(EvalCommand),
}

#[derive(Debug, Subcommand)]
enum IdentifyCommand {
    /// Start a cleansing of the customer file (duplicates merged or queued for review, stale
    /// identifiers flagged) and wait for its job.
    Cleanse(jobs::CleanseArgs),
}

#[derive(Debug, Subcommand)]
enum CustomizeCommand {
    /// Retrain the recommender's neighbour lists and popularity tables, and wait for the job.
    Retrain(jobs::RetrainArgs),
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Leave-last-out HR@k and NDCG@k of the recommender on an interaction file, beside the
    /// popularity baseline of the same split.
    Recommendations(eval::EvalRecommendationsArgs),
}

#[derive(Debug, Subcommand)]
enum SegmentCommand {
    /// Start a rescoring of the whole customer base (models, CLV, tiers, clusters), follow
    /// its job until it ends and print its result; non-zero exit when it fails.
    Rescore(segment::RescoreArgs),
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Print a fitted model: parameters, log-likelihood, data window and holdout check.
    Show(segment::ShowModelArgs),
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Stream a CSV file of customers to the identification service and print what became
    /// of the rows.
    ///
    /// Each row is resolved like ResolveCustomer: linked to a customer, or created.
    /// Running the same import again resumes an interrupted one: rows already imported
    /// count as duplicates. Rejected rows are reported; the exit code is non-zero only
    /// when the import could not run.
    Customers(import::ImportCustomersArgs),
    /// Stream a CSV file of contacts to the interaction service and print what became of
    /// the rows.
    ///
    /// Each row is recorded like RecordInteraction, its request id made of the source and
    /// the row id: running the same import again resumes an interrupted one (rows already
    /// imported count as duplicates). Rejected rows are reported; the exit code is
    /// non-zero only when the import could not run.
    Interactions(import::interactions::ImportInteractionsArgs),
    /// Stream a CSV file of products to the customization service's catalog and print
    /// what became of the rows.
    ///
    /// Rows are matched by sku: a new sku creates a product, a known one is replaced by the
    /// row (its modules are kept). Running the same import again changes nothing (rows
    /// count as duplicates). Rejected rows are reported; the exit code is non-zero only
    /// when the import could not run.
    Products(import::products::ImportProductsArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Seed generated customers through ImportCustomers, then measure health checks,
    /// ResolveCustomer by exact email and ResolveCustomer by name, birth date and address
    /// at each concurrency, and print requests/s and latency percentiles.
    ///
    /// Seeding is idempotent: a re-run with the same --customers imports nothing new.
    Identification(bench::BenchIdentificationArgs),
    /// Create bench customers, then measure RecordInteraction at each concurrency and
    /// IngestInteractions rows/s beside a raw COPY of the same rows into the same table
    /// (rolled back; needs --database-url).
    Interaction(bench::interaction::BenchInteractionArgs),
    /// Seed products (one configurable), customers and their views, basket additions and
    /// purchases, wait until the recommender has learned them and time a retraining, then
    /// measure Recommend (from history, a viewed item, a basket) and ConfigureProduct at
    /// each concurrency beside health checks, and print requests/s and latency percentiles.
    ///
    /// Seeding is idempotent: a re-run with the same numbers adds nothing.
    Customization(bench::customization::BenchCustomizationArgs),
}

#[derive(Debug, Subcommand)]
enum ExportCommand {
    /// Write the duplicate clusters a cleansing job found as CSV, one line per member.
    Duplicates(export::ExportDuplicatesArgs),
}

fn settings_help() -> String {
    format!(
        "Settings (file keys, defaults and environment variables):\n\n{}",
        idic_platform::config::template::<IdicConfig>()
    )
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Commands that need no server configuration.
    match cli.command {
        Command::Config => {
            print!("{}", idic_platform::config::template::<IdicConfig>());
            return Ok(());
        }
        Command::Import(ImportCommand::Customers(args)) => return import::customers(args).await,
        Command::Import(ImportCommand::Interactions(args)) => return import::interactions::run(args).await,
        Command::Import(ImportCommand::Products(args)) => return import::products::run(args).await,
        Command::Export(ExportCommand::Duplicates(args)) => return export::duplicates(args).await,
        Command::Bench(BenchCommand::Identification(args)) => return bench::identification(args).await,
        Command::Bench(BenchCommand::Interaction(args)) => return bench::interaction::run(args).await,
        Command::Bench(BenchCommand::Customization(args)) => return bench::customization::run(args).await,
        Command::Segment(SegmentCommand::Rescore(args)) => return segment::rescore(args).await,
        Command::Models(ModelsCommand::Show(args)) => return segment::show_model(args).await,
        Command::Identify(IdentifyCommand::Cleanse(args)) => return jobs::cleanse(args).await,
        Command::Customize(CustomizeCommand::Retrain(args)) => return jobs::retrain(args).await,
        Command::Eval(EvalCommand::Recommendations(args)) => {
            return tokio::task::spawn_blocking(move || eval::recommendations(args)).await?;
        }
        _ => {}
    }
    let mut config: IdicConfig = idic_platform::config::load(cli.config.as_deref())?;
    idic_platform::telemetry::init(&config.telemetry)?;
    idic_platform::metrics::install(&config.telemetry.metrics_listen)?;
    match cli.command {
        Command::Config
        | Command::Import(_)
        | Command::Export(_)
        | Command::Bench(_)
        | Command::Segment(_)
        | Command::Models(_)
        | Command::Identify(_)
        | Command::Customize(_)
        | Command::Eval(_) => Ok(()),
        Command::Migrate { target } => {
            idic::migrate(&config, target).await?;
            println!("migrations applied for target {}", target.as_str());
            Ok(())
        }
        Command::Serve { target, listen, migrate } => {
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            if migrate {
                idic::migrate(&config, target).await?;
            }
            let listener = tokio::net::TcpListener::bind(config.server.listen)
                .await
                .map_err(|e| anyhow::anyhow!("server.listen {}: {e}", config.server.listen))?;
            // One line on stdout that scripts and tests wait for.
            println!("idic listening on {} (target {})", listener.local_addr()?, target.as_str());
            let shutdown = CancellationToken::new();
            let on_signal = shutdown.clone();
            tokio::spawn(async move {
                idic_platform::server::shutdown_signal().await;
                on_signal.cancel();
            });
            idic::serve(&config, target, listener, shutdown).await
        }
        Command::Demo => demo::run(config).await,
    }
}
