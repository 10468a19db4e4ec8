//! Telemetry shared by every service: structured logs ([`init_logging`]),
//! Prometheus metrics ([`metrics_handle`]) and the HTTP endpoints
//! `/metrics`, `/healthz` and `/readyz` ([`serve`], [`Health`]).
//!
//! Metric names follow `psg_<name>_<unit>` / `psg_<name>_total`, with labels
//! of bounded cardinality (service, topic, reason kind; never a resource id).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};
use psg_config::LogFormat;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Errors of starting telemetry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid log filter '{filter}': {reason}")]
    LogFilter { filter: String, reason: String },
    #[error("cannot listen for /metrics on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Installs the global log subscriber. `RUST_LOG`, when set, wins over `level`.
/// Calling it twice keeps the first subscriber.
pub fn init_logging(format: LogFormat, level: &str) -> Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => v,
        _ => level.to_owned(),
    };
    let env_filter =
        EnvFilter::try_new(&filter).map_err(|e| Error::LogFilter { filter: filter.clone(), reason: e.to_string() })?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(env_filter).with_writer(std::io::stderr).with_ansi(ansi);
    // try_init fails only when a subscriber is already installed (tests, `run`).
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    Ok(())
}

/// The process-wide Prometheus recorder (installed on first call).
pub fn metrics_handle() -> Result<PrometheusHandle> {
    // The outcome of the one installation, for every caller.
    static HANDLE: OnceLock<std::result::Result<PrometheusHandle, Arc<BuildError>>> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().map_err(Arc::new))
        .clone()
        .map_err(|e| Error::Metrics(e.to_string()))
}

/// Readiness of the components of a process: `/readyz` answers 200 only when
/// every registered component is ready; `/healthz` answers 200 unless a
/// component has failed for good.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<BTreeMap<String, ComponentState>>>,
}

/// State of one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentState {
    Starting,
    Ready,
    /// Waiting for a dependency (database down, ...): not ready, but alive,
    /// so an orchestrator does not restart it for someone else's outage.
    Degraded(String),
    /// Failed for good.
    Failed(String),
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `component` (not ready yet).
    pub fn register(&self, component: &str) {
        self.set(component, ComponentState::Starting);
    }

    pub fn set_ready(&self, component: &str) {
        self.set(component, ComponentState::Ready);
    }

    pub fn set_degraded(&self, component: &str, reason: impl Into<String>) {
        self.set(component, ComponentState::Degraded(reason.into()));
    }

    pub fn set_failed(&self, component: &str, reason: impl Into<String>) {
        self.set(component, ComponentState::Failed(reason.into()));
    }

    fn set(&self, component: &str, state: ComponentState) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(component.to_owned(), state);
    }

    /// Every component and its state.
    pub fn snapshot(&self) -> BTreeMap<String, ComponentState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_ready(&self) -> bool {
        let map = self.snapshot();
        !map.is_empty() && map.values().all(|s| *s == ComponentState::Ready)
    }

    pub fn is_live(&self) -> bool {
        self.snapshot().values().all(|s| !matches!(s, ComponentState::Failed(_)))
    }

    fn report(&self) -> String {
        self.snapshot()
            .iter()
            .map(|(name, state)| match state {
                ComponentState::Starting => format!("{name}: starting\n"),
                ComponentState::Ready => format!("{name}: ready\n"),
                ComponentState::Degraded(r) => format!("{name}: degraded: {r}\n"),
                ComponentState::Failed(r) => format!("{name}: failed: {r}\n"),
            })
            .collect()
    }
}

#[derive(Clone)]
struct AppState {
    metrics: PrometheusHandle,
    health: Health,
}

async fn metrics_endpoint(State(s): State<AppState>) -> String {
    s.metrics.render()
}

async fn healthz(State(s): State<AppState>) -> (StatusCode, String) {
    let code = if s.health.is_live() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, s.health.report())
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, String) {
    let code = if s.health.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, s.health.report())
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until `shutdown`
/// fires. Returns the bound address (useful with port 0).
pub async fn serve(addr: SocketAddr, health: Health, shutdown: CancellationToken) -> Result<SocketAddr> {
    let metrics = metrics_handle()?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
    let app = Router::new()
        .route("/metrics", get(metrics_endpoint))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, health });
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    tracing::info!(%bound, "serving /metrics, /healthz and /readyz");
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_every_component() {
        let h = Health::new();
        assert!(!h.is_ready(), "nothing registered is not ready");
        h.register("ingest");
        h.register("db");
        h.set_ready("ingest");
        assert!(!h.is_ready());
        h.set_ready("db");
        assert!(h.is_ready());
        assert!(h.is_live());
        h.set_degraded("db", "restarting");
        assert!(!h.is_ready());
        assert!(h.is_live(), "waiting for a dependency is not dead");
        h.set_failed("db", "gone");
        assert!(!h.is_live());
        assert!(h.report().contains("db: failed: gone"));
    }

    #[tokio::test]
    async fn endpoints_answer() {
        let h = Health::new();
        h.register("x");
        let stop = CancellationToken::new();
        let addr = serve("127.0.0.1:0".parse().unwrap(), h.clone(), stop.clone()).await.unwrap();
        metrics::counter!("psg_test_events_total").increment(1);
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        h.set_ready("x");
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/metrics").await.contains("psg_test_events_total"));
        stop.cancel();
    }
}
