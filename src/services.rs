//! Starting services: configuration → store → topics → telemetry →
//! one [`psg_kafka_runtime::run`] loop per service → graceful shutdown on
//! SIGINT/SIGTERM.

use std::net::SocketAddr;

use psg_config::{Config, redact_url};
use psg_kafka_runtime::CancellationToken;
use psg_kafka_runtime::embedded::EmbeddedBroker;
use psg_kafka_runtime::runner::RunnerOptions;
use psg_kafka_runtime::topics;
use psg_service::{BuildFailure, Service};
use psg_store::Store;
use psg_telemetry::Health;

use crate::error::{CliError, runtime};

/// The services of the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServiceKind {
    Ingest,
    Correlate,
    Classify,
    Evidence,
    /// All four in one process.
    Run,
}

impl ServiceKind {
    pub(crate) const ALL: [ServiceKind; 4] = [Self::Ingest, Self::Correlate, Self::Classify, Self::Evidence];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Correlate => "correlate",
            Self::Classify => "classify",
            Self::Evidence => "evidence",
            Self::Run => "run",
        }
    }

    /// Default port of /metrics, /healthz, /readyz.
    fn default_port(self) -> u16 {
        match self {
            Self::Run => 9470,
            Self::Ingest => 9471,
            Self::Correlate => 9472,
            Self::Classify => 9473,
            Self::Evidence => 9474,
        }
    }
}

/// `pci-scope-guard migrate`.
pub(crate) async fn migrate(cfg: &Config) -> Result<(), CliError> {
    let url =
        cfg.database.url.as_ref().ok_or_else(|| {
            CliError::Config("migrate needs a database: pass --database-url or set DATABASE_URL".into())
        })?;
    let in_db = |e: psg_store::Error| CliError::Runtime(format!("database {}: {e}", redact_url(url.expose())));
    let pool = psg_store::pool(url.expose(), 1).map_err(in_db)?;
    let timescale = match cfg.storage.timescaledb {
        psg_config::TimescaleMode::Auto => psg_store::Timescale::Auto,
        psg_config::TimescaleMode::Required => psg_store::Timescale::Required,
        psg_config::TimescaleMode::Off => psg_store::Timescale::Off,
    };
    let s = &cfg.storage;
    let opts = psg_store::MigrateOptions {
        timescale,
        policies: psg_store::Policies {
            flows_chunk_days: s.flows_chunk_days,
            flows_compress_after_days: s.flows_compress_after_days,
            flows_retention_days: s.flows_retention_days,
            audit_retention_days: s.audit_retention_days,
        },
    };
    let report = psg_store::migrate_with(&pool, &opts).await.map_err(in_db)?;
    for p in &report.policies {
        println!("changed {p}");
    }
    if report.applied.is_empty() {
        println!(
            "schema is up to date at version {} ({} time partitioning); nothing changed",
            report.version, report.time_partitioning
        );
    } else {
        for m in &report.applied {
            println!("applied {m}");
        }
        println!("schema is at version {} ({} time partitioning)", report.version, report.time_partitioning);
    }
    Ok(())
}

/// Produces one record to `topic` and waits for its acknowledgement (for
/// operator commands).
pub(crate) async fn publish(cfg: &Config, topic: &str, key: &[u8], payload: Vec<u8>) -> Result<(), CliError> {
    if cfg.kafka.brokers.is_none() {
        return Err(CliError::Config("no brokers: pass --brokers or set KAFKA_BROKERS".into()));
    }
    let deliverer =
        psg_kafka_runtime::producer::Deliverer::new(&cfg.kafka, "cli", &cfg.topics.ingest_dlq).map_err(runtime)?;
    let output = psg_kafka_runtime::Output {
        records: vec![psg_kafka_runtime::OutRecord::new(topic, key, payload)],
        ..Default::default()
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), deliverer.deliver(&output))
        .await
        .map_err(|_| CliError::Runtime(format!("no acknowledgement from the brokers for {topic} within 30 s")))?
        .map_err(runtime)?;
    Ok(())
}

/// Runs `kinds` until SIGINT/SIGTERM or a fatal error.
pub(crate) async fn serve(
    mut cfg: Config,
    kinds: &[ServiceKind],
    process: Option<ServiceKind>,
) -> Result<(), CliError> {
    let process_kind = process.unwrap_or(kinds[0]);
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());

    // Embedded broker for `run` without brokers.
    let embedded = if cfg.kafka.brokers.is_none() && process_kind == ServiceKind::Run {
        let broker = EmbeddedBroker::start(1).map_err(runtime)?;
        let bootstrap = broker.bootstrap_servers();
        println!("embedded broker (in memory, for trying out only): {bootstrap}");
        tracing::info!(%bootstrap, "started the embedded broker");
        cfg.kafka.brokers = Some(bootstrap);
        Some(broker)
    } else {
        None
    };
    if cfg.kafka.brokers.is_none() {
        return Err(CliError::Config(
            "no brokers: pass --brokers or set KAFKA_BROKERS (only `run` starts an embedded broker)".into(),
        ));
    }

    let health = Health::new();
    let addr =
        cfg.telemetry.metrics_addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], process_kind.default_port())));
    let bound = psg_telemetry::serve(addr, health.clone(), shutdown.clone()).await.map_err(|e| {
        CliError::Runtime(format!("{e} (another service on this host? pass --metrics-addr 127.0.0.1:0)"))
    })?;
    println!("{}: metrics on http://{bound}/metrics", process_kind.name());

    let store = match &cfg.database.url {
        None => {
            tracing::warn!("no database configured: results go to topics and files only");
            None
        }
        Some(url) => {
            health.register("database");
            let store = Store::connect(url.expose(), cfg.database.pool_size)
                .await
                .map_err(|e| CliError::Runtime(format!("database {}: {e}", redact_url(url.expose()))))?;
            store.ensure_partitions_ahead(cfg.database.partitions_ahead_days).await.map_err(runtime)?;
            health.set_ready("database");
            tracing::info!(database = %redact_url(url.expose()), partitioning = ?store.partitioning(), "database connected");
            Some(store)
        }
    };

    let services = build_services(&cfg, kinds, store).await?;
    let specs = psg_service::topic_specs(&services.iter().map(|s| s.topics.clone()).collect::<Vec<_>>());
    if let Some(embedded) = &embedded {
        embedded.create_topics(&specs, cfg.kafka.partitions).map_err(runtime)?;
    } else if cfg.kafka.create_topics {
        topics::ensure(&cfg.kafka, &specs).await.map_err(runtime)?;
    }
    let mut tasks = spawn_services(&cfg, services, &health, None, &shutdown);
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(runtime).and_then(|r| r);
        if let Err(e) = result {
            tracing::error!(error = %e, "service failed; stopping the others");
            failure.get_or_insert(e);
            shutdown.cancel();
        }
    }
    shutdown.cancel();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A service built and ready to run: what it reads and writes, and how to
/// start its runner.
pub(crate) struct Built {
    pub topics: psg_service::Topics,
    start: Start,
}

type Task = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CliError>> + Send>>;

/// Starts a built service's runner: configuration, health, progress, stop.
type Start = Box<dyn FnOnce(&Config, &Health, Option<psg_kafka_runtime::Progress>, CancellationToken) -> Task + Send>;

/// Builds `S` from `cfg` and `store`: a configuration error exits with 2,
/// a failure to restore its state with 1.
pub(crate) async fn build<S: Service>(cfg: &Config, store: Option<Store>) -> Result<S, CliError> {
    S::build(cfg, store)
        .await
        .map_err(|e| if e.is_setting() { CliError::config_from(e) } else { CliError::runtime_from(e) })
}

/// `p`, ready to start: once started (its topics exist by then), it is
/// prepared ([`Service::prepare`]), then run.
fn ready<S: Service + 'static>(mut p: S) -> Built {
    Built {
        topics: p.topics(),
        start: Box::new(move |cfg, health, progress, stop| {
            let opts = RunnerOptions { progress, ..p.runner_options(cfg, health.clone()) };
            let cfg = cfg.clone();
            Box::pin(async move {
                p.prepare(&cfg, &stop).await.map_err(runtime)?;
                psg_kafka_runtime::run(&cfg.kafka, opts, p, stop).await.map_err(runtime)
            })
        }),
    }
}

/// Builds every service of `kinds` (the one place a kind becomes its type).
pub(crate) async fn build_services(
    cfg: &Config,
    kinds: &[ServiceKind],
    store: Option<Store>,
) -> Result<Vec<Built>, CliError> {
    let mut built = Vec::new();
    for kind in kinds {
        let store = store.clone();
        built.push(match kind {
            ServiceKind::Ingest => ready(build::<psg_ingest::Ingest>(cfg, store).await?),
            ServiceKind::Correlate => ready(build::<psg_correlate::Correlate>(cfg, store).await?),
            ServiceKind::Classify => ready(build::<psg_classify::Classify>(cfg, store).await?),
            ServiceKind::Evidence => ready(build::<psg_evidence::Evidence>(cfg, store).await?),
            ServiceKind::Run => continue,
        });
    }
    Ok(built)
}

/// Starts one runner task per built service.
pub(crate) fn spawn_services(
    cfg: &Config,
    services: Vec<Built>,
    health: &Health,
    progress: Option<psg_kafka_runtime::Progress>,
    shutdown: &CancellationToken,
) -> tokio::task::JoinSet<Result<(), CliError>> {
    let mut tasks = tokio::task::JoinSet::new();
    for s in services {
        tasks.spawn((s.start)(cfg, health, progress.clone(), shutdown.clone()));
    }
    tasks
}

pub(crate) fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        shutdown.cancel();
    });
}
