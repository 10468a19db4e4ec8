//! The sync runner: one [`GrcProvider`] push, its per-item errors, the
//! status, the printed [`SyncSummary`], and with a database the run's
//! `grc_syncs` row (written `in_progress` first, so a crash leaves a trace)
//! and an `audit_logs` row.
//!
//! Status: `completed` when everything went through, and also when some
//! items failed but others went through (the errors are counted and listed
//! in `error_details`); `failed` only when nothing went through.

use std::fmt;
use std::future::Future;
use std::time::Instant;

use chrono::{DateTime, Utc};
use psg_domain::rows::GrcSyncRow;
use psg_store::Store;
use psg_store::grc::GrcSyncResult;
use psg_store::operator::AuditEntry;
use serde::Serialize;
use uuid::Uuid;

use crate::{Error, Inventory, Result};

/// The GRC platforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Vanta,
    Drata,
    Secureframe,
}

impl ProviderKind {
    pub const ALL: [Self; 3] = [Self::Vanta, Self::Drata, Self::Secureframe];

    /// The `grc_syncs.provider` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vanta => "vanta",
            Self::Drata => "drata",
            Self::Secureframe => "secureframe",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Vanta => "Vanta",
            Self::Drata => "Drata",
            Self::Secureframe => "Secureframe",
        })
    }
}

/// A text that names no GRC provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a GRC provider: use vanta, drata or secureframe")]
pub struct UnknownProvider(pub String);

impl std::str::FromStr for ProviderKind {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, UnknownProvider> {
        Self::ALL.into_iter().find(|p| p.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| UnknownProvider(s.to_owned()))
    }
}

/// `grc_syncs.sync_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncType {
    /// The complete set: what the platform holds and we no longer send is deleted.
    Full,
    /// Upserts only: nothing is deleted.
    Incremental,
}

impl SyncType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Incremental => "incremental",
        }
    }
}

/// `grc_syncs.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    Pending,
    InProgress,
    Completed,
    Failed,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// One item the provider did not take, for `error_details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemError {
    /// `systems`, `systems[0..100]`, `evidence <id>`, `token`, ...
    pub item: String,
    /// The call that failed (`PUT /v1/resources/custom_resource`).
    pub operation: String,
    /// The provider's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub message: String,
}

impl ItemError {
    pub fn new(item: impl Into<String>, operation: impl Into<String>, e: &Error) -> Self {
        Self { item: item.into(), operation: operation.into(), status: e.status(), message: e.to_string() }
    }
}

/// What a provider's push did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pushed {
    /// Systems the platform took.
    pub resources_synced: u64,
    /// Systems the platform deleted because we no longer send them, when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources_deleted: Option<u64>,
    /// Evidence documents uploaded now.
    pub evidence_uploaded: u64,
    /// Evidence documents the platform had already (an earlier run).
    pub evidence_skipped: u64,
    /// Evidence documents written to a bundle for upload by hand (not synced).
    pub evidence_bundled: u64,
    pub errors: Vec<ItemError>,
    /// What the operator must know: what was not pushed, and why.
    pub notes: Vec<String>,
    /// Provider-specific facts for `sync_metadata` (session id, bundle path).
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl Pushed {
    /// Whether anything went through.
    pub fn anything_through(&self) -> bool {
        self.resources_synced > 0
            || self.evidence_uploaded > 0
            || self.evidence_skipped > 0
            || self.resources_deleted.is_some_and(|d| d > 0)
    }
}

/// A GRC platform: pushes an inventory and tells what happened. A refused
/// item is an [`ItemError`] in [`Pushed::errors`], never a panic or an
/// early return that loses what went through.
pub trait GrcProvider {
    fn kind(&self) -> ProviderKind;

    /// Pushes `inventory` (the complete set of systems for a full sync).
    fn push(&mut self, inventory: &Inventory, sync_type: SyncType) -> impl Future<Output = Pushed> + Send;
}

/// The result of a run, as printed and as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncSummary {
    pub id: Uuid,
    pub provider: ProviderKind,
    pub sync_type: SyncType,
    pub status: SyncStatus,
    pub source: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
    pub resources_total: usize,
    pub evidence_total: usize,
    #[serde(flatten)]
    pub pushed: Pushed,
    /// Whether the run is in `grc_syncs`.
    pub recorded: bool,
}

impl SyncSummary {
    pub fn failed(&self) -> bool {
        self.status == SyncStatus::Failed
    }
}

impl fmt::Display for SyncSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.pushed;
        writeln!(
            f,
            "GRC sync {} to {} ({}): {}",
            self.id,
            self.provider,
            self.sync_type.as_str(),
            self.status.as_str()
        )?;
        writeln!(f, "  source      {}", self.source)?;
        let deleted = p.resources_deleted.map(|d| format!(", {d} deleted")).unwrap_or_default();
        writeln!(f, "  systems     {} of {} synced{deleted}", p.resources_synced, self.resources_total)?;
        let mut evidence = format!("{} of {} uploaded", p.evidence_uploaded, self.evidence_total);
        if p.evidence_skipped > 0 {
            evidence.push_str(&format!(", {} already there", p.evidence_skipped));
        }
        if p.evidence_bundled > 0 {
            evidence.push_str(&format!(", {} written to a bundle for upload by hand (not synced)", p.evidence_bundled));
        }
        writeln!(f, "  evidence    {evidence}")?;
        writeln!(f, "  errors      {}", p.errors.len())?;
        for e in &p.errors {
            writeln!(f, "    {}: {} — {}", e.item, e.operation, e.message)?;
        }
        for n in &p.notes {
            writeln!(f, "  note: {n}")?;
        }
        let secs = (self.completed_at - self.started_at).num_milliseconds() as f64 / 1000.0;
        write!(
            f,
            "  recorded    {}, {secs:.1}s",
            if self.recorded { "in grc_syncs and audit_logs" } else { "not recorded (no database)" }
        )
    }
}

/// Where a run is recorded, and who ran it.
#[derive(Debug, Clone, Copy)]
pub struct Recording<'a> {
    pub store: &'a Store,
    /// For `audit_logs`.
    pub user: &'a str,
}

/// Runs one sync: records its start, pushes, records its end.
pub async fn run<P: GrcProvider>(
    provider: &mut P,
    inventory: &Inventory,
    sync_type: SyncType,
    recording: Option<Recording<'_>>,
) -> Result<SyncSummary> {
    let id = Uuid::new_v4();
    let kind = provider.kind();
    let started_at = Utc::now();
    let clock = Instant::now();
    let base_metadata = serde_json::json!({
        "source": inventory.source,
        "as_of": inventory.as_of,
        "resources_total": inventory.systems.len(),
        "evidence_total": inventory.evidence.len(),
    });
    if let Some(r) = recording {
        psg_store::grc::insert_grc_sync(
            r.store,
            &GrcSyncRow {
                id,
                provider: kind.as_str().to_owned(),
                sync_type: sync_type.as_str().to_owned(),
                status: SyncStatus::InProgress.as_str().to_owned(),
                started_at,
                completed_at: None,
                resources_synced: 0,
                errors_count: 0,
                error_details: serde_json::json!([]),
                sync_metadata: base_metadata.clone(),
            },
        )
        .await?;
    }
    let pushed = provider.push(inventory, sync_type).await;
    let status =
        if pushed.errors.is_empty() || pushed.anything_through() { SyncStatus::Completed } else { SyncStatus::Failed };
    let summary = SyncSummary {
        id,
        provider: kind,
        sync_type,
        status,
        source: inventory.source.clone(),
        started_at,
        completed_at: Utc::now(),
        resources_total: inventory.systems.len(),
        evidence_total: inventory.evidence.len(),
        pushed,
        recorded: recording.is_some(),
    };
    tracing::info!(
        provider = kind.as_str(),
        status = status.as_str(),
        errors = summary.pushed.errors.len(),
        "GRC sync done"
    );
    if let Some(r) = recording {
        let mut metadata = base_metadata.as_object().cloned().unwrap_or_default();
        metadata.extend(summary.pushed.metadata.clone());
        metadata.insert("evidence_uploaded".into(), summary.pushed.evidence_uploaded.into());
        metadata.insert("evidence_skipped".into(), summary.pushed.evidence_skipped.into());
        metadata.insert("evidence_bundled".into(), summary.pushed.evidence_bundled.into());
        if let Some(d) = summary.pushed.resources_deleted {
            metadata.insert("resources_deleted".into(), d.into());
        }
        metadata.insert("notes".into(), serde_json::json!(summary.pushed.notes));
        let error_details = serde_json::to_value(&summary.pushed.errors).unwrap_or_else(|_| serde_json::json!([]));
        psg_store::grc::finish_grc_sync(
            r.store,
            id,
            &GrcSyncResult {
                status: status.as_str().to_owned(),
                completed_at: summary.completed_at,
                resources_synced: i32::try_from(summary.pushed.resources_synced).unwrap_or(i32::MAX),
                errors_count: i32::try_from(summary.pushed.errors.len()).unwrap_or(i32::MAX),
                error_details,
                sync_metadata: serde_json::Value::Object(metadata),
            },
        )
        .await?;
        psg_store::operator::audit(
            r.store,
            &AuditEntry {
                user: r.user.to_owned(),
                action: "grc.sync".into(),
                resource_type: Some("grc_sync".into()),
                resource_id: Some(id.to_string()),
                request: serde_json::json!({
                    "provider": kind.as_str(),
                    "sync_type": sync_type.as_str(),
                    "source": inventory.source,
                }),
                response: Some(serde_json::json!({
                    "status": status.as_str(),
                    "resources_synced": summary.pushed.resources_synced,
                    "evidence_uploaded": summary.pushed.evidence_uploaded,
                    "errors": summary.pushed.errors.len(),
                })),
                success: status == SyncStatus::Completed,
                error: summary.pushed.errors.first().map(|e| format!("{}: {}", e.item, e.message)),
                duration_ms: i32::try_from(clock.elapsed().as_millis()).unwrap_or(i32::MAX),
                request_id: id.to_string(),
            },
        )
        .await?;
    }
    Ok(summary)
}
