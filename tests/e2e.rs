//! End to end: the four services as four OS processes of the real binary,
//! against a tansu broker process and PostgreSQL.
//!
//! The thin path: one AWS VPC flow-log line (default v2 format) on
//! `flowlogs.raw` and two resources (native JSON: a CDE database and an
//! untagged web server) on `inventory.raw` → ingest → correlate → classify →
//! evidence → a signed `evidence` row for the web server's `connected-cde`
//! decision. Then SIGTERM: every process commits and exits 0 within 10 s.

use std::process::Command;
use std::time::{Duration, Instant};

use psg_domain::{FlowEdge, PciScope, ScopeDecision};
use psg_testkit::kafka::{committed_offsets, consume_until, produce};
use psg_testkit::procs::Procs;
use psg_testkit::{Tansu, TestDb, http_get, metric_value, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_pci-scope-guard");

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run pci-scope-guard");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pci-scope-guard {args:?} failed:\n{text}");
    text
}

const INVENTORY: &str = r#"{"provider":"aws","resource_type":"rds_instance","resource_id":"db-payments","resource_name":"payments-db","region":"us-east-1","vpc_id":"vpc-1","subnet_id":"subnet-db","private_ips":["10.0.2.10"],"interface_ids":["eni-db"],"security_groups":["sg-db"],"tags":{"pci-scope":"cde"},"observed_at":"2026-01-01T00:00:00Z","deleted":false}
{"provider":"aws","resource_type":"ec2_instance","resource_id":"i-web","resource_name":"web-1","region":"us-east-1","vpc_id":"vpc-1","subnet_id":"subnet-web","private_ips":["10.0.1.20"],"interface_ids":["eni-web"],"security_groups":["sg-web"],"tags":{},"observed_at":"2026-01-01T00:00:00Z","deleted":false}"#;

/// 2026-01-01T00:10:00Z .. +60 s, web → db on TCP 5432, accepted.
const FLOW: &str = "2 123456789012 eni-web 10.0.1.20 10.0.2.10 49152 5432 6 10 840 1767226200 1767226260 ACCEPT OK";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thin_path_through_four_processes_on_tansu_and_postgres() {
    let db = TestDb::create().await;
    let tansu = Tansu::start();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let brokers = tansu.bootstrap.as_str();
    eprintln!("e2e: tansu broker at {brokers}, PostgreSQL database {}", db.name);

    // migrate twice: the second run changes nothing
    let first = run(&["migrate", "--database-url", &db.url]);
    assert!(first.contains("applied 0001"), "{first}");
    let second = run(&["migrate", "--database-url", &db.url]);
    assert!(second.contains("nothing changed"), "{second}");
    run(&["keygen", "--out-dir", dir.join("keys").to_str().expect("utf-8 path")]);
    let key = dir.join("keys/signing.key");
    let store = dir.join("evidence-store");

    let mut services = Procs::new(BIN, dir);
    let common = ["--brokers", brokers, "--database-url", &db.url, "--metrics-addr", "127.0.0.1:0"];
    for name in ["ingest", "correlate", "classify"] {
        services.spawn(name, &[&[name][..], &common[..]].concat(), &[]);
    }
    let evidence_args =
        ["--signing-key", key.to_str().expect("utf-8 path"), "--evidence-store", store.to_str().expect("utf-8 path")];
    services.spawn("evidence", &[&["evidence"][..], &common[..], &evidence_args[..]].concat(), &[]);
    let correlate_metrics = services.metrics_addr("correlate");
    for name in ["ingest", "classify", "evidence"] {
        let addr = services.metrics_addr(name);
        wait_for(&format!("{name} /readyz"), Duration::from_secs(60), async || {
            matches!(http_get(&addr, "/readyz").await, Ok((200, _))).then_some(())
        })
        .await;
    }

    // Inventory first; the flow once correlate has indexed it.
    produce(brokers, "inventory.raw", "inventory", INVENTORY.as_bytes(), &[]).await;
    wait_for("correlate to index both resources", Duration::from_secs(60), async || {
        let (_, body) = http_get(&correlate_metrics, "/metrics").await.ok()?;
        (metric_value(&body, "psg_correlate_index_resources")? >= 2.0).then_some(())
    })
    .await;
    let bad = "2 123456789012 eni-web 10.0.1.20 10.0.2.10 49152 99999 6 10 840 1767226200 1767226260 ACCEPT OK";
    produce(brokers, "flowlogs.raw", "shipper", format!("{FLOW}\n{bad}\n").as_bytes(), &[]).await;

    // The bad line is dead-lettered with its reason and position; the good one goes on.
    let dlq = consume_until(brokers, "ingest.dlq", Duration::from_secs(60), |r| !r.is_empty()).await;
    assert_eq!(dlq[0].payload, bad.as_bytes());
    assert_eq!(dlq[0].header("psg.dlq.source.topic").as_deref(), Some("flowlogs.raw"));
    assert_eq!(dlq[0].header("psg.dlq.line").as_deref(), Some("2"));
    assert!(dlq[0].header("psg.dlq.reason").unwrap_or_default().contains("dstport"), "{:?}", dlq[0]);

    let edges = consume_until(brokers, "flows.edges", Duration::from_secs(60), |r| !r.is_empty()).await;
    let edge: FlowEdge = psg_avro_codec::decode(&edges[0].payload).expect("FlowEdge");
    assert_eq!((edge.src.resource_id.as_str(), edge.dst.resource_id.as_str()), ("i-web", "db-payments"));
    assert_eq!((edge.protocol, edge.dst_port, edge.packets, edge.bytes), (6, 5432, 10, 840));

    let decisions = consume_until(brokers, "scope.decisions", Duration::from_secs(60), |r| {
        r.iter().any(|m| {
            psg_avro_codec::decode::<ScopeDecision>(&m.payload)
                .is_ok_and(|d| d.resource_id == "i-web" && d.scope == PciScope::ConnectedCde)
        })
    })
    .await;
    let web: ScopeDecision = decisions
        .iter()
        .filter_map(|m| psg_avro_codec::decode::<ScopeDecision>(&m.payload).ok())
        .find(|d| d.resource_id == "i-web" && d.scope == PciScope::ConnectedCde)
        .expect("decision");
    assert_eq!(web.dependency_resource_ids, vec!["db-payments"]);
    assert!(web.justification.contains("db-payments (to TCP/5432"), "{}", web.justification);

    // The database has the flow row, the current decision and its signed evidence.
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.expect("db");
    tokio::spawn(conn);
    let evidence = wait_for("the evidence row of the web server's decision", Duration::from_secs(60), async || {
        let id: uuid::Uuid = web.decision_id.parse().ok()?;
        client
            .query_opt(
                "SELECT e.hash, e.signature, e.storage_url, e.chain, e.sequence, e.expires_at > e.generated_at + interval '6 years',
                        l.checkpoint_size,
                        ARRAY(SELECT encode(substring(l.inclusion FROM 32 * g + 1 FOR 32), 'base64')
                                FROM generate_series(0, length(l.inclusion) / 32 - 1) AS g ORDER BY g)
                   FROM evidence e JOIN scope_decisions d ON d.id = e.scope_decision_id
                   JOIN evidence_log l ON l.evidence_id = e.id
                  WHERE d.id = $1 AND d.is_current AND d.scope = 'connected-cde'",
                &[&id],
            )
            .await
            .ok()
            .flatten()
    })
    .await;
    let (hash, signature, url): (String, String, String) = (evidence.get(0), evidence.get(1), evidence.get(2));
    assert!(evidence.get::<_, bool>(5), "expires_at is generated_at + 7 years");
    // The document is its byte range of the batch's segment.
    let at = psg_evidence::documents::Location::parse(url.trim_start_matches("file://")).expect("a document URL");
    assert!(at.path.contains("/pci_scope_identification/segments/"), "{url}");
    let segment = std::fs::read(&at.path).expect("evidence segment");
    let range = at.range.expect("a byte range");
    let document = segment[range.start as usize..range.end as usize].to_vec();
    let public = psg_evidence::keys::load_verifying_key(&dir.join("keys/signing.pub")).expect("public key");
    // Sealed by the evidence log: the checkpoint's signature and the
    // record's inclusion proof against it.
    let (checkpoint, proof): (i64, Vec<String>) = (evidence.get(6), evidence.get(7));
    let seal = psg_evidence::record::SealProof { checkpoint: checkpoint.unsigned_abs(), proof: &proof };
    psg_evidence::record::verify(&document, &hash, &signature, &public, Some(seal)).expect("evidence verifies offline");
    let flows: i64 = client
        .query_one(
            "SELECT count(*) FROM data_flows f JOIN resources s ON s.id = f.source_resource_id
               JOIN resources d ON d.id = f.dest_resource_id
              WHERE s.resource_id = 'i-web' AND d.resource_id = 'db-payments' AND f.dst_port = 5432
                AND f.action = 'ACCEPT' AND f.packet_count = 10 AND f.byte_count = 840",
            &[],
        )
        .await
        .expect("data_flows")
        .get(0);
    assert_eq!(flows, 1);
    let cde: String = client
        .query_one(
            "SELECT d.scope::text FROM scope_decisions d JOIN resources r ON r.id = d.resource_id
              WHERE r.resource_id = 'db-payments' AND d.is_current",
            &[],
        )
        .await
        .expect("db decision")
        .get(0);
    assert_eq!(cde, "cde");

    // On demand: the day's reports, made by the running evidence service.
    let store_arg = store.to_str().expect("utf-8 path");
    let asked = run(&[
        "evidence",
        "attest",
        "--brokers",
        brokers,
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-02",
        "--type",
        "network_segmentation_validation",
        "--type",
        "data_flow_analysis",
        "--requested-by",
        "e2e",
    ]);
    assert!(asked.contains("requested reports"), "{asked}");
    let summary = wait_for("the on-demand segmentation report", Duration::from_secs(60), async || {
        client
            .query_opt(
                "SELECT data->'summary' FROM evidence
                  WHERE chain = 'network_segmentation_validation' AND data->>'trigger' = 'on-demand'",
                &[],
            )
            .await
            .ok()
            .flatten()
            .map(|r| r.get::<_, serde_json::Value>(0))
    })
    .await;
    assert_eq!(summary["accepted_crossings"], 1, "{summary}");
    assert_eq!(summary["accepted_flows"], 1, "{summary}");

    // Operator commands against the running deployment.
    let report: serde_json::Value =
        serde_json::from_str(&run(&["report", "--database-url", &db.url, "--format", "json"])).expect("report json");
    let scope_in_report = |id: &str| {
        report["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["resource_id"] == id)
            .map(|r| r["scope"].clone())
    };
    assert_eq!(scope_in_report("i-web"), Some("connected-cde".into()), "{report}");
    assert_eq!(scope_in_report("db-payments"), Some("cde".into()));
    assert_eq!(report["summary"]["cde"], 1);
    let mermaid = run(&["diagram", "--database-url", &db.url, "--format", "mermaid"]);
    assert!(mermaid.contains("flowchart") && mermaid.contains("payments-db"), "{mermaid}");
    let listed = run(&["alerts", "list", "--database-url", &db.url, "--type", "untagged_resource", "--json"]);
    let alert: serde_json::Value =
        serde_json::from_str(listed.lines().next().expect("an untagged alert")).expect("json");
    let alert_id = alert["alert_id"].as_str().expect("id").to_owned();
    run(&["alerts", "ack", &alert_id[..8], "--database-url", &db.url, "--user", "alice@example.com"]);
    let again = Command::new(BIN)
        .args(["alerts", "ack", &alert_id, "--database-url", &db.url, "--user", "alice@example.com"])
        .output()
        .expect("ack again");
    assert_eq!(again.status.code(), Some(2), "acknowledging twice is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("it can become acknowledged only when it is open"));
    run(&["alerts", "resolve", &alert_id, "--database-url", &db.url, "--user", "bob@example.com"]);
    let row = client
        .query_one("SELECT status, acknowledged_by, resolved_by FROM alerts WHERE id = $1::text::uuid", &[&alert_id])
        .await
        .expect("alert row");
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, Option<String>>(1), row.get::<_, Option<String>>(2)),
        ("resolved".into(), Some("alice@example.com".into()), Some("bob@example.com".into()))
    );
    run(&[
        "decide",
        "i-web",
        "--scope",
        "out-of-scope",
        "--justification",
        "isolated by NACL, reviewed with the QSA",
        "--brokers",
        brokers,
        "--database-url",
        &db.url,
        "--user",
        "carol@example.com",
    ]);
    wait_for("the manual decision to be applied", Duration::from_secs(60), async || {
        client
            .query_opt(
                "SELECT 1 FROM scope_decisions d JOIN resources r ON r.id = d.resource_id
                  WHERE r.resource_id = 'i-web' AND d.is_current AND d.scope = 'out-of-scope'
                    AND d.decision_method = 'manual' AND d.decided_by = 'carol@example.com'",
                &[],
            )
            .await
            .ok()
            .flatten()
    })
    .await;
    let audit: Vec<(String, String, bool)> = client
        .query("SELECT action, user_id, success FROM audit_logs ORDER BY timestamp", &[])
        .await
        .expect("audit_logs")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        audit,
        [
            ("alert.acknowledged".to_owned(), "alice@example.com".to_owned(), true),
            ("alert.acknowledged".to_owned(), "alice@example.com".to_owned(), false),
            ("alert.resolved".to_owned(), "bob@example.com".to_owned(), true),
            ("scope.decide".to_owned(), "carol@example.com".to_owned(), true),
        ]
    );

    // SIGTERM: each process commits what it finished and exits 0 within 10 s.
    for name in services.names() {
        let started = Instant::now();
        let exit = services.terminate(&name, Duration::from_secs(10));
        let exit = exit.unwrap_or_else(|| panic!("{name} did not exit within 10 s of SIGTERM"));
        assert!(exit.success(), "{name} exited with {exit} after SIGTERM");
        eprintln!("e2e: {name} exited 0 {} ms after SIGTERM", started.elapsed().as_millis());
    }
    // What ingest finished is committed: both input messages are behind its offsets.
    let committed = committed_offsets(brokers, "pci-scope-guard-ingest", "inventory.raw", 3).await;
    let flows = committed_offsets(brokers, "pci-scope-guard-ingest", "flowlogs.raw", 3).await;
    assert_eq!(committed.iter().map(|(_, o)| o).sum::<i64>(), 1, "inventory.raw commits: {committed:?}");
    assert_eq!(flows.iter().map(|(_, o)| o).sum::<i64>(), 1, "flowlogs.raw commits: {flows:?}");
    // Export → verify offline with the trusted public key; then verify the database.
    let bundle = dir.join("bundle");
    let bundle_arg = bundle.to_str().expect("utf-8 path");
    let exported = run(&["evidence", "export", "--database-url", &db.url, "--evidence-store", store_arg, bundle_arg]);
    assert!(exported.contains("exported"), "{exported}");
    assert!(exported.contains("evidence log"), "says whether the bundle has its evidence log: {exported}");
    let public_arg = dir.join("keys/signing.pub");
    let verified = run(&["evidence", "verify", bundle_arg, "--keyring", public_arg.to_str().expect("utf-8 path")]);
    assert!(verified.contains("OK: "), "{verified}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).expect("manifest")).expect("json");
    let records = manifest["records"].as_array().expect("records").len();
    assert!(records >= 4, "decisions of both resources and two reports: {manifest}");
    // The records are the service's: the bundle is an excerpt of its evidence
    // log, with the checkpoints it signed as it sealed them.
    assert!(exported.contains("of the service's log"), "{exported}");
    assert_eq!(manifest["log"]["excerpt"], true, "{manifest}");
    assert!(verified.contains("an excerpt"), "{verified}");
    assert!(verified.contains(&format!("OK: {records} records verified")), "{verified}");
    let in_db = run(&["evidence", "verify", "--database-url", &db.url, "--evidence-store", store_arg]);
    assert!(in_db.contains(&format!("{records} verified")), "{in_db}");
    // ... and the evidence log as the service stored it.
    assert!(in_db.contains("signed checkpoints verified"), "{in_db}");
    assert!(in_db.contains(&format!("{records} of the {records} records here verified in it")), "{in_db}");
    assert!(!in_db.contains("FAIL"), "{in_db}");
    // A leaf changed behind the append-only trigger's back: the stored
    // log no longer gives its signed roots, and verification says so.
    let leaf: String =
        client.query_one("SELECT record_hash FROM evidence_log WHERE log_index = 0", &[]).await.expect("leaf").get(0);
    let forged = "ab".repeat(32);
    client
        .batch_execute(&format!(
            "ALTER TABLE evidence_log_batches DISABLE TRIGGER USER;
             UPDATE evidence_log_batches
                SET record_hashes = overlay(record_hashes PLACING decode('{forged}', 'hex') FROM 1 FOR 32)
              WHERE first_index = 0;"
        ))
        .await
        .expect("tamper with the log");
    let out = Command::new(BIN)
        .args(["evidence", "verify", "--database-url", &db.url, "--evidence-store", store_arg])
        .output()
        .expect("verify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a changed log must fail: {text}");
    assert!(text.contains("FAIL evidence log: checkpoint of") && text.contains("the stored log was changed"), "{text}");
    assert!(text.contains("is not its log leaf"), "{text}");
    client
        .batch_execute(&format!(
            "UPDATE evidence_log_batches
                SET record_hashes = overlay(record_hashes PLACING decode('{leaf}', 'hex') FROM 1 FOR 32)
              WHERE first_index = 0;
             ALTER TABLE evidence_log_batches ENABLE TRIGGER USER;"
        ))
        .await
        .expect("restore the log");
    let counted: i64 = client
        .query_one("SELECT count(*) FROM evidence WHERE verification_count = 1 AND last_verified_at IS NOT NULL", &[])
        .await
        .expect("verification bookkeeping")
        .get(0);
    assert_eq!(counted, records as i64);
    // A segment gone from the store fails verification, naming where each
    // of its records' documents was: the segment and the record's bytes.
    let away = format!("{}.away", at.path);
    std::fs::rename(&at.path, &away).expect("move the segment away");
    let out = Command::new(BIN)
        .args(["evidence", "verify", "--database-url", &db.url, "--evidence-store", store_arg])
        .output()
        .expect("verify");
    std::fs::rename(&away, &at.path).expect("put the segment back");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "a missing segment must fail: {text}");
    assert!(text.contains("is missing") && text.contains("/segments/") && text.contains(".jsonl#bytes="), "{text}");
    // An orphan segment (what a crash leaves when the redelivered records
    // are batched another way): named by no record, so `evidence expire`
    // lists it and, with --orphans, removes it. The named segment, as old,
    // stays.
    let orphan = store.join(psg_evidence::record::segment_path("pci_scope_identification", 900_000, 900_001));
    std::fs::create_dir_all(orphan.parent().expect("a directory")).expect("segment directory");
    std::fs::copy(&at.path, &orphan).expect("an orphan segment");
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
    for file in [orphan.as_path(), std::path::Path::new(&at.path)] {
        std::fs::File::options().append(true).open(file).and_then(|f| f.set_modified(two_days_ago)).expect("mtime");
    }
    let expire = ["evidence", "expire", "--database-url", &db.url, "--evidence-store", store_arg];
    let listed = run(&[&expire[..], &["--dry-run", "--orphans", "--orphan-age-hours", "1"]].concat());
    assert!(listed.contains("found orphan segment") && listed.contains("#900000..#900001"), "{listed}");
    assert!(listed.contains("1 orphan segments written before") && listed.contains("dry run"), "{listed}");
    assert!(orphan.exists(), "a dry run removes nothing");
    let removed = run(&[&expire[..], &["--orphans", "--orphan-age-hours", "1"]].concat());
    assert!(removed.contains("removed 1 orphan segments"), "{removed}");
    assert!(!orphan.exists(), "the orphan is removed");
    assert!(std::path::Path::new(&at.path).exists(), "the segment records name stays");
    // A changed document fails verification, naming the record.
    let first = manifest["records"][0]["file"].as_str().expect("file");
    let doc_path = bundle.join(first);
    let mut doc = std::fs::read(&doc_path).expect("document");
    let at = doc.len() / 2;
    doc[at] ^= 0x20;
    std::fs::write(&doc_path, doc).expect("write");
    let out = Command::new(BIN).args(["evidence", "verify", bundle_arg]).output().expect("verify");
    assert_eq!(out.status.code(), Some(1), "tampered bundle must fail");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL ") && text.contains(" #1 ("), "{text}");

    eprintln!("e2e: thin path verified through 4 processes against tansu ({brokers}) and PostgreSQL ({})", db.name);
}
