//! PCI Scope Guard configuration: one serde tree.
//!
//! Layers, later ones win:
//! 1. defaults (the `Default` impls below),
//! 2. a TOML file (`--config FILE`),
//! 3. environment variables `PSG_<SECTION>__<KEY>` (`__` nests, `_` stands
//!    for `-`), e.g. `PSG_KAFKA__BATCH_SIZE=5000`,
//! 4. command-line flags (`--brokers`/`KAFKA_BROKERS`,
//!    `--database-url`/`DATABASE_URL`, `-X key=value`, ...), which the binary
//!    passes in as [`Overrides`].
//!
//! Unknown keys are rejected with a message that names them; contradictory
//! settings are rejected by [`Config::validate`]. Secrets ([`Secret`]) never
//! print.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod grc;
mod secret;

pub use grc::{BadSpan, DrataSettings, GrcConfig, SecureframeSettings, Span, VantaSettings};
pub use secret::{Secret, is_secret_property, redact_url};
use secret::{percent_encode, url_param};

/// How far a flow window's flows may lie from the window's start, at most
/// (`correlate.window-secs + correlate.match-tolerance-secs`, which the
/// configuration keeps within it): a `data_flows` row whose `last_seen` is
/// at `t` was observed (its window began) at `t - MAX_WINDOW_REACH_SECS`
/// or later. Readers bound their scans of `observed_at` with it.
pub const MAX_WINDOW_REACH_SECS: u64 = 86_400;

/// Errors of loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration: {0}")]
    Invalid(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Config {
    /// Kafka connection and consumer/producer behaviour.
    pub kafka: KafkaConfig,
    /// Topic names.
    pub topics: Topics,
    /// `[storage]`: how results are stored.
    pub storage: StorageConfig,
    /// PostgreSQL / TimescaleDB.
    pub database: DatabaseConfig,
    /// Logs, metrics and health endpoints.
    pub telemetry: TelemetryConfig,
    /// The ingest service.
    pub ingest: IngestConfig,
    /// The correlate service.
    pub correlate: CorrelateConfig,
    /// The classify service.
    pub classify: ClassifyConfig,
    /// The evidence service.
    pub evidence: EvidenceConfig,
    /// `[grc]`: `grc sync` to Vanta, Drata and Secureframe.
    pub grc: GrcConfig,
}

/// Kafka connection and the shared consume → process → produce loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (`--brokers`, `KAFKA_BROKERS`).
    /// Unset: `run` starts an embedded broker (librdkafka's mock cluster).
    pub brokers: Option<String>,
    /// Consumer groups are `<group-prefix>-<service>`.
    pub group_prefix: String,
    /// A batch is processed when it holds this many messages ...
    pub batch_size: usize,
    /// ... or when its first message has waited this long.
    pub batch_linger_ms: u64,
    /// Create missing topics at start (partitions and replication below).
    pub create_topics: bool,
    /// Partitions of topics this program creates.
    pub partitions: i32,
    /// Replication factor of topics this program creates.
    pub replication_factor: i32,
    /// How long shutdown waits for in-flight deliveries and the final commit.
    pub shutdown_grace_ms: u64,
    /// Static group membership (`group.instance.id`, KIP-345): a stable name
    /// for this instance (`--instance-id`, e.g. the pod name of a
    /// StatefulSet), unique among the instances of each service. An instance
    /// that restarts within the session timeout gets its partitions back at
    /// once, without a rebalance of the group; one that stops is replaced only
    /// after the session timeout, which is then 30 s instead of 10 s unless
    /// `session.timeout.ms` is set. Unset: dynamic membership.
    pub instance_id: Option<String>,
    /// Any librdkafka property, passed through as is (TLS, SASL, timeouts):
    /// e.g. `"security.protocol" = "SASL_SSL"`.
    pub properties: BTreeMap<String, Secret>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: None,
            group_prefix: "pci-scope-guard".into(),
            batch_size: 1000,
            batch_linger_ms: 20,
            create_topics: true,
            partitions: 3,
            replication_factor: 1,
            shutdown_grace_ms: 8000,
            instance_id: None,
            properties: BTreeMap::new(),
        }
    }
}

/// `[storage]`: how results are stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Whether `migrate` makes `data_flows` and `audit_logs` TimescaleDB
    /// hypertables when it creates the schema.
    pub timescaledb: TimescaleMode,
    /// TimescaleDB: length of a `data_flows` chunk, in days (new chunks).
    pub flows_chunk_days: u32,
    /// TimescaleDB: `data_flows` chunks are compressed once this many days old.
    pub flows_compress_after_days: u32,
    /// TimescaleDB: `data_flows` chunks are dropped once this many days old
    /// (retention policy). Shorter than `audit-retention-days`.
    pub flows_retention_days: u32,
    /// TimescaleDB: `audit_logs` chunks are dropped once this many days old
    /// (default 7 years, as evidence). Evidence is never dropped by a policy.
    pub audit_retention_days: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            timescaledb: TimescaleMode::Auto,
            flows_chunk_days: 1,
            flows_compress_after_days: 7,
            flows_retention_days: 400,
            audit_retention_days: 2557,
        }
    }
}

/// `storage.timescaledb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimescaleMode {
    /// TimescaleDB when the server has it preloaded; otherwise native
    /// partitions, with a warning that says how to enable it.
    #[default]
    Auto,
    /// TimescaleDB, or `migrate` fails saying how to enable it.
    Required,
    /// Native partitions.
    Off,
}

/// Topic names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Topics {
    /// Raw flow logs from shippers (input of ingest).
    pub flowlogs_raw: String,
    /// Raw inventory events (input of ingest).
    pub inventory_raw: String,
    /// Normalized FlowRecords (ingest → correlate).
    pub flows_normalized: String,
    /// Resources, compacted by resource id (ingest → correlate, classify).
    pub resources: String,
    /// Resource-to-resource FlowEdges (correlate → classify).
    pub flows_edges: String,
    /// Flow-log coverage per unit and input partition (correlate →
    /// classify), compacted by `unit|partition`.
    pub flows_coverage: String,
    /// ScopeDecisions (classify → evidence, SIEM).
    pub scope_decisions: String,
    /// Alerts (classify → on-call, SIEM).
    pub scope_alerts: String,
    /// Manual decisions (operator → classify), compacted by resource id.
    pub scope_manual: String,
    /// Signed Evidence records (evidence → SIEM, GRC).
    pub evidence_records: String,
    /// On-demand evidence requests (operator → evidence).
    pub evidence_requests: String,
    /// Signed checkpoints of the evidence log (evidence → assessors,
    /// witnesses), compacted by log origin: the newest tree head.
    pub evidence_checkpoints: String,
    /// Dead letters of each service: the original bytes plus the reason in headers.
    pub ingest_dlq: String,
    pub correlate_dlq: String,
    pub classify_dlq: String,
    pub evidence_dlq: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self {
            flowlogs_raw: "flowlogs.raw".into(),
            inventory_raw: "inventory.raw".into(),
            flows_normalized: "flows.normalized".into(),
            resources: "resources".into(),
            flows_edges: "flows.edges".into(),
            flows_coverage: "flows.coverage".into(),
            scope_decisions: "scope.decisions".into(),
            scope_alerts: "scope.alerts".into(),
            scope_manual: "scope.manual".into(),
            evidence_records: "evidence.records".into(),
            evidence_requests: "evidence.requests".into(),
            evidence_checkpoints: "evidence.checkpoints".into(),
            ingest_dlq: "ingest.dlq".into(),
            correlate_dlq: "correlate.dlq".into(),
            classify_dlq: "classify.dlq".into(),
            evidence_dlq: "evidence.dlq".into(),
        }
    }
}

/// libpq's `sslmode`: how a database connection uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// As `prefer` (TLS when the server offers it).
    Allow,
    /// TLS when the server offers it (libpq's default).
    Prefer,
    /// Always TLS; the certificate is verified only when a CA file is given.
    Require,
    /// Always TLS, the certificate chain verified (CA file, else the system's roots).
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    /// libpq's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not an [`SslMode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an sslmode: use disable, allow, prefer, require, verify-ca or verify-full")]
pub struct BadSslMode(pub String);

impl std::str::FromStr for SslMode {
    type Err = BadSslMode;

    fn from_str(s: &str) -> Result<Self, BadSslMode> {
        [Self::Disable, Self::Allow, Self::Prefer, Self::Require, Self::VerifyCa, Self::VerifyFull]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| BadSslMode(s.to_owned()))
    }
}

/// PostgreSQL / TimescaleDB.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/db` (`--database-url`, `DATABASE_URL`).
    /// Unset: results go to topics and files only. libpq's TLS parameters
    /// (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) may be in the URL; the
    /// keys below are added to it as those parameters.
    pub url: Option<Secret>,
    /// Connections in the pool of each service.
    pub pool_size: usize,
    /// Daily partitions of `data_flows`/`audit_logs` created ahead of today
    /// (native partitioning only; TimescaleDB manages its own chunks).
    pub partitions_ahead_days: u32,
    /// TLS to the database (libpq's `sslmode`). Unset: the URL's, else `prefer`.
    pub ssl_mode: Option<SslMode>,
    /// PEM file of the CA certificates trusted for the server's certificate
    /// (libpq's `sslrootcert`). With it, `prefer` and `require` verify the
    /// chain too. Unset: `verify-ca` and `verify-full` trust the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS (libpq's `sslcert`).
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM; mode 0600, or 0640 when
    /// root owns it) (libpq's `sslkey`).
    pub client_key: Option<PathBuf>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 4,
            partitions_ahead_days: 3,
            ssl_mode: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
        }
    }
}

impl DatabaseConfig {
    /// The TLS keys as libpq URL parameters: (parameter, value, key name).
    fn tls_params(&self) -> Vec<(&'static str, String, &'static str)> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        [
            ("sslmode", self.ssl_mode.map(|m| m.as_str().to_owned()), "database.ssl-mode"),
            ("sslrootcert", path(&self.ca_file), "database.ca-file"),
            ("sslcert", path(&self.client_cert), "database.client-cert"),
            ("sslkey", path(&self.client_key), "database.client-key"),
        ]
        .into_iter()
        .filter_map(|(param, value, key)| value.map(|v| (param, v, key)))
        .collect()
    }

    /// Contradictions between the TLS keys and the URL's own parameters.
    fn tls_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let url = self.url.as_ref().map(|u| u.expose().to_owned()).unwrap_or_default();
        for (param, value, key) in self.tls_params() {
            if let Some(in_url) = url_param(&url, param).filter(|v| *v != value) {
                problems.push(format!("{key} ({value}) contradicts {param}={in_url} in database.url"));
            }
        }
        if let Some(mode) = url_param(&url, "sslmode")
            && let Err(e) = mode.parse::<SslMode>()
        {
            problems.push(format!("database.url: {e}"));
        }
        let cert = self.client_cert.is_some() || url_param(&url, "sslcert").is_some();
        let key = self.client_key.is_some() || url_param(&url, "sslkey").is_some();
        if cert != key {
            problems
                .push("database.client-cert and database.client-key go together (mutual TLS needs both)".to_owned());
        }
        if self.ssl_mode == Some(SslMode::Disable) && (self.ca_file.is_some() || self.client_cert.is_some()) {
            problems.push("database.ssl-mode is disable, but a CA file or client certificate is configured".to_owned());
        }
        for (path, key) in [
            (&self.ca_file, "database.ca-file"),
            (&self.client_cert, "database.client-cert"),
            (&self.client_key, "database.client-key"),
        ] {
            if let Some(p) = path.as_ref().filter(|p| !p.is_file()) {
                problems.push(format!("{key} {} does not exist or is not a file", p.display()));
            }
        }
        problems
    }

    /// The URL the store connects with: `url` plus the TLS keys as libpq
    /// parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`), each
    /// added unless the URL has it already.
    pub fn connection_url(&self) -> Option<Secret> {
        let url = self.url.as_ref()?.expose();
        let mut out = url.to_owned();
        for (param, value, _) in self.tls_params() {
            if url_param(url, param).is_none() {
                out.push(if out.contains('?') { '&' } else { '?' });
                out.push_str(param);
                out.push('=');
                out.push_str(&percent_encode(&value));
            }
        }
        Some(Secret::new(out))
    }
}

/// Whether evidence written to S3 is locked (S3 Object Lock, compliance
/// mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectLock {
    /// Lock when the bucket has Object Lock enabled; otherwise write
    /// unlocked and say so at start.
    #[default]
    Auto,
    /// Lock; refuse to start when the bucket has no Object Lock.
    Required,
    /// Never lock.
    Off,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logs, metrics and health endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Address of `/metrics`, `/healthz`, `/readyz`. Unset: each service's
    /// default port (ingest 9471, correlate 9472, classify 9473,
    /// evidence 9474, run 9470) on 127.0.0.1.
    pub metrics_addr: Option<SocketAddr>,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// A tracing filter: `info`, `debug`, `psg_ingest=debug,info`, ...
    pub log_level: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { metrics_addr: None, log_format: LogFormat::Text, log_level: "info".into() }
    }
}

/// The ingest service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest payload accepted after decompression; a larger one is dead-lettered.
    pub max_message_bytes: usize,
    /// Field layout of headerless AWS flow-log lines (e.g. the format string of a
    /// CloudWatch Logs subscription), space separated. Unset: AWS's default format.
    pub aws_format: Option<String>,
    /// Per-topic AWS layouts, overriding `aws-format`: `{ "flowlogs.vpc2" = "version vpc-id ..." }`.
    pub aws_formats: BTreeMap<String, String>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self { max_message_bytes: 64 * 1024 * 1024, aws_format: None, aws_formats: BTreeMap::new() }
    }
}

/// The correlate service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct CorrelateConfig {
    /// Length of the event-time tumbling windows that condense flows into edges.
    pub window_secs: u64,
    /// A window closes when the watermark (highest event time seen minus this)
    /// passes its end.
    pub allowed_lateness_secs: u64,
    /// A flow with an internal address that no resource holds yet waits this
    /// long (event time) for its inventory before it is attributed to an
    /// unknown host. At most `allowed-lateness-secs`.
    pub hold_back_secs: u64,
    /// An input partition that has received no flow for this long (wall
    /// clock) is idle: its event time then advances with processing time,
    /// so its windows close, their edges are final and its offsets are
    /// committed, as stream processors do for idle sources. Flows that arrive
    /// afterwards with older event times count as late edges. 0: never.
    pub idle_timeout_secs: u64,
    /// How far apart (event time) the two ends' reports of one connection
    /// may be and still be matched: a `REJECT` at one end blocks an
    /// `ACCEPT` of the same connection at the other within it, in either
    /// order. The ends capture independently, so this is the flow logs'
    /// aggregation interval (AWS: 600 by default, 60 if configured; Azure
    /// and GCP: 60). Memory: a 16-byte hash per accepted connection of the
    /// last `match-tolerance-secs + allowed-lateness-secs` of event time.
    pub match_tolerance_secs: u64,
    /// Flow-log coverage: a unit (interface, subnet, ...) silent for longer
    /// than this between two of its records has a gap. AWS delivers a
    /// record (`NODATA` when idle) per interface per aggregation interval.
    pub coverage_gap_secs: u64,
    /// How often, in event time, a unit's coverage is published again while
    /// its records keep coming (it is published at once when first seen, when
    /// a gap ends and when a new kind of record appears).
    pub coverage_report_secs: u64,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        Self {
            window_secs: 60,
            allowed_lateness_secs: 120,
            hold_back_secs: 60,
            idle_timeout_secs: 60,
            match_tolerance_secs: 600,
            coverage_gap_secs: 3_600,
            coverage_report_secs: 900,
        }
    }
}

/// The classify service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ClassifyConfig {
    /// Tag holding the declared scope (`cde`, `connected-cde`, `out-of-scope`).
    pub scope_tag_key: String,
    /// Tag holding the data classification (`stores-cardholder`, ...).
    pub data_tag_key: String,
    /// Edges older than this (event time) no longer connect anything.
    pub lookback_days: u32,
    /// Segmentation policy (YAML, see deploy/policy.example.yaml). With one,
    /// every ACCEPTed flow touching the CDE that no allow rule matches is a
    /// segmentation violation.
    pub policy_file: Option<PathBuf>,
    /// Also publish alerts as OCSF Detection Finding JSON on this topic (for SIEMs).
    pub ocsf_topic: Option<String>,
    /// Event time after the first flow record before missing flow-log
    /// coverage is judged (a declared out-of-scope system without it goes to
    /// `pending-review`, a VPC or subnet without it raises `coverage_gap`):
    /// flow logs of different VPCs arrive on different partitions, not at
    /// once. 0: judge at once.
    pub coverage_grace_minutes: u32,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        Self {
            scope_tag_key: "pci-scope".into(),
            data_tag_key: "pci-data".into(),
            lookback_days: 90,
            policy_file: None,
            ocsf_topic: None,
            coverage_grace_minutes: 60,
        }
    }
}

/// The evidence service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// Ed25519 private key (PKCS#8 PEM, written by `pci-scope-guard keygen`);
    /// refused if readable by group or others.
    pub signing_key: Option<PathBuf>,
    /// Where evidence documents go: a plain directory, `file:///path`, or
    /// `s3://bucket[/prefix]` (S3 or an S3-compatible server; connection
    /// and credentials from the standard `AWS_*` environment variables).
    pub store_url: String,
    /// S3 Object Lock of records' documents and checkpoints (compliance
    /// mode, retained until the record expires): `auto` locks when the
    /// bucket has Object Lock enabled, `required` refuses to start when it
    /// has not, `off` never locks. Ignored for a local directory.
    pub object_lock: ObjectLock,
    /// `generated_by` of every record.
    pub generated_by: String,
    /// Length of the periodic reports' period, in seconds of event time
    /// (periods align to the Unix epoch: 86400 = UTC days).
    pub period_secs: u64,
    /// How long after a period ends (event time) its reports are made, so
    /// that late flows and their windows are in the database.
    pub grace_secs: u64,
    /// Public keys (files, or directories of `*.pub`) trusted besides the
    /// signing key's: keys retired by a rotation.
    pub keyring: Vec<PathBuf>,
    /// The evidence log's origin: the first line of its checkpoints and
    /// the name of their signing key (a schema-less URL, e.g.
    /// `payments.example.com/pci-scope-guard/evidence`). Unset: the origin
    /// the log already has, else `pci-scope-guard/evidence/<key id prefix>`.
    pub log_origin: Option<String>,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            signing_key: None,
            store_url: "./evidence-store".into(),
            object_lock: ObjectLock::Auto,
            generated_by: "pci-scope-guard/evidence".into(),
            period_secs: 86_400,
            grace_secs: 3_600,
            keyring: Vec::new(),
            log_origin: None,
        }
    }
}

/// An environment key (lower case, without `PSG_`) as a configuration key
/// path: `kafka__batch_size` is `kafka.batch-size`; the GRC credentials
/// also go by a single underscore, `grc_vanta_client_id` is
/// `grc.vanta.client-id`.
fn env_key(key: &str) -> String {
    let key = key.to_ascii_lowercase();
    if let Some(rest) = key.strip_prefix("grc_").filter(|r| !r.starts_with('_'))
        && let Some((provider, setting)) = rest.split_once('_')
        && ["vanta", "drata", "secureframe"].contains(&provider)
    {
        return format!("grc.{provider}.{}", setting.replace("__", ".").replace('_', "-"));
    }
    key.replace("__", ".").replace('_', "-")
}

/// Values given on the command line; each replaces the configured one.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub brokers: Option<String>,
    pub instance_id: Option<String>,
    pub database_url: Option<Secret>,
    pub metrics_addr: Option<SocketAddr>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    pub kafka_properties: Vec<(String, String)>,
    pub signing_key: Option<PathBuf>,
    pub evidence_store: Option<String>,
    pub database_ssl_mode: Option<SslMode>,
    pub database_ca_file: Option<PathBuf>,
    pub database_client_cert: Option<PathBuf>,
    pub database_client_key: Option<PathBuf>,
}

impl Config {
    /// Loads defaults → `file` → `PSG_*` environment → `overrides`, then validates.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self> {
        Self::load_from(file, Env::prefixed("PSG_"), overrides)
    }

    fn load_from(file: Option<&Path>, env: Env, overrides: &Overrides) -> Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(Error::Load(format!("config file {} does not exist", path.display())));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = env
            // `PSG_CONFIG` names the file itself; it is not a setting.
            .filter(|key| !key.as_str().eq_ignore_ascii_case("config"))
            .map(|key| env_key(key.as_str()).into());
        figment = figment.merge(env);
        figment = apply_overrides(figment, overrides);
        let mut config: Config = figment
            .extract()
            .map_err(|e| Error::Load(e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")))?;
        // librdkafka property names have dots and never dashes; from the
        // environment (`PSG_KAFKA__PROPERTIES__SASL_PASSWORD`) they arrive
        // with dashes (`_` stands for `-`), so turn those back into dots.
        config.kafka.properties =
            std::mem::take(&mut config.kafka.properties).into_iter().map(|(k, v)| (k.replace('-', "."), v)).collect();
        config.validate()?;
        config.database.url = config.database.connection_url();
        Ok(config)
    }

    /// Rejects contradictory or impossible settings.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        if self.kafka.batch_size == 0 {
            problems.push("kafka.batch-size must be at least 1".to_owned());
        }
        if self.evidence.period_secs < 60 {
            problems.push("evidence.period-secs must be at least 60".to_owned());
        }
        if let Some(id) = &self.kafka.instance_id
            && (id.trim().is_empty() || id.len() > 249 || id.chars().any(char::is_control))
        {
            problems.push(
                "kafka.instance-id must be 1 to 249 printable characters (it is the group.instance.id)".to_owned(),
            );
        }
        if self.kafka.properties.contains_key("group.instance.id") && self.kafka.instance_id.is_some() {
            problems
                .push("set either kafka.instance-id or the librdkafka property group.instance.id, not both".to_owned());
        }
        if self.kafka.partitions < 1 {
            problems.push("kafka.partitions must be at least 1".to_owned());
        }
        if self.kafka.replication_factor < 1 {
            problems.push("kafka.replication-factor must be at least 1".to_owned());
        }
        if self.correlate.window_secs == 0 {
            problems.push("correlate.window-secs must be at least 1".to_owned());
        }
        if self.correlate.window_secs.saturating_add(self.correlate.match_tolerance_secs) > MAX_WINDOW_REACH_SECS {
            problems.push(format!(
                "correlate.window-secs + correlate.match-tolerance-secs ({} + {} s) must not exceed {} s (one day): \
                 a window's flows lie within that of its start, which readers of data_flows rely on",
                self.correlate.window_secs, self.correlate.match_tolerance_secs, MAX_WINDOW_REACH_SECS
            ));
        }
        if self.correlate.hold_back_secs > self.correlate.allowed_lateness_secs {
            problems.push(
                "correlate.hold-back-secs must not exceed correlate.allowed-lateness-secs (a held flow would miss its window)"
                    .to_owned(),
            );
        }
        let s = &self.storage;
        if s.flows_chunk_days == 0 || s.flows_compress_after_days == 0 || s.flows_retention_days == 0 {
            problems.push(
                "storage.flows-chunk-days, flows-compress-after-days and flows-retention-days must be at least 1"
                    .to_owned(),
            );
        }
        if s.flows_retention_days >= s.audit_retention_days {
            problems.push(format!(
                "storage.flows-retention-days ({}) must be shorter than storage.audit-retention-days ({}): the audit trail outlives the flows",
                s.flows_retention_days, s.audit_retention_days
            ));
        }
        if s.flows_compress_after_days >= s.flows_retention_days {
            problems.push(format!(
                "storage.flows-compress-after-days ({}) must be shorter than storage.flows-retention-days ({})",
                s.flows_compress_after_days, s.flows_retention_days
            ));
        }
        if self.classify.lookback_days == 0 {
            problems.push("classify.lookback-days must be at least 1".to_owned());
        }
        if self.classify.scope_tag_key == self.classify.data_tag_key {
            problems.push("classify.scope-tag-key and classify.data-tag-key must differ".to_owned());
        }
        if let Some(o) = &self.evidence.log_origin
            && (o.is_empty() || o.contains(char::is_whitespace) || o.contains('+'))
        {
            problems.push(format!(
                "evidence.log-origin '{o}' must be non-empty, without spaces or '+' (it names the checkpoints' signing key)"
            ));
        }
        if self.grc.max_attempts == 0 || self.grc.timeout_secs == 0 {
            problems.push("grc.max-attempts and grc.timeout-secs must be at least 1".to_owned());
        }
        if self.grc.interval < Span::from_secs(1) {
            problems.push("grc.interval must be at least 1s".to_owned());
        }
        if self.grc.full_every < self.grc.interval {
            problems.push(format!(
                "grc.full-every ({}) must not be shorter than grc.interval ({}): a full sync is due at most once a tick",
                self.grc.full_every, self.grc.interval
            ));
        }
        if !(1..=500).contains(&self.grc.drata.batch_size) {
            problems.push("grc.drata.batch-size must be 1 to 500 (Drata's limit)".to_owned());
        }
        if self.database.pool_size == 0 {
            problems.push("database.pool-size must be at least 1".to_owned());
        }
        if let Some(url) = &self.database.url {
            let u = url.expose();
            if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                problems
                    .push(format!("database.url must start with postgres:// or postgresql:// (got {})", redact_url(u)));
            }
        }
        problems.extend(self.database.tls_problems());
        let topics = [
            &self.topics.flowlogs_raw,
            &self.topics.inventory_raw,
            &self.topics.flows_normalized,
            &self.topics.resources,
            &self.topics.flows_edges,
            &self.topics.flows_coverage,
            &self.topics.scope_decisions,
            &self.topics.scope_alerts,
            &self.topics.scope_manual,
            &self.topics.evidence_records,
            &self.topics.evidence_requests,
            &self.topics.evidence_checkpoints,
        ];
        for (i, a) in topics.iter().enumerate() {
            if a.is_empty() {
                problems.push("topic names must not be empty".to_owned());
            }
            if topics[i + 1..].contains(a) {
                problems.push(format!("topic '{a}' is configured for two different streams"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(Error::Invalid(problems.join("; "))) }
    }
}

fn apply_overrides(mut figment: Figment, o: &Overrides) -> Figment {
    if let Some(v) = &o.brokers {
        figment = figment.merge(Serialized::default("kafka.brokers", v));
    }
    if let Some(v) = &o.instance_id {
        figment = figment.merge(Serialized::default("kafka.instance-id", v));
    }
    if let Some(v) = &o.database_url {
        figment = figment.merge(Serialized::default("database.url", v));
    }
    if let Some(v) = &o.metrics_addr {
        figment = figment.merge(Serialized::default("telemetry.metrics-addr", v));
    }
    if let Some(v) = &o.log_format {
        figment = figment.merge(Serialized::default("telemetry.log-format", v));
    }
    if let Some(v) = &o.log_level {
        figment = figment.merge(Serialized::default("telemetry.log-level", v));
    }
    if let Some(v) = &o.signing_key {
        figment = figment.merge(Serialized::default("evidence.signing-key", v));
    }
    if let Some(v) = &o.evidence_store {
        figment = figment.merge(Serialized::default("evidence.store-url", v));
    }
    if let Some(v) = &o.database_ssl_mode {
        figment = figment.merge(Serialized::default("database.ssl-mode", v));
    }
    if let Some(v) = &o.database_ca_file {
        figment = figment.merge(Serialized::default("database.ca-file", v));
    }
    if let Some(v) = &o.database_client_cert {
        figment = figment.merge(Serialized::default("database.client-cert", v));
    }
    if let Some(v) = &o.database_client_key {
        figment = figment.merge(Serialized::default("database.client-key", v));
    }
    if !o.kafka_properties.is_empty() {
        // Property names contain dots, so they cannot be key paths: merge them
        // as one map (dictionaries merge key by key).
        let props: BTreeMap<&str, &str> = o.kafka_properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        figment = figment.merge(Serialized::default("kafka.properties", props));
    }
    figment
}

#[cfg(test)]
mod tests;
