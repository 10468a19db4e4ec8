//! `pci-scope-guard grc sync`: the scope inventory and the evidence records
//! of the period pushed once to Vanta, Drata or Secureframe (`psg-grc`),
//! read from the database or from a report written by `analyze`/`demo`; the
//! run recorded in `grc_syncs` and `audit_logs` when a database is given,
//! and always printed as a summary.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use psg_config::{Config, redact_url};
use psg_evidence::bundle::Manifest;
use psg_evidence::documents::Documents;
use psg_grc::drata::{Drata, DrataConfig};
use psg_grc::secureframe::{Secureframe, SecureframeConfig};
use psg_grc::sync::Recording;
use psg_grc::vanta::{Vanta, VantaConfig};
use psg_grc::{EvidenceItem, GrcProvider, Inventory, ProviderKind, RetryPolicy, SyncSummary, SyncType};
use psg_store::Store;

use crate::error::{CliError, runtime};

mod run;

/// What to do with GRC platforms.
#[derive(Debug, Subcommand)]
pub(crate) enum GrcAction {
    /// Push the scope inventory and evidence to Vanta, Drata or Secureframe once, and record the run.
    ///
    /// Reads every system with its scope, rule, justification, provider, type
    /// and segment, and the evidence records of the period, from the database
    /// (--database-url) or from a report (--report, with the evidence bundle
    /// beside it). Prints a summary; exits 1 when nothing went through. With a
    /// database the run is a grc_syncs row and an audit_logs row.
    ///
    /// Credentials come from the environment or the [grc] section of the
    /// config file, never from flags:
    ///   Vanta:       PSG_GRC_VANTA_CLIENT_ID, PSG_GRC_VANTA_CLIENT_SECRET,
    ///                PSG_GRC_VANTA_RESOURCE_ID (the custom resource type),
    ///                PSG_GRC_VANTA_DOCUMENT_ID (optional: evidence upload)
    ///   Drata:       PSG_GRC_DRATA_API_KEY, PSG_GRC_DRATA_CONNECTION_ID,
    ///                PSG_GRC_DRATA_RESOURCE_ID, PSG_GRC_DRATA_WORKSPACE_ID and
    ///                PSG_GRC_DRATA_CONTROL_IDS (optional: evidence)
    ///   Secureframe: PSG_GRC_SECUREFRAME_API_KEY, PSG_GRC_SECUREFRAME_API_SECRET,
    ///                PSG_GRC_SECUREFRAME_BUNDLE_DIR (evidence bundle for upload by hand)
    ///
    /// One run per invocation; `grc run` syncs continuously.
    #[command(
        verbatim_doc_comment,
        after_help = "Examples:\n  pci-scope-guard grc sync --provider vanta --full --database-url postgres://...\n  \
                      pci-scope-guard grc sync --provider drata --report ./demo-out/report.json\n  \
                      pci-scope-guard grc sync --provider drata --base-url https://public-api.eu.drata.com/public/v2 --database-url postgres://..."
    )]
    Sync(SyncArgs),
    /// Sync continuously: follow scope.decisions and evidence.records, sync incrementally
    /// after changes on an interval, and fully at least every --full-every.
    ///
    /// Reads scope and evidence from the database (which classify and evidence
    /// write); the topics only say that something changed. On every --interval
    /// tick: an incremental sync if anything changed since the last completed
    /// sync to this provider (or none ever completed). A full sync at start when
    /// the last completed full sync in grc_syncs is older than --full-every (or
    /// there is none), then every --full-every. Every run is a grc_syncs row
    /// (incremental/full) and an audit_logs row. Offsets are committed only once
    /// a completed sync covers their messages: a crash syncs again. Consumer
    /// group <group-prefix>-grc-<provider>; /metrics, /healthz, /readyz on
    /// --metrics-addr (default 127.0.0.1:9475); stops on SIGINT/SIGTERM after
    /// the sync in hand.
    ///
    /// Credentials as for `grc sync` (environment or the [grc] section).
    #[command(
        verbatim_doc_comment,
        after_help = "Example:\n  pci-scope-guard grc run --provider vanta --brokers kafka:9092 --database-url postgres://... --interval 15m --full-every 24h"
    )]
    Run(run::RunArgs),
}

/// The platforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProviderArg {
    Vanta,
    Drata,
    Secureframe,
}

impl ProviderArg {
    pub(crate) fn kind(self) -> ProviderKind {
        match self {
            Self::Vanta => ProviderKind::Vanta,
            Self::Drata => ProviderKind::Drata,
            Self::Secureframe => ProviderKind::Secureframe,
        }
    }
}

/// `grc sync` flags.
#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// The GRC platform.
    #[arg(long, value_enum)]
    provider: ProviderArg,
    /// Full sync: the complete set replaces what the platform holds (a system no longer sent
    /// is deleted) and the evidence of the whole period is offered. Without it: incremental
    /// (Vanta always receives the complete set: its API replaces the whole set).
    #[arg(long)]
    full: bool,
    /// The provider's API root, e.g. an EU, APAC or Gov region (default: the provider's US root).
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// A report from `analyze --output json` or `demo` (report.json) instead of the database.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// With --report: an evidence bundle (`evidence export`, or the demo's evidence/).
    /// Default: evidence/ beside the report, when it holds a manifest.json.
    #[arg(long, value_name = "DIR", requires = "report")]
    evidence_bundle: Option<PathBuf>,
    /// Evidence generated since TIME (RFC 3339 or a date). Default: a full sync all of it; an
    /// incremental one since the last completed sync to this provider in grc_syncs.
    #[arg(long, value_parser = crate::evidence_cmd::parse_time, value_name = "TIME")]
    since: Option<DateTime<Utc>>,
    #[command(flatten)]
    user: crate::operate::UserArg,
}

/// A [`psg_grc::Error`] of settings is a usage error (exit 2).
pub(crate) fn grc_error(e: psg_grc::Error) -> CliError {
    match e {
        psg_grc::Error::Config { .. } => CliError::Config(e.to_string()),
        other => CliError::Runtime(other.to_string()),
    }
}

/// Runs a `grc` action.
pub(crate) async fn execute(cfg: &Config, action: GrcAction) -> Result<(), CliError> {
    match action {
        GrcAction::Sync(args) => sync(cfg, args).await,
        GrcAction::Run(args) => run::run(cfg.clone(), args).await,
    }
}

async fn sync(cfg: &Config, args: SyncArgs) -> Result<(), CliError> {
    let kind = args.provider.kind();
    let sync_type = if args.full { SyncType::Full } else { SyncType::Incremental };
    if args.report.is_none() && cfg.database.url.is_none() {
        return Err(CliError::Config(
            "grc sync needs the scope: pass --report report.json, or --database-url (DATABASE_URL)".into(),
        ));
    }
    let store = match &cfg.database.url {
        Some(url) => Some(
            Store::connect(url.expose(), 2)
                .await
                .map_err(|e| CliError::Runtime(format!("database {}: {e}", redact_url(url.expose()))))?,
        ),
        None => None,
    };
    let since = match (args.since, sync_type, &store) {
        (Some(t), _, _) => Some(t),
        (None, SyncType::Incremental, Some(store)) => {
            psg_store::grc::last_completed_grc_sync(store, kind.as_str()).await.map_err(runtime)?
        }
        _ => None,
    };
    let inventory = match &args.report {
        Some(report) => {
            let mut inventory = Inventory::from_report_file(report).map_err(grc_error)?;
            let beside = report.parent().unwrap_or(Path::new(".")).join("evidence");
            let bundle =
                args.evidence_bundle.clone().or_else(|| beside.join("manifest.json").is_file().then_some(beside));
            if let Some(dir) = bundle {
                inventory.evidence = bundle_evidence(&dir, since)?;
            }
            inventory
        }
        None => {
            let store = store.as_ref().ok_or_else(|| CliError::Config("no database".into()))?;
            database_inventory(cfg, store, since).await?
        }
    };
    let user = args.user.user.clone().or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into());
    let recording = store.as_ref().map(|store| Recording { store, user: &user });
    let policy = RetryPolicy::from_config(&cfg.grc);
    let base = args.base_url.as_deref();
    let summary = match kind {
        ProviderKind::Vanta => {
            let c = VantaConfig::from_settings(&cfg.grc.vanta, base).map_err(grc_error)?;
            push(&mut Vanta::new(c, policy).map_err(grc_error)?, &inventory, sync_type, recording).await?
        }
        ProviderKind::Drata => {
            let c = DrataConfig::from_settings(&cfg.grc.drata, base).map_err(grc_error)?;
            push(&mut Drata::new(c, policy).map_err(grc_error)?, &inventory, sync_type, recording).await?
        }
        ProviderKind::Secureframe => {
            let c = SecureframeConfig::from_settings(&cfg.grc.secureframe, base).map_err(grc_error)?;
            push(&mut Secureframe::new(c, policy).map_err(grc_error)?, &inventory, sync_type, recording).await?
        }
    };
    println!("{summary}");
    if summary.failed() {
        return Err(CliError::Runtime(format!("the sync to {kind} failed: nothing went through")));
    }
    Ok(())
}

async fn push<P: GrcProvider>(
    provider: &mut P,
    inventory: &Inventory,
    sync_type: SyncType,
    recording: Option<Recording<'_>>,
) -> Result<SyncSummary, CliError> {
    psg_grc::run(provider, inventory, sync_type, recording).await.map_err(grc_error)
}

/// The records of a bundle generated since `since`, with their documents.
fn bundle_evidence(dir: &Path, since: Option<DateTime<Utc>>) -> Result<Vec<EvidenceItem>, CliError> {
    let path = dir.join("manifest.json");
    let text = std::fs::read(&path).map_err(|e| CliError::Runtime(format!("{}: {e}", path.display())))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| CliError::Runtime(format!("{}: not an evidence bundle manifest: {e}", path.display())))?;
    let mut items = Vec::with_capacity(manifest.records.len());
    for e in manifest.records {
        let generated = DateTime::parse_from_rfc3339(&e.generated_at).map(|t| t.with_timezone(&Utc)).ok();
        if let (Some(since), Some(at)) = (since, generated)
            && at < since
        {
            continue;
        }
        let document = std::fs::read(dir.join(&e.file)).ok();
        items.push(EvidenceItem {
            evidence_id: e.evidence_id,
            evidence_type: e.evidence_type,
            requirement: e.pci_requirement,
            generated_at: e.generated_at,
            hash: e.hash,
            chain: e.chain,
            sequence: e.sequence,
            document_path: e.file,
            document,
        });
    }
    Ok(items)
}

/// The database's current scope and the evidence records generated since
/// `since` (all of them when `None`), with their documents.
pub(crate) async fn database_inventory(
    cfg: &Config,
    store: &Store,
    since: Option<DateTime<Utc>>,
) -> Result<Inventory, CliError> {
    let mut inventory = Inventory::from_store(store).await.map_err(grc_error)?;
    inventory.evidence = stored_evidence(cfg, store, since).await?;
    Ok(inventory)
}

/// The stored records generated since `since`, with their documents from the evidence store.
async fn stored_evidence(
    cfg: &Config,
    store: &Store,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<EvidenceItem>, CliError> {
    let from = since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let to = Utc::now() + chrono::Duration::seconds(1);
    let rows = psg_store::evidence::records_between(store, from, to).await.map_err(runtime)?;
    let documents = Documents::configured(&cfg.evidence).map_err(|e| CliError::Config(e.to_string()))?;
    let mut items = Vec::with_capacity(rows.len());
    let mut reader = documents.reader();
    for row in &rows {
        let at = documents.record_location(row).map_err(runtime)?;
        let mut item = EvidenceItem::from_row(row, at.to_string());
        item.document = reader.get_record(row).await.map_err(runtime)?;
        items.push(item);
    }
    Ok(items)
}
