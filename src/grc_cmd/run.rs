//! `pci-scope-guard grc run`: the continuous GRC sync. A [`Follower`] runs
//! in the Kafka runtime every service runs (`psg_kafka_runtime::run`):
//!
//! - `process`: each message of `scope.decisions` and `evidence.records`
//!   is a change (its decision or evidence id); nothing is produced;
//! - `tick` (every fraction of `--interval`): [`psg_grc::schedule`]
//!   decides whether a sync is due — full when `--full-every` has passed
//!   since the last completed full sync, incremental on an interval tick
//!   when something changed — and the sync reads the scope and evidence
//!   from the database and pushes them through [`psg_grc::run`], which
//!   writes its `grc_syncs` and `audit_logs` rows;
//! - `held_offsets`: the offsets of changes no completed sync covered yet,
//!   so the runner commits nothing a sync has not pushed (a crash syncs
//!   again).
//!
//! A database error is a transient step failure (retried with backoff,
//! `/readyz` 503 meanwhile, no offset moves); a sync that got nothing
//! through is a `failed` row and is tried again an interval later.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Args;
use psg_config::{Config, Secret, Span, redact_url};
use psg_domain::{Evidence, ScopeDecision};
use psg_grc::drata::{Drata, DrataConfig};
use psg_grc::schedule::{Change, Changes, Decision, Reason, Schedule, Scheduler, Subject};
use psg_grc::secureframe::{Secureframe, SecureframeConfig};
use psg_grc::sync::Recording;
use psg_grc::vanta::{Vanta, VantaConfig};
use psg_grc::{GrcProvider, ProviderKind, RetryPolicy, SyncSummary, SyncType};
use psg_kafka_runtime::runner::RunnerOptions;
use psg_kafka_runtime::topics::{self, TopicSpec};
use psg_kafka_runtime::{CancellationToken, InMessage, Output, ProcessError, Processor};
use psg_store::Store;
use psg_telemetry::Health;
use uuid::Uuid;

use super::{ProviderArg, grc_error};
use crate::error::{CliError, runtime};

/// Default port of /metrics, /healthz, /readyz (the services use 9470–9474).
const DEFAULT_PORT: u16 = 9475;

/// `max.poll.interval.ms` of the follower's consumer unless configured: a
/// full sync may take long, and the consumer must not leave its group
/// meanwhile (librdkafka's default is 5 minutes).
const MAX_POLL_INTERVAL_MS: &str = "3600000";

/// `grc run` flags.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The GRC platform.
    #[arg(long, value_enum)]
    provider: ProviderArg,
    /// How often to look for changes and sync incrementally if there are any, e.g. 15m
    /// (default: grc.interval, 15m).
    #[arg(long, value_name = "SPAN")]
    interval: Option<Span>,
    /// A full sync at least this often, and at start when the last completed one is older,
    /// e.g. 24h (default: grc.full-every, 24h).
    #[arg(long, value_name = "SPAN")]
    full_every: Option<Span>,
    /// The provider's API root, e.g. an EU, APAC or Gov region (default: the provider's US root).
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Who runs it, for the audit log (default: grc-run/<provider>).
    #[arg(long, env = "PSG_USER", value_name = "USER")]
    user: Option<String>,
}

/// A step that may succeed when tried again (the database is back).
fn transient(e: impl std::fmt::Display) -> ProcessError {
    ProcessError::Transient(e.to_string())
}

/// `pci-scope-guard grc run`.
pub(crate) async fn run(mut cfg: Config, args: RunArgs) -> Result<(), CliError> {
    if let Some(i) = args.interval {
        cfg.grc.interval = i;
    }
    if let Some(f) = args.full_every {
        cfg.grc.full_every = f;
    }
    cfg.validate().map_err(|e| CliError::Config(e.to_string()))?;
    if cfg.database.url.is_none() {
        return Err(CliError::Config(
            "grc run reads the scope and evidence from the database: pass --database-url (DATABASE_URL)".into(),
        ));
    }
    if cfg.kafka.brokers.is_none() {
        return Err(CliError::Config(
            "grc run follows scope.decisions and evidence.records: pass --brokers (KAFKA_BROKERS)".into(),
        ));
    }
    let kind = args.provider.kind();
    let user = args.user.clone().unwrap_or_else(|| format!("grc-run/{}", kind.as_str()));
    let policy = RetryPolicy::from_config(&cfg.grc);
    let base = args.base_url.as_deref();
    // Settings are checked before connecting anywhere: a missing credential is exit 2.
    match kind {
        ProviderKind::Vanta => {
            let c = VantaConfig::from_settings(&cfg.grc.vanta, base).map_err(grc_error)?;
            follow(cfg, Vanta::new(c, policy).map_err(grc_error)?, user).await
        }
        ProviderKind::Drata => {
            let c = DrataConfig::from_settings(&cfg.grc.drata, base).map_err(grc_error)?;
            follow(cfg, Drata::new(c, policy).map_err(grc_error)?, user).await
        }
        ProviderKind::Secureframe => {
            let c = SecureframeConfig::from_settings(&cfg.grc.secureframe, base).map_err(grc_error)?;
            follow(cfg, Secureframe::new(c, policy).map_err(grc_error)?, user).await
        }
    }
}

/// Runs the follower of `provider` until SIGINT/SIGTERM or a fatal error.
async fn follow<P: GrcProvider + Send + 'static>(cfg: Config, provider: P, user: String) -> Result<(), CliError> {
    // The evidence store must open: the documents are read from it.
    psg_evidence::documents::Documents::configured(&cfg.evidence).map_err(|e| CliError::Config(e.to_string()))?;
    let kind = provider.kind();
    let service = format!("grc-{}", kind.as_str());
    let shutdown = CancellationToken::new();
    crate::services::spawn_signal_handler(shutdown.clone());

    let health = Health::new();
    let addr = cfg.telemetry.metrics_addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)));
    let bound = psg_telemetry::serve(addr, health.clone(), shutdown.clone()).await.map_err(|e| {
        CliError::Runtime(format!("{e} (another grc run on this host? pass --metrics-addr 127.0.0.1:0)"))
    })?;
    println!("{service}: metrics on http://{bound}/metrics");

    let url = cfg.database.url.as_ref().ok_or_else(|| CliError::Config("no database".into()))?;
    health.register("database");
    let store = Store::connect(url.expose(), cfg.database.pool_size.min(4))
        .await
        .map_err(|e| CliError::Runtime(format!("database {}: {e}", redact_url(url.expose()))))?;
    health.set_ready("database");

    let t = &cfg.topics;
    let inputs = vec![t.scope_decisions.clone(), t.evidence_records.clone()];
    if cfg.kafka.create_topics {
        let specs: Vec<TopicSpec> = inputs.iter().cloned().map(TopicSpec::stream).collect();
        topics::ensure(&cfg.kafka, &specs).await.map_err(runtime)?;
    }

    let schedule = Schedule { interval: cfg.grc.interval.as_duration(), full_every: cfg.grc.full_every.as_duration() };
    let last_full =
        psg_store::grc::last_completed_grc_sync_of_type(&store, kind.as_str(), "full").await.map_err(runtime)?;
    let last = psg_store::grc::last_completed_grc_sync(&store, kind.as_str()).await.map_err(runtime)?;
    let scheduler = Scheduler::new(schedule, last_full, last);
    tracing::info!(
        provider = kind.as_str(),
        interval = %cfg.grc.interval,
        full_every = %cfg.grc.full_every,
        last_full_sync = ?last_full,
        last_completed_sync = ?last,
        next_full_sync = %scheduler.next_full().map_or_else(|| "now".to_owned(), |t| t.to_rfc3339()),
        "GRC sync following {} and {}",
        t.scope_decisions,
        t.evidence_records
    );

    let mut kafka = cfg.kafka.clone();
    kafka.properties.entry("max.poll.interval.ms".into()).or_insert_with(|| Secret::new(MAX_POLL_INTERVAL_MS));
    // The runner wants a dead-letter topic; this service never dead-letters
    // (an unreadable message still says that something changed).
    let opts = RunnerOptions {
        stream_topics: inputs,
        ..RunnerOptions::new(&kafka, &service, &t.evidence_dlq, health.clone())
    };
    let follower = Follower {
        provider,
        kind,
        store,
        cfg: cfg.clone(),
        user,
        decisions_topic: t.scope_decisions.clone(),
        evidence_topic: t.evidence_records.clone(),
        scheduler,
        changes: Changes::default(),
    };
    let result = psg_kafka_runtime::run(&kafka, opts, follower, shutdown.clone()).await;
    shutdown.cancel();
    result.map_err(runtime)
}

/// The processor of `grc run`.
struct Follower<P> {
    provider: P,
    kind: ProviderKind,
    store: Store,
    cfg: Config,
    user: String,
    decisions_topic: String,
    evidence_topic: String,
    scheduler: Scheduler,
    changes: Changes,
}

impl<P> Follower<P> {
    /// What `msg` says changed.
    fn subject(&self, msg: &InMessage) -> Subject {
        let subject = if *msg.topic == *self.decisions_topic {
            psg_avro_codec::decode::<ScopeDecision>(msg.payload())
                .map_err(|e| e.to_string())
                .and_then(|d| Uuid::parse_str(&d.decision_id).map_err(|e| e.to_string()))
                .map(Subject::Decision)
        } else if *msg.topic == *self.evidence_topic {
            psg_avro_codec::decode::<Evidence>(msg.payload()).map_err(|e| e.to_string()).and_then(|e| {
                let id = Uuid::parse_str(&e.evidence_id).map_err(|e| e.to_string())?;
                Ok(Subject::Evidence(id, psg_domain::time::from_micros(e.generated_at)))
            })
        } else {
            Err(format!("not an input topic: {}", msg.topic))
        };
        subject.unwrap_or_else(|reason| {
            // Still a change: the next completed sync covers it.
            tracing::warn!(
                topic = %msg.topic,
                partition = msg.partition,
                offset = msg.offset,
                error = %reason,
                "unreadable message; counted as a change"
            );
            metrics::counter!("psg_grc_unreadable_messages_total", "topic" => msg.topic.to_string()).increment(1);
            Subject::Unknown
        })
    }

    fn provider_label(&self) -> &'static str {
        self.kind.as_str()
    }
}

impl<P: GrcProvider + Send + 'static> Follower<P> {
    /// Runs a sync of `sync_type`: the database read (the rows of the
    /// pending changes looked up first), the push, the `grc_syncs` row,
    /// and what it covered.
    async fn sync(&mut self, sync_type: SyncType, reason: Reason) -> Result<(), ProcessError> {
        let (decision_ids, evidence_ids) = self.changes.ids();
        let mut present: HashSet<Uuid> =
            psg_store::grc::existing_decisions(&self.store, &decision_ids).await.map_err(transient)?;
        if !evidence_ids.is_empty() {
            let lookup = psg_store::evidence::Lookup { records: evidence_ids, decisions: Vec::new() };
            present.extend(psg_store::evidence::existing(&self.store, &lookup).await.map_err(transient)?.records);
        }
        let since = match sync_type {
            SyncType::Full => None,
            SyncType::Incremental => self.changes.evidence_since(self.scheduler.last_completed()),
        };
        let inventory = super::database_inventory(&self.cfg, &self.store, since).await.map_err(transient)?;
        tracing::info!(
            provider = self.provider_label(),
            sync_type = sync_type.as_str(),
            reason = ?reason,
            changes = self.changes.len(),
            systems = inventory.systems.len(),
            evidence = inventory.evidence.len(),
            evidence_since = ?since,
            "GRC sync starting"
        );
        let clock = Instant::now();
        let recording = Recording { store: &self.store, user: &self.user };
        let summary =
            psg_grc::run(&mut self.provider, &inventory, sync_type, Some(recording)).await.map_err(transient)?;
        let completed = !summary.failed();
        self.scheduler.attempted(sync_type, summary.started_at, completed, Utc::now());
        self.record_metrics(&summary, clock.elapsed());
        if completed {
            let coverage = self.changes.completed(&present);
            for g in &coverage.given_up {
                tracing::warn!(
                    topic = %g.topic,
                    partition = g.partition,
                    offset = g.offset,
                    subject = ?g.subject,
                    "its row never reached this database (is classify/evidence writing to another one?); given up"
                );
            }
            metrics::counter!("psg_grc_changes_given_up_total", "provider" => self.provider_label())
                .increment(coverage.given_up.len() as u64);
            tracing::info!(
                provider = self.provider_label(),
                id = %summary.id,
                sync_type = sync_type.as_str(),
                resources_synced = summary.pushed.resources_synced,
                evidence_uploaded = summary.pushed.evidence_uploaded,
                errors = summary.pushed.errors.len(),
                changes_covered = coverage.covered,
                changes_waiting_for_their_row = coverage.waiting,
                elapsed_ms = clock.elapsed().as_millis() as u64,
                "GRC sync completed"
            );
        } else {
            tracing::error!(
                provider = self.provider_label(),
                id = %summary.id,
                sync_type = sync_type.as_str(),
                first_error = %summary.pushed.errors.first().map(|e| e.message.as_str()).unwrap_or("none"),
                retry_in = %Span::from_secs(self.scheduler.schedule().interval.as_secs()),
                "GRC sync failed: nothing went through"
            );
        }
        metrics::gauge!("psg_grc_changes_pending", "provider" => self.provider_label()).set(self.changes.len() as f64);
        Ok(())
    }

    fn record_metrics(&self, s: &SyncSummary, elapsed: Duration) {
        let (provider, sync_type) = (self.provider_label(), s.sync_type.as_str());
        metrics::counter!("psg_grc_syncs_total", "provider" => provider, "sync_type" => sync_type, "status" => s.status.as_str())
            .increment(1);
        metrics::counter!("psg_grc_resources_synced_total", "provider" => provider)
            .increment(s.pushed.resources_synced);
        metrics::counter!("psg_grc_evidence_uploaded_total", "provider" => provider)
            .increment(s.pushed.evidence_uploaded);
        metrics::counter!("psg_grc_item_errors_total", "provider" => provider).increment(s.pushed.errors.len() as u64);
        metrics::histogram!("psg_grc_sync_duration_seconds", "provider" => provider, "sync_type" => sync_type)
            .record(elapsed.as_secs_f64());
        if !s.failed() {
            metrics::gauge!("psg_grc_last_completed_sync_timestamp_seconds", "provider" => provider, "sync_type" => sync_type)
                .set(s.started_at.timestamp() as f64);
        }
    }
}

impl<P: GrcProvider + Send + 'static> Processor for Follower<P> {
    async fn process(&mut self, batch: &[InMessage]) -> Result<Output, ProcessError> {
        for msg in batch {
            let subject = self.subject(msg);
            self.changes.note(Change::new(msg.topic.to_string(), msg.partition, msg.offset, subject));
        }
        tracing::debug!(
            provider = self.provider_label(),
            messages = batch.len(),
            pending = self.changes.len(),
            "changes seen"
        );
        metrics::gauge!("psg_grc_changes_pending", "provider" => self.provider_label()).set(self.changes.len() as f64);
        Ok(Output::default())
    }

    /// The schedule is looked at this often (a tenth of the interval, 100 ms to 5 s).
    fn tick_interval(&self) -> Option<Duration> {
        let tenth = self.scheduler.schedule().interval / 10;
        Some(tenth.clamp(Duration::from_millis(100), Duration::from_secs(5)))
    }

    async fn tick(&mut self) -> Result<Output, ProcessError> {
        let now: DateTime<Utc> = Utc::now();
        match self.scheduler.decide(now, !self.changes.is_empty()) {
            Decision::Wait => {}
            Decision::NothingChanged => {
                tracing::debug!(provider = self.provider_label(), "nothing changed since the last sync");
                self.scheduler.nothing_changed(now);
            }
            Decision::Sync(sync_type) => {
                let reason = self.scheduler.reason(now);
                self.sync(sync_type, reason).await?;
            }
        }
        Ok(Output::default())
    }

    fn held_offsets(&self) -> Vec<(String, i32, i64)> {
        self.changes.held_offsets()
    }

    fn partitions_revoked(&mut self, partitions: &[(String, i32)]) {
        self.changes.forget(partitions);
    }
}
