//! Command-line interface: flags, subcommands, and what each one does.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use psg_config::{Config, LogFormat, Overrides, Secret, SslMode};

use crate::error::CliError;
use crate::services::{self, ServiceKind};

/// PCI Scope Guard: continuous PCI DSS scope from cloud flow logs.
///
/// Reads AWS VPC flow logs and inventory from Kafka, attributes every flow
/// to the resources at both ends, classifies every resource (cde,
/// connected-cde, out-of-scope, pending-review), raises alerts, and signs
/// every decision as verifiable evidence.
///
/// Configuration is layered: defaults, then --config FILE (TOML), then
/// PSG_<SECTION>__<KEY> environment variables, then flags.
#[derive(Debug, Parser)]
#[command(name = "pci-scope-guard", version, propagate_version = true, after_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

const EXAMPLES: &str = "Examples:
  pci-scope-guard migrate --database-url postgres://postgres@127.0.0.1/psg
  pci-scope-guard keygen --out-dir ./keys
  pci-scope-guard run --brokers 127.0.0.1:9092 --database-url postgres://... --signing-key ./keys/signing.key
  pci-scope-guard ingest --brokers kafka-1:9092 -X security.protocol=SASL_SSL -X sasl.mechanism=SCRAM-SHA-512";

/// Flags every command accepts.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// TOML configuration file (see README, "Configuration").
    #[arg(long, global = true, env = "PSG_CONFIG", value_name = "FILE", hide_env_values = true)]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers, comma separated.
    #[arg(long, global = true, env = "KAFKA_BROKERS", value_name = "HOST:PORT,...", hide_env_values = true)]
    pub brokers: Option<String>,
    /// Static group membership (group.instance.id): a stable name for this instance, unique among
    /// the instances of each service, e.g. a StatefulSet's pod name (or PSG_KAFKA__INSTANCE_ID).
    /// Restarted within the session timeout, the instance gets its partitions back at once,
    /// without a rebalance. Unset: dynamic membership.
    #[arg(long, global = true, value_name = "NAME")]
    pub instance_id: Option<String>,
    /// PostgreSQL / TimescaleDB URL. Without it, results go to topics and files only.
    /// libpq's sslmode, sslrootcert, sslcert and sslkey parameters may be in it. With a
    /// password, prefer DATABASE_URL: flags are visible to other local users (ps).
    #[arg(long, global = true, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// TLS to the database (libpq's sslmode): disable, allow, prefer (default), require, verify-ca,
    /// verify-full. require verifies nothing unless a CA file is given; verify-full also checks the host name.
    #[arg(long, global = true, value_parser = parse_ssl_mode, value_name = "MODE", help_heading = "Database TLS")]
    pub database_ssl_mode: Option<SslMode>,
    /// PEM file of the CA certificates trusted for the database's certificate (libpq's sslrootcert;
    /// default for verify-ca/verify-full: the system's roots).
    #[arg(long, global = true, value_name = "FILE", help_heading = "Database TLS")]
    pub database_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS to the database (libpq's sslcert).
    #[arg(long, global = true, value_name = "FILE", help_heading = "Database TLS")]
    pub database_client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM, mode 0600) (libpq's sslkey).
    #[arg(long, global = true, value_name = "FILE", help_heading = "Database TLS")]
    pub database_client_key: Option<PathBuf>,
    /// Address of /metrics, /healthz and /readyz (default: 127.0.0.1 and the service's port).
    #[arg(long, global = true, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Log format.
    #[arg(long, global = true, value_parser = parse_log_format, value_name = "text|json")]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `psg_ingest=debug,info` (RUST_LOG wins when set).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// A librdkafka property, KEY=VALUE (repeatable): TLS, SASL, timeouts, ... Values on the
    /// command line are visible to other local users (ps): put passwords in the config file or
    /// in PSG_KAFKA__PROPERTIES__<NAME> (e.g. PSG_KAFKA__PROPERTIES__SASL_PASSWORD) instead.
    #[arg(short = 'X', long = "kafka-property", global = true, value_parser = PropertyParser, value_name = "KEY=VALUE")]
    pub kafka_properties: Vec<(String, String)>,
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("'{other}' is not a log format: use text or json")),
    }
}

fn parse_ssl_mode(s: &str) -> Result<SslMode, psg_config::BadSslMode> {
    s.parse()
}

/// `-X KEY=VALUE`. Its errors never show the argument, which may be a
/// password (clap's own "invalid value '...'" message would).
#[derive(Debug, Clone, Copy)]
struct PropertyParser;

impl clap::builder::TypedValueParser for PropertyParser {
    type Value = (String, String);

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let invalid = |message: String| {
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("-X: {message}\n")).with_cmd(cmd)
        };
        let s = value.to_str().ok_or_else(|| invalid("a librdkafka property must be UTF-8".to_owned()))?;
        parse_property(s).map_err(invalid)
    }
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        // Never echo the argument: it may be a password with a typo for '='.
        _ => {
            let name: String =
                s.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')).collect();
            Err(format!("a librdkafka property is KEY=VALUE (no '=' after '{name}')"))
        }
    }
}

/// Flags of the evidence service.
#[derive(Debug, Args, Default)]
pub(crate) struct EvidenceArgs {
    /// Ed25519 private key (PKCS#8 PEM) from `pci-scope-guard keygen`; must be mode 0600.
    #[arg(long, global = true, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Where evidence documents are written: a directory, file:///path, or
    /// s3://bucket/prefix (S3 connection and credentials from the AWS_*
    /// environment; records locked with S3 Object Lock when the bucket has
    /// it, see evidence.object-lock).
    #[arg(long, global = true, value_name = "DIR|URL")]
    pub evidence_store: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the ingest service: raw flow logs and inventory in, normalized Avro out.
    ///
    /// Reads flowlogs.raw and inventory.raw; writes flows.normalized, resources
    /// (and the resources/tags tables); dead-letters bad input to ingest.dlq
    /// with the reason in headers.
    #[command(
        after_help = "Example:\n  pci-scope-guard ingest --brokers 127.0.0.1:9092 --database-url postgres://postgres@127.0.0.1/psg"
    )]
    Ingest,
    /// Run the correlate service: attribute flows to resources, condense them into edges.
    ///
    /// Reads flows.normalized and the whole resources topic; writes flows.edges
    /// and data_flows.
    #[command(
        after_help = "Example:\n  pci-scope-guard correlate --brokers 127.0.0.1:9092 --database-url postgres://postgres@127.0.0.1/psg"
    )]
    Correlate,
    /// Run the classify service: the scope graph, scope decisions and alerts.
    ///
    /// Reads flows.edges and the whole resources topic; writes scope.decisions,
    /// scope.alerts and their tables. Rebuilds its state from the database at start.
    #[command(
        after_help = "Example:\n  pci-scope-guard classify --brokers 127.0.0.1:9092 --database-url postgres://postgres@127.0.0.1/psg"
    )]
    Classify,
    /// Run the evidence service, or export, verify, request or expire evidence.
    ///
    /// Without a subcommand: the service. It signs and chains a record for
    /// every scope decision (scope.decisions), makes the periodic reports when
    /// event time (flows.edges) passes a period's end, and serves requests on
    /// evidence.requests; writes evidence.records, the documents and the
    /// evidence table.
    #[command(
        after_help = "Examples:\n  pci-scope-guard evidence --brokers 127.0.0.1:9092 --signing-key ./keys/signing.key --evidence-store ./evidence-store\n  \
                      pci-scope-guard evidence export --database-url postgres://... ./bundle\n  \
                      pci-scope-guard evidence verify ./bundle --keyring ./keys/signing.pub"
    )]
    Evidence {
        #[command(flatten)]
        args: EvidenceArgs,
        #[command(subcommand)]
        action: Option<crate::evidence_cmd::EvidenceAction>,
    },
    /// Try it: a synthetic multi-cloud estate, analysed, with report, diagram and evidence.
    ///
    /// Generates a few hundred resources on AWS, Azure and GCP (CDE databases
    /// and payment APIs, web tier, corporate systems, a monitoring system, one
    /// misconfigured path that breaks segmentation, one unknown host), their
    /// inventory and flow logs in the providers' formats, runs `analyze` on
    /// them and writes report.md/.json/.csv, diagram.svg/.mmd/.dot, a signed
    /// evidence bundle and its verification. Needs no broker and no database.
    #[command(after_help = "Example:\n  pci-scope-guard demo --out-dir ./demo-out")]
    Demo(crate::demo::DemoArgs),
    /// Analyse inventory and flow-log files: scope of every system, alerts, external connections.
    ///
    /// Runs the four real services over the embedded broker (no broker or
    /// database needed), publishes the inventory files, then the flow-log
    /// files, waits until every service has processed everything, and reports
    /// what came out. Formats are detected per file; gzip is fine.
    #[command(
        after_help = "Examples:\n  pci-scope-guard analyze --inventory ./inventory --flows ./flowlogs --output json\n  \
                      pci-scope-guard analyze --inventory inv.json --flows vpc.log.gz --flow-format 'aws:version srcaddr dstaddr srcport dstport protocol packets bytes start end action' --out-dir ./out"
    )]
    Analyze(crate::analyze::AnalyzeArgs),
    /// The scope report from the database: table, JSON (as `analyze`), Markdown for the assessor, CSV.
    ///
    /// With --as-of, the report as it stood at that time: each system's
    /// newest decision made by then, the tags applied by then, the alerts
    /// raised by then with the status they had then, and the flows last seen
    /// by then (flow time).
    #[command(
        after_help = "Examples:\n  pci-scope-guard report --database-url postgres://... --format markdown --out scope.md\n  \
                      pci-scope-guard report --format json | jq '.summary'\n  \
                      pci-scope-guard report --as-of 2026-11-30T23:59:59Z --format markdown --out scope-november.md"
    )]
    Report {
        #[arg(long, value_enum, default_value = "table")]
        format: crate::operate::ReportFormat,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The report as it stood at this time: RFC 3339 (2026-11-30T23:59:59Z) or a date (UTC midnight).
        #[arg(long, value_parser = crate::evidence_cmd::parse_time, value_name = "TIME")]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The network / data-flow diagram (PCI DSS 1.2.3 / 1.2.4) from the database: SVG, Mermaid or DOT.
    ///
    /// The CDE at the centre, connected systems around it, edges labelled with
    /// protocol/port, violations in red, out-of-scope systems collapsed per
    /// segment when there are many. SVG needs no Graphviz.
    #[command(
        after_help = "Example:\n  pci-scope-guard diagram --database-url postgres://... --format svg --out scope.svg"
    )]
    Diagram {
        #[arg(long, value_enum, default_value = "svg")]
        format: crate::operate::DiagramFormat,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The diagram as it stood at this time (as `report --as-of`): RFC 3339 or a date.
        #[arg(long, value_parser = crate::evidence_cmd::parse_time, value_name = "TIME")]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// List, show, acknowledge, resolve or close alerts as false positives (audited).
    #[command(after_help = "Examples:\n  pci-scope-guard alerts list --status open --severity critical\n  \
                      pci-scope-guard alerts ack 3f2a9c1e --user alice@example.com")]
    Alerts {
        #[command(subcommand)]
        action: crate::operate::AlertsAction,
    },
    /// Push the scope inventory and evidence to a GRC platform (Vanta, Drata, Secureframe).
    ///
    /// `grc sync` runs one sync and records it in grc_syncs and audit_logs; `grc run`
    /// syncs continuously (incrementally after changes, fully at least daily).
    #[command(
        after_help = "Examples:\n  pci-scope-guard grc sync --provider vanta --full --database-url postgres://...\n  \
                      pci-scope-guard grc run --provider drata --brokers kafka:9092 --database-url postgres://..."
    )]
    Grc {
        #[command(subcommand)]
        action: crate::grc_cmd::GrcAction,
    },
    /// Record a manual scope decision for a resource (overrides every rule; audited).
    ///
    /// Publishes a ManualDecision on scope.manual; the running classifier
    /// applies it at once, and it stays until withdrawn with --withdraw.
    #[command(
        after_help = "Examples:\n  pci-scope-guard decide i-0abc --scope out-of-scope --justification 'isolated by NACL, reviewed with the QSA 2026-11-02'\n  \
                      pci-scope-guard decide i-0abc --withdraw"
    )]
    Decide {
        /// The resource id (as in the report).
        resource: String,
        /// cde, connected-cde, out-of-scope or pending-review.
        #[arg(long, required_unless_present = "withdraw", conflicts_with = "withdraw")]
        scope: Option<psg_domain::PciScope>,
        /// Why: recorded with the decision and its evidence.
        #[arg(long, default_value = "", required_unless_present = "withdraw")]
        justification: String,
        /// Withdraw the manual decision: the automated rules decide again.
        #[arg(long)]
        withdraw: bool,
        #[command(flatten)]
        user: crate::operate::UserArg,
    },
    /// Publish files to a topic (flow logs, inventory), optionally at a steady rate.
    ///
    /// JSON and gzip files go whole, one message each; text files go in
    /// chunks of --lines-per-message lines (an AWS header line travels with
    /// every chunk as the psg.aws.format header).
    #[command(
        after_help = "Example:\n  pci-scope-guard replay --brokers 127.0.0.1:9092 --topic flowlogs.raw --rate 50 logs/*.log"
    )]
    Replay {
        /// Files to publish.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Topic to publish to.
        #[arg(long, default_value = "flowlogs.raw")]
        topic: String,
        /// Messages per second (default: as fast as the broker takes them).
        #[arg(long)]
        rate: Option<f64>,
        /// Lines per message for text files (0: whole files).
        #[arg(long, default_value_t = 1000)]
        lines_per_message: usize,
        #[command(flatten)]
        user: crate::operate::UserArg,
    },
    /// Run all four services in one process.
    ///
    /// Without --brokers (or KAFKA_BROKERS) it starts an embedded broker
    /// (librdkafka's in-process mock cluster) and prints its address, so a
    /// shipper can publish to it. The embedded broker keeps everything in
    /// memory: for trying the product, not for production.
    #[command(after_help = "Example:\n  pci-scope-guard run --signing-key ./keys/signing.key")]
    Run(EvidenceArgs),
    /// Create or upgrade the database schema (idempotent: running it twice changes nothing).
    #[command(after_help = "Example:\n  pci-scope-guard migrate --database-url postgres://postgres@127.0.0.1/psg")]
    Migrate,
    /// Write a new Ed25519 signing key pair (<name>.key mode 0600, <name>.pub).
    #[command(after_help = "Example:\n  pci-scope-guard keygen --out-dir ./keys")]
    Keygen {
        /// Directory to write the key files into.
        #[arg(long, value_name = "DIR", default_value = "./keys")]
        out_dir: PathBuf,
        /// File name stem of the key files.
        #[arg(long, default_value = "signing")]
        name: String,
    },
}

impl Global {
    fn overrides(&self, evidence: Option<&EvidenceArgs>) -> Overrides {
        Overrides {
            brokers: self.brokers.clone(),
            instance_id: self.instance_id.clone(),
            database_url: self.database_url.clone().map(Secret::new),
            metrics_addr: self.metrics_addr,
            log_format: self.log_format,
            log_level: self.log_level.clone(),
            kafka_properties: self.kafka_properties.clone(),
            signing_key: evidence.and_then(|e| e.signing_key.clone()),
            evidence_store: evidence.and_then(|e| e.evidence_store.clone()),
            database_ssl_mode: self.database_ssl_mode,
            database_ca_file: self.database_ca_file.clone(),
            database_client_cert: self.database_client_cert.clone(),
            database_client_key: self.database_client_key.clone(),
        }
    }
}

/// Runs the parsed command line.
pub(crate) async fn execute(cli: Cli) -> Result<(), CliError> {
    let evidence_args = match &cli.command {
        Command::Evidence { args: a, .. } | Command::Run(a) => Some(a),
        _ => None,
    };
    let mut config = Config::load(cli.global.config.as_deref(), &cli.global.overrides(evidence_args))
        .map_err(|e| CliError::Config(e.to_string()))?;
    // Batch commands keep the terminal for their own output.
    let operator = !matches!(
        cli.command,
        Command::Ingest
            | Command::Correlate
            | Command::Classify
            | Command::Run(_)
            | Command::Evidence { action: None, .. }
            | Command::Grc { action: crate::grc_cmd::GrcAction::Run(_) }
    );
    if operator && cli.global.log_level.is_none() {
        config.telemetry.log_level = "warn".into();
    }
    psg_telemetry::init_logging(config.telemetry.log_format, &config.telemetry.log_level)
        .map_err(|e| CliError::Config(e.to_string()))?;
    match cli.command {
        Command::Ingest => services::serve(config, &[ServiceKind::Ingest], None).await,
        Command::Correlate => services::serve(config, &[ServiceKind::Correlate], None).await,
        Command::Classify => services::serve(config, &[ServiceKind::Classify], None).await,
        Command::Evidence { action: None, .. } => services::serve(config, &[ServiceKind::Evidence], None).await,
        Command::Evidence { action: Some(action), .. } => crate::evidence_cmd::execute(&config, action).await,
        Command::Run(_) => services::serve(config, &ServiceKind::ALL, Some(ServiceKind::Run)).await,
        Command::Migrate => services::migrate(&config).await,
        Command::Analyze(args) => crate::analyze::execute(config, args).await,
        Command::Demo(args) => crate::demo::execute(config, args).await,
        Command::Report { format, out, as_of } => crate::operate::report(&config, format, out, as_of).await,
        Command::Diagram { format, out, as_of } => crate::operate::diagram(&config, format, out, as_of).await,
        Command::Alerts { action } => crate::operate::alerts(&config, action).await,
        Command::Grc { action } => crate::grc_cmd::execute(&config, action).await,
        Command::Decide { resource, scope, justification, withdraw, user } => {
            crate::operate::decide(&config, resource, if withdraw { None } else { scope }, justification, user).await
        }
        Command::Replay { files, topic, rate, lines_per_message, user } => {
            crate::operate::replay(&config, files, topic, rate, lines_per_message, user).await
        }
        Command::Keygen { out_dir, name } => {
            let files = psg_evidence::keys::generate(&out_dir, &name).map_err(|e| CliError::Runtime(e.to_string()))?;
            println!("private key: {} (mode 0600: keep it secret)", files.private.display());
            println!("public key:  {} (give it to assessors)", files.public.display());
            println!("key id:      {}", files.key_id);
            Ok(())
        }
    }
}
