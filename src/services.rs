//! Starting services: configuration → store → topics → telemetry →
//! one [`psg_kafka_runtime::run`] loop per service → graceful shutdown on
//! SIGINT/SIGTERM.

use std::net::SocketAddr;

use psg_config::{Config, redact_url};
use psg_kafka_runtime::embedded::EmbeddedBroker;
use psg_kafka_runtime::runner::RunnerOptions;
use psg_kafka_runtime::topics::{self, TopicSpec};
use psg_kafka_runtime::{CancellationToken, Processor};
use psg_store::Store;
use psg_telemetry::Health;

use crate::error::CliError;

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

    fn dead_letter_topic(self, cfg: &Config) -> &str {
        match self {
            Self::Ingest | Self::Run => &cfg.topics.ingest_dlq,
            Self::Correlate => &cfg.topics.correlate_dlq,
            Self::Classify => &cfg.topics.classify_dlq,
            Self::Evidence => &cfg.topics.evidence_dlq,
        }
    }
}

fn runtime(e: impl std::fmt::Display) -> CliError {
    CliError::Runtime(e.to_string())
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

    if let Some(embedded) = &embedded {
        embedded.create_topics(&topic_specs(&cfg, kinds), cfg.kafka.partitions).map_err(runtime)?;
    } else if cfg.kafka.create_topics {
        topics::ensure(&cfg.kafka, &topic_specs(&cfg, kinds)).await.map_err(runtime)?;
    }

    let mut tasks = spawn_services(&cfg, kinds, &health, store, embedded.is_some(), None, &shutdown).await?;
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

/// Starts one runner task per service in `kinds`.
pub(crate) async fn spawn_services(
    cfg: &Config,
    kinds: &[ServiceKind],
    health: &Health,
    store: Option<Store>,
    embedded: bool,
    progress: Option<psg_kafka_runtime::Progress>,
    shutdown: &CancellationToken,
) -> Result<tokio::task::JoinSet<Result<(), CliError>>, CliError> {
    let mut tasks = tokio::task::JoinSet::new();
    for kind in kinds {
        let opts = RunnerOptions {
            progress: progress.clone(),
            ..RunnerOptions::new(&cfg.kafka, kind.name(), kind.dead_letter_topic(cfg), health.clone())
        };
        let (cfg2, store2, stop) = (cfg.clone(), store.clone(), shutdown.clone());
        match kind {
            ServiceKind::Ingest => {
                let mut p = psg_ingest::Ingest::new(cfg, store2).map_err(CliError::config_from)?;
                if !embedded {
                    let n =
                        psg_kafka_runtime::runner::partition_count(&cfg.kafka, &cfg.topics.flows_normalized, shutdown)
                            .await
                            .map_err(runtime)?;
                    p.set_output_partitions(n);
                }
                let opts = RunnerOptions { stream_topics: p.input_topics(), ..opts };
                tasks.spawn(run_one(cfg2, opts, p, stop));
            }
            ServiceKind::Correlate => {
                let p = psg_correlate::Correlate::new(cfg, store2);
                let opts = RunnerOptions { stream_topics: p.stream_topics(), table_topics: p.table_topics(), ..opts };
                tasks.spawn(run_one(cfg2, opts, p, stop));
            }
            ServiceKind::Classify => {
                let p = classify_processor(cfg, store2).await?;
                let opts = RunnerOptions { stream_topics: p.stream_topics(), table_topics: p.table_topics(), ..opts };
                tasks.spawn(run_one(cfg2, opts, p, stop));
            }
            ServiceKind::Evidence => {
                let p = evidence_processor(cfg, store2).await?;
                let opts = RunnerOptions { stream_topics: p.stream_topics(), table_topics: p.table_topics(), ..opts };
                tasks.spawn(run_one(cfg2, opts, p, stop));
            }
            ServiceKind::Run => {}
        }
    }

    Ok(tasks)
}

async fn run_one<P: Processor>(
    cfg: Config,
    opts: RunnerOptions,
    processor: P,
    stop: CancellationToken,
) -> Result<(), CliError> {
    psg_kafka_runtime::run(&cfg.kafka, opts, processor, stop).await.map_err(runtime)
}

/// The classify processor: its segmentation policy loaded, its state
/// restored from the database (if any).
pub(crate) async fn classify_processor(cfg: &Config, store: Option<Store>) -> Result<psg_classify::Classify, CliError> {
    let policy = match &cfg.classify.policy_file {
        Some(path) => {
            let p = psg_classify::policy::Policy::load(path).map_err(CliError::config_from)?;
            tracing::info!(policy = %path.display(), "segmentation policy loaded");
            Some(p)
        }
        None => None,
    };
    let mut p = psg_classify::Classify::with_policy(cfg, store, policy);
    p.restore().await.map_err(runtime)?;
    Ok(p)
}

/// The evidence processor: its signing key and store opened, its chains
/// restored from the database (if any).
pub(crate) async fn evidence_processor(cfg: &Config, store: Option<Store>) -> Result<psg_evidence::Evidence, CliError> {
    let mut p = evidence(cfg, store)?;
    p.restore().await.map_err(CliError::runtime_from)?;
    Ok(p)
}

fn evidence(cfg: &Config, store: Option<Store>) -> Result<psg_evidence::Evidence, CliError> {
    let key_path = cfg.evidence.signing_key.as_ref().ok_or_else(|| {
        CliError::Config(
            "the evidence service needs a signing key: create one with `pci-scope-guard keygen` and pass --signing-key FILE"
                .into(),
        )
    })?;
    let key = psg_evidence::keys::load_signing_key(key_path).map_err(|e| CliError::Config(e.to_string()))?;
    let sealer = psg_evidence::record::Sealer::new(key, cfg.evidence.generated_by.clone());
    let documents = psg_evidence::documents::Documents::open(&cfg.evidence.store_url)
        .map_err(|e| CliError::Config(e.to_string()))?;
    Ok(psg_evidence::Evidence::new(cfg, store, sealer, documents))
}

/// Every topic the given services read or write.
pub(crate) fn topic_specs(cfg: &Config, kinds: &[ServiceKind]) -> Vec<TopicSpec> {
    let t = &cfg.topics;
    let mut specs = Vec::new();
    for kind in kinds {
        let (streams, dlq): (Vec<&String>, &String) = match kind {
            ServiceKind::Ingest => (vec![&t.flowlogs_raw, &t.inventory_raw, &t.flows_normalized], &t.ingest_dlq),
            ServiceKind::Correlate => (vec![&t.flows_normalized, &t.flows_edges], &t.correlate_dlq),
            ServiceKind::Classify => (vec![&t.flows_edges, &t.scope_decisions, &t.scope_alerts], &t.classify_dlq),
            ServiceKind::Evidence => {
                (vec![&t.scope_decisions, &t.flows_edges, &t.evidence_requests, &t.evidence_records], &t.evidence_dlq)
            }
            ServiceKind::Run => (vec![], &t.ingest_dlq),
        };
        for s in streams.into_iter().chain([dlq]) {
            specs.push(TopicSpec::stream(s.clone()));
        }
        if matches!(kind, ServiceKind::Ingest | ServiceKind::Correlate | ServiceKind::Classify) {
            specs.push(TopicSpec::table(t.resources.clone()));
        }
        if matches!(kind, ServiceKind::Correlate | ServiceKind::Classify | ServiceKind::Evidence) {
            specs.push(TopicSpec::table(t.flows_coverage.clone()));
        }
        if *kind == ServiceKind::Evidence {
            specs.push(TopicSpec::table(t.evidence_checkpoints.clone()));
        }
        if *kind == ServiceKind::Classify {
            specs.push(TopicSpec::table(t.scope_manual.clone()));
            if let Some(ocsf) = &cfg.classify.ocsf_topic {
                specs.push(TopicSpec::stream(ocsf.clone()));
            }
        }
    }
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    specs.dedup();
    specs
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
