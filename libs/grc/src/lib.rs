//! GRC sync: the scope inventory and the evidence of PCI Scope Guard pushed
//! to the compliance platforms teams work in (Vanta, Drata, Secureframe),
//! each run recorded in `grc_syncs` and `audit_logs`.
//!
//! - [`model`]: pure. What is pushed: every system with its scope, rule and
//!   justification ([`ScopeItem`]) and the evidence records of the period
//!   ([`EvidenceItem`]), built from the store's rows or from a report JSON
//!   written by `analyze`/`demo` ([`psg_report::Analysis`]).
//! - [`http`]: the one HTTP client (rustls): timeouts, retries with
//!   exponential backoff on 5xx and timeouts, `429` waits `Retry-After`.
//! - [`vanta`], [`drata`], [`secureframe`]: the [`GrcProvider`]s, each
//!   speaking its platform's documented API.
//! - [`sync`]: the runner. Pushes, collects per-item errors, decides the
//!   status (`failed` only when nothing went through) and records the run.
//! - [`schedule`]: pure. When the continuous mode (`grc run`) syncs: a full
//!   sync when due, an incremental one on an interval tick after a change,
//!   and which consumed changes a completed sync covered.
//!
//! Secrets ([`psg_config::Secret`]) are never logged nor `Debug`-printed:
//! they go into request headers marked sensitive and nowhere else.

pub mod drata;
pub mod http;
pub mod model;
pub mod schedule;
pub mod secureframe;
pub mod sync;
pub mod vanta;

use std::path::PathBuf;

pub use http::RetryPolicy;
pub use model::{EvidenceItem, Inventory, ScopeItem};
pub use sync::{GrcProvider, ItemError, ProviderKind, Pushed, SyncStatus, SyncSummary, SyncType, run};

/// Errors of the GRC sync. A provider's refusal of one item is not an
/// error of the run: it is an [`ItemError`] in the summary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The provider answered with an error status (after retries, for 5xx and 429).
    #[error("{op}: {provider} answered HTTP {status}: {detail}")]
    Status { provider: ProviderKind, op: String, status: u16, detail: String },
    /// No answer: connection refused, TLS failure, timeout (after retries).
    #[error("{op}: no answer from {provider} at {url} after {attempts} attempts: {source}")]
    Transport {
        provider: ProviderKind,
        op: String,
        url: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    /// An answer this client cannot read.
    #[error("{op}: unexpected answer from {provider}: {detail}")]
    Response {
        provider: ProviderKind,
        op: String,
        detail: String,
        #[source]
        source: Option<serde_json::Error>,
    },
    /// A setting is missing or wrong.
    #[error("{provider}: {message}")]
    Config { provider: ProviderKind, message: String },
    /// The HTTP client could not be built (TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("report {}: {source}", path.display())]
    ReportRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("report {}: not a report written by analyze or demo: {source}", path.display())]
    ReportParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// Writing a bundle for upload by hand.
    #[error("bundle {}: {source}", path.display())]
    Bundle {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] psg_store::Error),
}

impl Error {
    /// The HTTP status, when the provider answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error for a required setting of `provider` that is not set, naming
/// its variable `env` and its config key (`PSG_GRC_VANTA_CLIENT_ID` →
/// `grc.vanta.client-id`).
pub(crate) fn missing_setting(provider: ProviderKind, what: &str, env: &str) -> Error {
    let key = env.splitn(4, '_').nth(3).unwrap_or(env).to_ascii_lowercase().replace('_', "-");
    Error::Config {
        provider,
        message: format!("{what} is not set: set {env} or grc.{}.{key} in the config file", provider.as_str()),
    }
}
