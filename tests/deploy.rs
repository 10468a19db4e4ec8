//! The deployment files under `deploy/`: they parse, they have the structure
//! an operator relies on, and every metric they reference is real.
//!
//! Static checks: `compose.yaml` (every service has an image or a build, the
//! services' metrics addresses and /readyz healthchecks, the topic job creates
//! exactly the configured topics with `resources` and `scope.manual`
//! compacted), every Kubernetes manifest (both probes on every Deployment,
//! single-replica Recreate for classify and evidence, PDBs, default-deny
//! network policy), the ConfigMap's config.toml and the compose environment
//! are accepted by the binary, the Prometheus rules and scrape config, the
//! Grafana dashboard and provisioning, and the runbook has a section for every
//! alert.
//!
//! Live check: `pci-scope-guard run` on its embedded broker is fed inventory
//! and flow logs (one bad line, so a dead letter happens); every `psg_*`
//! metric named in `alerts.yaml` and `dashboard.json` must then appear on its
//! `/metrics`, except the few that only rare events create, which are listed
//! in [`RARE_METRICS`] and must at least exist in the source code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use psg_testkit::kafka::produce;
use psg_testkit::{free_port, http_get, metric_value};
use serde::Deserialize;
use serde_yaml_ng::Value;

const BIN: &str = env!("CARGO_BIN_EXE_pci-scope-guard");

/// Metrics that only rare events create, so a short run may never show them.
/// Each must still be emitted somewhere in libs/, services/ or src/.
const RARE_METRICS: &[&str] = &[
    // a transient failure of a batch step (database or broker down)
    "psg_retries_total",
    // librdkafka reporting an error to a consumer
    "psg_consumer_errors_total",
    // a flow record older than the watermark
    "psg_correlate_late_records_total",
    // a flow whose internal address no inventory claimed within hold-back-secs
    "psg_correlate_hold_back_expired_total",
    // a response half (service port → ephemeral port) turned around
    "psg_correlate_responses_oriented_total",
    // a decision or report already sealed (re-read after a restart)
    "psg_evidence_duplicates_total",
];

/// Metrics the deployment files may use that the services do not export.
const EXTERNAL_METRICS: &[&str] = &[
    // Prometheus' own per-target metric
    "up",
    // kafka-exporter (danielqsj/kafka_exporter)
    "kafka_consumergroup_lag",
];

/// Topics that are compacted tables (`TopicSpec::table` in src/services.rs).
const COMPACTED: &[&str] = &["resources", "scope.manual", "flows.coverage", "evidence.checkpoints"];

/// The services and their metrics ports.
const SERVICES: &[(&str, u16)] = &[("ingest", 9471), ("correlate", 9472), ("classify", 9473), ("evidence", 9474)];

/// The five scope alert types (`AlertType`).
const SCOPE_ALERTS: &[&str] =
    &["segmentation_violation", "scope_drift", "unknown_system", "cde_internet", "untagged_resource"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

/// Every document of a multi-document YAML file.
fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)?.as_str()
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

/// A YAML list of strings, or a single string, as strings.
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(s)) => s.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The topic names of `[topics]` in deploy/config.example.toml.
fn configured_topics() -> BTreeSet<String> {
    let text = read("deploy/config.example.toml");
    let mut in_topics = false;
    let mut topics = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_topics = line == "[topics]";
        } else if let Some((_, value)) = line.split_once('=').filter(|_| in_topics) {
            let value = value.split('#').next().unwrap_or_default().trim().trim_matches('"');
            topics.insert(value.to_owned());
        }
    }
    topics
}

/// The topics a kafka-topics.sh script creates, with their partitions;
/// checks that they are exactly the configured topics, idempotently created,
/// compacted exactly where the code expects tables (`COMPACTED`).
fn topics_created(script: &str, place: &str) -> BTreeMap<String, u32> {
    let mut created = BTreeMap::new();
    for line in script.lines().filter(|l| l.contains("kafka-topics.sh") && l.contains("--create")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let arg = |flag: &str| words.iter().skip_while(|w| **w != flag).nth(1).copied();
        let topic = arg("--topic").unwrap_or_else(|| panic!("{place}: no --topic in {line}"));
        let partitions: u32 = arg("--partitions").and_then(|p| p.parse().ok()).expect("--partitions N");
        let configs: Vec<&str> = words.windows(2).filter(|w| w[0] == "--config").map(|w| w[1]).collect();
        let compact = configs.contains(&"cleanup.policy=compact");
        assert!(line.contains("--if-not-exists"), "{place}: {topic} is not created idempotently");
        assert_eq!(compact, COMPACTED.contains(&topic), "{place}: {topic} has cleanup.policy=compact: {compact}");
        assert!(partitions >= 1, "{place}: {topic} partitions");
        assert!(created.insert(topic.to_owned(), partitions).is_none(), "{place}: {topic} created twice");
    }
    let names: BTreeSet<String> = created.keys().cloned().collect();
    assert_eq!(names, configured_topics(), "{place} vs [topics] of deploy/config.example.toml");
    created
}

/// Every `"psg_..."` string literal in the Rust sources of libs/, services/, src/.
fn metric_names_in_source() -> BTreeSet<String> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for dir in ["libs", "services", "src"] {
        walk(&root().join(dir), &mut files);
    }
    let mut names = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (i, _) in text.match_indices("\"psg_") {
            let rest = &text[i + 1..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            if rest[end..].starts_with('"') {
                names.insert(rest[..end].to_owned());
            }
        }
    }
    names
}

/// The metric names a PromQL expression selects: identifiers that are not
/// functions, keywords, label names (in `{}` or after by/without/on/...),
/// durations (in `[]`), strings, numbers or Grafana variables (`$...`).
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    // aggregation operators may be followed by `by (...)` instead of `(`
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "limitk",
        "limit_ratio",
    ];
    const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
    let c: Vec<char> = expr.chars().collect();
    let ident = |ch: char| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':';
    let skip_string = |mut i: usize| {
        let q = c[i];
        i += 1;
        while i < c.len() && c[i] != q {
            if c[i] == '\\' {
                i += 1;
            }
            i += 1;
        }
        i + 1
    };
    // from an opening bracket to after its closing one, strings skipped
    let skip_group = |mut i: usize, open: char, close: char| {
        let mut depth = 0;
        while i < c.len() {
            match c[i] {
                '"' | '\'' | '`' => {
                    i = skip_string(i);
                    continue;
                }
                x if x == open => depth += 1,
                x if x == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '"' | '\'' | '`' => i = skip_string(i),
            '{' => i = skip_group(i, '{', '}'),
            '[' => i = skip_group(i, '[', ']'),
            '$' => {
                i += 1;
                while i < c.len() && ident(c[i]) {
                    i += 1;
                }
            }
            ch if ch.is_ascii_digit() || ch == '.' => {
                while i < c.len() && (ident(c[i]) || c[i] == '.') {
                    i += 1;
                }
            }
            ch if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' => {
                let start = i;
                while i < c.len() && ident(c[i]) {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                let mut j = i;
                while j < c.len() && c[j].is_whitespace() {
                    j += 1;
                }
                let before_paren = j < c.len() && c[j] == '(';
                if LABEL_LISTS.contains(&word.as_str()) {
                    if before_paren {
                        i = skip_group(j, '(', ')');
                    }
                } else if !KEYWORDS.contains(&word.as_str()) && !before_paren {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// A histogram's or summary's series name without its suffix.
fn base_name(name: &str) -> &str {
    ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name)
}

/// Every PromQL expression of alerts.yaml, with the alert's name.
fn alert_rules() -> Vec<(String, Value)> {
    let doc = yaml("deploy/prometheus/alerts.yaml");
    let groups = doc.get("groups").and_then(Value::as_sequence).expect("alerts.yaml: groups");
    assert!(!groups.is_empty(), "alerts.yaml has no rule groups");
    let mut rules = Vec::new();
    for g in groups {
        let name = str_at(g, &["name"]).expect("every rule group has a name");
        let list = g.get("rules").and_then(Value::as_sequence).unwrap_or_else(|| panic!("group {name} has no rules"));
        for r in list {
            let alert = str_at(r, &["alert"]).unwrap_or_else(|| panic!("a rule of {name} is not an alert: {r:?}"));
            rules.push((alert.to_owned(), r.clone()));
        }
    }
    rules
}

/// Every PromQL expression of the Grafana dashboard, with its panel title.
fn dashboard_exprs() -> Vec<(String, String)> {
    let dash: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/dashboard.json")).expect("dashboard.json is JSON");
    let mut out = Vec::new();
    fn panels(v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in v.get("panels").and_then(|p| p.as_array()).into_iter().flatten() {
            let title = p.get("title").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
            for t in p.get("targets").and_then(|t| t.as_array()).into_iter().flatten() {
                if let Some(e) = t.get("expr").and_then(|e| e.as_str()) {
                    out.push((title.clone(), e.to_owned()));
                }
            }
            panels(p, out);
        }
    }
    panels(&dash, &mut out);
    out
}

/// Every `psg_*` metric (base name) the alert rules and the dashboard use,
/// with where it is used; also checks that no other metric is used but the
/// known external ones.
fn referenced_psg_metrics() -> BTreeMap<String, String> {
    let mut exprs: Vec<(String, String)> = alert_rules()
        .into_iter()
        .map(|(name, r)| {
            let expr = str_at(&r, &["expr"]).unwrap_or_else(|| panic!("alert {name} has no expr")).to_owned();
            (format!("alert {name}"), expr)
        })
        .collect();
    exprs.extend(dashboard_exprs().into_iter().map(|(t, e)| (format!("panel '{t}'"), e)));
    let mut used = BTreeMap::new();
    for (place, expr) in exprs {
        let names = promql_metric_names(&expr);
        assert!(!names.is_empty(), "{place}: no metric found in {expr}");
        for n in names {
            if n.starts_with("psg_") {
                used.entry(base_name(&n).to_owned()).or_insert(place.clone());
            } else {
                assert!(EXTERNAL_METRICS.contains(&n.as_str()), "{place}: unknown metric {n} in {expr}");
            }
        }
    }
    used
}

/// GitHub's anchor of a Markdown heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn runbook_anchors() -> BTreeSet<String> {
    read("deploy/RUNBOOK.md")
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| slug(l.trim_start_matches('#').trim().trim_matches('`')))
        .collect()
}

/// Runs the binary; panics with its output unless it succeeds.
fn run_bin(args: &[&str], envs: &[(String, String)]) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("PSG_") || k == "KAFKA_BROKERS" || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run pci-scope-guard");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pci-scope-guard {args:?} with {envs:?} failed:\n{text}");
    text
}

#[test]
fn compose_file_runs_every_part() {
    let compose = yaml("deploy/compose.yaml");
    let services = compose.get("services").and_then(Value::as_mapping).expect("compose.yaml: services");
    for (name, svc) in services {
        let name = name.as_str().unwrap();
        assert!(svc.get("image").is_some() || svc.get("build").is_some(), "compose service {name}: no image or build");
    }
    let svc = |name: &str| compose.get("services").and_then(|s| s.get(name)).unwrap_or_else(|| panic!("no {name}"));
    let mounts = |name: &str| strings(svc(name).get("volumes"));
    for name in ["kafka", "timescaledb", "topics", "migrate", "keygen", "prometheus", "grafana", "kafka-exporter"] {
        svc(name);
    }
    assert!(str_at(svc("kafka"), &["image"]).unwrap().starts_with("apache/kafka"));
    assert_eq!(str_at(svc("timescaledb"), &["image"]), Some("timescale/timescaledb:2.28.3-pg15"));
    let dockerfile = str_at(svc("migrate"), &["build", "dockerfile"]).expect("migrate builds the image");
    assert!(root().join(dockerfile).is_file(), "{dockerfile} is missing");
    assert!(strings(svc("migrate").get("command")).contains(&"migrate".to_owned()));
    assert!(strings(svc("keygen").get("command")).concat().contains("keygen"));

    // The four services: metrics address, /readyz healthcheck, environment.
    for (name, port) in SERVICES {
        let s = svc(name);
        let cmd = strings(s.get("command"));
        assert_eq!(cmd.first().map(String::as_str), Some(*name), "compose {name}: command");
        let addr = cmd.iter().skip_while(|a| *a != "--metrics-addr").nth(1);
        assert_eq!(addr, Some(&format!("0.0.0.0:{port}")), "compose {name}: --metrics-addr");
        let check = strings(at(s, &["healthcheck", "test"])).join(" ");
        assert!(check.contains("/readyz") && check.contains(&port.to_string()), "compose {name}: healthcheck {check}");
        for var in ["KAFKA_BROKERS", "DATABASE_URL"] {
            assert!(at(s, &["environment", var]).is_some(), "compose {name}: no {var}");
        }
        let deps = s.get("depends_on").and_then(Value::as_mapping).expect("depends_on");
        for dep in ["topics", "migrate"] {
            let cond = deps.get(dep).and_then(|d| str_at(d, &["condition"]));
            assert_eq!(cond, Some("service_completed_successfully"), "compose {name} waits for {dep}");
        }
    }
    let evidence = strings(svc("evidence").get("command"));
    assert!(evidence.contains(&"--signing-key".to_owned()), "evidence needs its key");
    // Evidence retention: the binary's arguments, the store mounted writable.
    let mut expire = strings(svc("evidence-expire").get("command"));
    assert_eq!(&expire[..2], ["evidence", "expire"]);
    expire.push("--help".into());
    run_bin(&expire.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let store = mounts("evidence-expire");
    assert!(store.iter().any(|v| v == "evidence-store:/var/lib/psg/evidence"), "evidence-expire: {store:?}");

    // The compose environment is a valid configuration.
    let env: Vec<(String, String)> = at(svc("ingest"), &["environment"])
        .and_then(Value::as_mapping)
        .expect("environment mapping")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.as_str().unwrap().to_owned()))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    run_bin(&["keygen", "--out-dir", tmp.path().join("k").to_str().unwrap()], &env);

    // Topics: exactly the configured ones, compacted exactly where the code expects tables.
    let created = topics_created(&strings(svc("topics").get("command")).join("\n"), "compose topics job");
    for t in ["flowlogs.raw", "flows.normalized", "flows.edges"] {
        assert_eq!(created[t], 12, "{t} partitions");
    }

    // Monitoring: the mounted files exist and are the ones checked below.
    for (name, wanted) in [
        ("prometheus", vec!["./prometheus/prometheus.yml", "./prometheus/alerts.yaml"]),
        ("grafana", vec!["./grafana/provisioning", "./grafana/dashboard.json"]),
    ] {
        let m = mounts(name);
        for w in wanted {
            assert!(m.iter().any(|v| v.starts_with(&format!("{w}:"))), "compose {name} does not mount {w}: {m:?}");
            assert!(root().join("deploy").join(w).exists(), "{w} is missing");
        }
    }
    let rules_mount = mounts("prometheus").into_iter().find(|v| v.starts_with("./prometheus/alerts.yaml:")).unwrap();
    let rules_path = rules_mount.split(':').nth(1).unwrap();
    let prom = yaml("deploy/prometheus/prometheus.yml");
    assert!(strings(prom.get("rule_files")).iter().any(|f| f == rules_path), "prometheus.yml rule_files");
    let dash_mount = mounts("grafana").into_iter().find(|v| v.starts_with("./grafana/dashboard.json:")).unwrap();
    let dash_dir = Path::new(dash_mount.split(':').nth(1).unwrap()).parent().unwrap().to_str().unwrap().to_owned();
    let provider = yaml("deploy/grafana/provisioning/dashboards/pci-scope-guard.yaml");
    let path = at(&provider, &["providers"]).and_then(|p| p.get(0)).and_then(|p| str_at(p, &["options", "path"]));
    assert_eq!(path, Some(dash_dir.as_str()), "grafana dashboard provider path vs the compose mount");
}

#[test]
fn kubernetes_manifests_are_complete() {
    let dir = root().join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut objects: Vec<(String, String, Value)> = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(root()).unwrap().to_str().unwrap().to_owned();
        for doc in yaml_docs(&rel) {
            let kind = str_at(&doc, &["kind"]).unwrap_or_else(|| panic!("{rel}: a document without kind"));
            let name = str_at(&doc, &["metadata", "name"]).unwrap_or_else(|| panic!("{rel}: {kind} without a name"));
            assert!(str_at(&doc, &["apiVersion"]).is_some(), "{rel}: {kind}/{name} without apiVersion");
            if kind != "Namespace" {
                assert_eq!(str_at(&doc, &["metadata", "namespace"]), Some("pci-scope-guard"), "{kind}/{name}");
            }
            objects.push((kind.to_owned(), name.to_owned(), doc));
        }
    }
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|(k, n, _)| k == kind && n == name)
            .map(|(.., v)| v)
            .unwrap_or_else(|| panic!("no {kind}/{name} in deploy/k8s"))
    };
    find("Namespace", "pci-scope-guard");
    find("Secret", "psg-database");
    find("Secret", "psg-signing-key");
    let topics = find("Job", "psg-topics");
    let script = strings(at(topics, &["spec", "template", "spec", "containers"]).and_then(|c| c.get(0)?.get("args")));
    topics_created(&script.join("\n"), "k8s topics Job");
    let job = find("Job", "psg-migrate");
    let job_args = strings(at(job, &["spec", "template", "spec", "containers"]).and_then(|c| c.get(0)?.get("args")));
    assert_eq!(job_args, vec!["migrate"]);

    // The ConfigMap's config.toml is accepted by the binary (unknown keys are refused).
    let config = str_at(find("ConfigMap", "psg-config"), &["data", "config.toml"]).expect("config.toml");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    run_bin(&["--config", path.to_str().unwrap(), "keygen", "--out-dir", tmp.path().join("k").to_str().unwrap()], &[]);

    for (service, port) in SERVICES {
        let d = find("Deployment", &format!("psg-{service}"));
        let spec = d.get("spec").unwrap();
        let containers = at(spec, &["template", "spec", "containers"]).and_then(Value::as_sequence).unwrap();
        let c = containers.iter().find(|c| str_at(c, &["name"]) == Some(service)).expect("service container");
        assert_eq!(str_at(c, &["livenessProbe", "httpGet", "path"]), Some("/healthz"), "{service} liveness");
        assert_eq!(str_at(c, &["readinessProbe", "httpGet", "path"]), Some("/readyz"), "{service} readiness");
        for kind in ["requests", "limits"] {
            for r in ["cpu", "memory"] {
                assert!(at(c, &["resources", kind, r]).is_some(), "{service}: resources.{kind}.{r}");
            }
        }
        let args = strings(c.get("args"));
        assert_eq!(args.first().map(String::as_str), Some(*service));
        let addr = args.iter().skip_while(|a| *a != "--metrics-addr").nth(1);
        assert_eq!(addr, Some(&format!("0.0.0.0:{port}")), "{service}: --metrics-addr");
        let ports = c.get("ports").and_then(Value::as_sequence).unwrap();
        assert!(ports.iter().any(|p| at(p, &["containerPort"]).and_then(Value::as_u64) == Some(u64::from(*port))));
        let replicas = spec.get("replicas").and_then(Value::as_u64);
        let strategy = str_at(spec, &["strategy", "type"]);
        let has_pdb = objects.iter().any(|(k, n, _)| k == "PodDisruptionBudget" && *n == format!("psg-{service}"));
        match *service {
            "classify" | "evidence" => {
                assert_eq!((replicas, strategy), (Some(1), Some("Recreate")), "{service}: one active replica");
                assert!(!has_pdb, "{service}: a PDB would block drains of its single replica");
            }
            _ => {
                assert!(replicas.unwrap_or(1) >= 2, "{service}: scale out");
                assert_ne!(strategy, Some("Recreate"));
                assert!(has_pdb, "{service}: no PodDisruptionBudget");
            }
        }
        let svc = find("Service", &format!("psg-{service}-metrics"));
        let sport = at(svc, &["spec", "ports"]).and_then(|p| p.get(0)).and_then(|p| p.get("port")?.as_u64());
        assert_eq!(sport, Some(u64::from(*port)), "{service}: metrics Service port");
    }

    // Evidence retention runs daily as the operator role, on the volume the
    // evidence service writes, and its arguments are the binary's.
    let cron = find("CronJob", "psg-evidence-expire");
    assert_eq!(str_at(cron, &["spec", "concurrencyPolicy"]), Some("Forbid"), "one expire run at a time");
    assert_eq!(str_at(cron, &["spec", "schedule"]).map(|s| s.split_whitespace().count()), Some(5), "cron schedule");
    let pod = at(cron, &["spec", "jobTemplate", "spec", "template", "spec"]).expect("CronJob pod spec");
    let c = at(pod, &["containers"]).and_then(|c| c.get(0)).expect("expire container");
    let args = strings(c.get("args"));
    assert_eq!(&args[..3], ["evidence", "expire", "--orphans"], "{args:?}");
    let mut help: Vec<&str> = args.iter().map(String::as_str).collect();
    help.push("--help");
    assert!(run_bin(&help, &[]).contains("--orphan-age-hours"), "the CronJob's arguments are refused");
    let env = c.get("env").and_then(Value::as_sequence).expect("expire env");
    let url = env.iter().find(|e| str_at(e, &["name"]) == Some("DATABASE_URL")).expect("DATABASE_URL");
    assert_eq!(str_at(url, &["valueFrom", "secretKeyRef", "key"]), Some("operator"), "expire runs as psg_operator");
    let claim = |spec: &Value| {
        at(spec, &["volumes"])
            .and_then(Value::as_sequence)
            .and_then(|v| v.iter().find_map(|v| str_at(v, &["persistentVolumeClaim", "claimName"]).map(str::to_owned)))
    };
    let evidence_pod = at(find("Deployment", "psg-evidence"), &["spec", "template", "spec"]).expect("evidence pod");
    assert_eq!(claim(pod), claim(evidence_pod), "expire mounts the evidence store");
    let store_url = config.lines().find_map(|l| l.trim().strip_prefix("store-url = ")).expect("store-url");
    let mounted = c.get("volumeMounts").and_then(Value::as_sequence).expect("expire volumeMounts");
    assert!(
        mounted.iter().any(|m| format!("\"{}\"", str_at(m, &["mountPath"]).unwrap_or_default()) == store_url
            && m.get("readOnly").and_then(Value::as_bool) != Some(true)),
        "expire writes the store at {store_url}: {mounted:?}"
    );
    // A ReadWriteOnce volume: the Job's pod must share the evidence pod's node.
    let affinity = at(pod, &["affinity", "podAffinity", "requiredDuringSchedulingIgnoredDuringExecution"])
        .and_then(|a| a.get(0))
        .expect("expire podAffinity");
    assert_eq!(str_at(affinity, &["topologyKey"]), Some("kubernetes.io/hostname"));
    assert_eq!(str_at(affinity, &["labelSelector", "matchLabels", "app.kubernetes.io/component"]), Some("evidence"));

    // Default deny in both directions, then DNS, Kafka, PostgreSQL, monitoring.
    let deny = find("NetworkPolicy", "default-deny");
    assert_eq!(at(deny, &["spec", "podSelector"]).and_then(Value::as_mapping).map(|m| m.len()), Some(0));
    assert_eq!(strings(at(deny, &["spec", "policyTypes"])), vec!["Ingress", "Egress"]);
    assert!(at(deny, &["spec", "ingress"]).is_none() && at(deny, &["spec", "egress"]).is_none());
    let policies: Vec<&Value> = objects.iter().filter(|(k, ..)| k == "NetworkPolicy").map(|(.., v)| v).collect();
    let egress_ports: BTreeSet<u64> = policies
        .iter()
        .flat_map(|p| at(p, &["spec", "egress"]).and_then(Value::as_sequence).cloned().unwrap_or_default())
        .flat_map(|e| e.get("ports").and_then(Value::as_sequence).cloned().unwrap_or_default())
        .filter_map(|p| p.get("port").and_then(Value::as_u64))
        .collect();
    for port in [53, 9092, 5432] {
        assert!(egress_ports.contains(&port), "no egress policy for port {port}");
    }
    let metrics_in = policies.iter().any(|p| {
        at(p, &["spec", "ingress"]).and_then(Value::as_sequence).is_some_and(|rules| {
            rules.iter().any(|r| format!("{r:?}").contains("monitoring") && format!("{r:?}").contains("9471"))
        })
    });
    assert!(metrics_in, "no ingress policy for /metrics from the monitoring namespace");
}

#[test]
fn prometheus_rules_grafana_and_runbook_agree() {
    let anchors = runbook_anchors();
    let rules = alert_rules();
    let mut seen = BTreeSet::new();
    for (name, r) in &rules {
        let severity = str_at(r, &["labels", "severity"]).unwrap_or_else(|| panic!("{name}: no severity"));
        assert!(["critical", "high", "warning", "info"].contains(&severity), "{name}: severity {severity}");
        for a in ["summary", "description", "runbook"] {
            assert!(str_at(r, &["annotations", a]).is_some(), "{name}: no {a} annotation");
        }
        let runbook = str_at(r, &["annotations", "runbook"]).unwrap();
        let anchor = runbook.strip_prefix("deploy/RUNBOOK.md#").unwrap_or_else(|| panic!("{name}: {runbook}"));
        assert!(anchors.contains(anchor), "{name}: RUNBOOK.md has no section #{anchor}");
        seen.insert(name.clone());
    }
    // Every alert (Prometheus and scope) has its own section in the runbook.
    for name in seen.iter().map(String::as_str).chain(SCOPE_ALERTS.iter().copied()) {
        assert!(anchors.contains(&slug(name)), "RUNBOOK.md has no section '{name}'");
    }
    let must = ["segmentation_violation", "scope_drift"];
    for t in must {
        assert!(rules.iter().any(|(_, r)| str_at(r, &["expr"]).unwrap().contains(t)), "no alert rule on {t}");
    }

    // Scrape config: one job per service, at the compose service's port.
    let prom = yaml("deploy/prometheus/prometheus.yml");
    let jobs = prom.get("scrape_configs").and_then(Value::as_sequence).expect("scrape_configs");
    for (service, port) in SERVICES {
        let job = jobs.iter().find(|j| str_at(j, &["job_name"]) == Some(&format!("psg-{service}")));
        let targets = job.and_then(|j| at(j, &["static_configs"])?.get(0)?.get("targets"));
        assert_eq!(strings(targets), vec![format!("{service}:{port}")], "scrape job psg-{service}");
    }

    // Grafana: the dashboard uses the provisioned datasource.
    let ds = yaml("deploy/grafana/provisioning/datasources/prometheus.yaml");
    let uid = at(&ds, &["datasources"]).and_then(|d| d.get(0)).and_then(|d| str_at(d, &["uid"])).expect("uid");
    let dash: serde_json::Value = serde_json::from_str(&read("deploy/grafana/dashboard.json")).unwrap();
    assert!(dash["uid"].is_string() && dash["title"].is_string());
    let panels = dash["panels"].as_array().expect("panels");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(p["datasource"]["uid"], uid, "panel {}: datasource", p["title"]);
        assert!(p["targets"].as_array().is_some_and(|t| !t.is_empty()), "panel {}: no targets", p["title"]);
    }

    // Every psg_* metric used is emitted by the code.
    let source = metric_names_in_source();
    for (name, place) in referenced_psg_metrics() {
        assert!(source.contains(&name), "{place} uses {name}, which no code emits");
    }
    for name in RARE_METRICS {
        assert!(source.contains(*name), "allow-listed {name} is not in the source code");
    }
}

/// `pci-scope-guard run`, killed on drop.
struct Run {
    child: Child,
    log: PathBuf,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- pci-scope-guard run -----\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

const INVENTORY: &str = r#"{"provider":"aws","resource_type":"rds_instance","resource_id":"db-payments","resource_name":"payments-db","region":"us-east-1","vpc_id":"vpc-1","subnet_id":"subnet-db","private_ips":["10.0.2.10"],"interface_ids":["eni-db"],"security_groups":["sg-db"],"tags":{"pci-scope":"cde"},"observed_at":"2026-01-01T00:00:00Z","deleted":false}
{"provider":"aws","resource_type":"ec2_instance","resource_id":"i-web","resource_name":"web-1","region":"us-east-1","vpc_id":"vpc-1","subnet_id":"subnet-web","private_ips":["10.0.1.20"],"interface_ids":["eni-web"],"security_groups":["sg-web"],"tags":{},"observed_at":"2026-01-01T00:00:00Z","deleted":false}"#;

/// 2026-01-01T00:10:00Z .. +60 s, web → db on TCP 5432, accepted; then a
/// line with an impossible port (dead-lettered).
const FLOWS: &str = "2 123456789012 eni-web 10.0.1.20 10.0.2.10 49152 5432 6 10 840 1767226200 1767226260 ACCEPT OK\n\
                     2 123456789012 eni-web 10.0.1.20 10.0.2.10 49152 99999 6 10 840 1767226200 1767226260 ACCEPT OK\n";

/// The metric names (base names) of a Prometheus text exposition.
fn exported(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|n| base_name(n).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_of_alerts_and_dashboard_is_exported() {
    let used = referenced_psg_metrics();
    let required: BTreeSet<&str> = used.keys().map(String::as_str).filter(|n| !RARE_METRICS.contains(n)).collect();

    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    run_bin(&["keygen", "--out-dir", dir.join("keys").to_str().unwrap()], &[]);
    let addr = format!("127.0.0.1:{}", free_port());
    let log = dir.join("run.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("PSG_") || k == "KAFKA_BROKERS" || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    let child = cmd
        .args(["run", "--metrics-addr", &addr, "--signing-key"])
        .arg(dir.join("keys/signing.key"))
        .arg("--evidence-store")
        .arg(dir.join("evidence-store"))
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let run = Run { child, log };

    let started = Instant::now();
    let deadline = started + Duration::from_secs(50);
    let bootstrap = loop {
        let text = std::fs::read_to_string(&run.log).unwrap_or_default();
        let marker = "embedded broker (in memory, for trying out only): ";
        if let Some(b) = text.lines().find_map(|l| l.split(marker).nth(1)) {
            break b.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "run printed no embedded broker address");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    loop {
        if matches!(http_get(&addr, "/readyz").await, Ok((200, _))) {
            break;
        }
        assert!(Instant::now() < deadline, "run never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Inventory first; the flows once correlate has indexed it.
    produce(&bootstrap, "inventory.raw", "inventory", INVENTORY.as_bytes(), &[]).await;
    loop {
        let body = http_get(&addr, "/metrics").await.map(|(_, b)| b).unwrap_or_default();
        if metric_value(&body, "psg_correlate_index_resources").is_some_and(|v| v >= 2.0) {
            break;
        }
        assert!(Instant::now() < deadline, "correlate never indexed the inventory");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    produce(&bootstrap, "flowlogs.raw", "shipper", FLOWS.as_bytes(), &[]).await;

    let mut missing: Vec<&str>;
    loop {
        let body = http_get(&addr, "/metrics").await.map(|(_, b)| b).unwrap_or_default();
        let have = exported(&body);
        missing = required.iter().copied().filter(|n| !have.contains(*n)).collect();
        if missing.is_empty() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let missing: Vec<String> = missing.iter().map(|n| format!("{n} (used by {})", used[*n])).collect();
    assert!(missing.is_empty(), "not exported by a running service: {missing:#?}");
    eprintln!(
        "deploy: {} psg_* metrics referenced, {} seen live, {} allow-listed as rare, in {:?}",
        used.len(),
        required.len(),
        used.keys().filter(|n| RARE_METRICS.contains(&n.as_str())).count(),
        started.elapsed()
    );
}

#[test]
fn promql_names_are_extracted() {
    let names = promql_metric_names(
        r#"sum by (service, kind) (rate(psg_dead_letters_total{service!="ingest", kind=~"a|b"}[5m])) > 0
           and on() (sum(increase(psg_x_total[$__rate_interval])) or on() vector(0)) == 0
           or absent(up{job="psg-ingest"}) and time() - max(psg_w_seconds) > 1e3"#,
    );
    let want: BTreeSet<String> =
        ["psg_dead_letters_total", "psg_x_total", "up", "psg_w_seconds"].iter().map(|s| s.to_string()).collect();
    assert_eq!(names, want);
    assert_eq!(base_name("psg_batch_duration_seconds_count"), "psg_batch_duration_seconds");
    assert_eq!(slug("`scope_drift`"), "scope_drift");
    assert_eq!(slug("PSGServiceDown"), "psgservicedown");
}
