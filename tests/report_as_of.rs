//! Issue 19: `report --as-of T` and `diagram --as-of T` regenerate, later,
//! the report and diagram as they were at T — after decisions, tags,
//! alerts, their lifecycle and flows changed — and differ from now's.
//!
//! Needs PostgreSQL (`TEST_DATABASE_ADMIN_URL`, default the local server).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use psg_domain::ids::{resource_uuid, stable_id};
use psg_domain::rows::{AlertRow, DataFlowRow, ResourceRow, ScopeDecisionRow};
use psg_domain::{AlertStatus, AlertType, CloudProvider, EdgeDirection, FlowAction, PciScope, ResourceType, Severity};
use psg_store::Store;
use psg_store::resources::ResourceObservation;
use psg_testkit::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_pci-scope-guard");

fn resource(id: &str, tags: &[(&str, &str)], at: DateTime<Utc>) -> ResourceObservation {
    ResourceObservation {
        row: ResourceRow {
            id: resource_uuid(id),
            provider: CloudProvider::Aws,
            resource_type: ResourceType::Ec2Instance,
            resource_id: id.into(),
            resource_arn: None,
            resource_name: Some(format!("{id}-name")),
            vpc_id: Some("vpc-1".into()),
            subnet_id: None,
            availability_zone: None,
            region: Some("us-east-1".into()),
            metadata: serde_json::json!({}),
            private_ip: None,
            public_ip: None,
            security_groups: serde_json::json!([]),
            discovered_at: at,
            last_seen_at: at,
            is_active: true,
            private_ips: vec![],
            public_ips: vec![],
            interface_ids: vec![],
        },
        tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
        applied_by: "inventory".into(),
    }
}

fn decision(name: &str, resource: &str, scope: PciScope, at: DateTime<Utc>) -> ScopeDecisionRow {
    ScopeDecisionRow {
        justification: format!("{name}: {}", scope.as_str()),
        decided_at: at,
        ..psg_testkit::rows::decision(name, resource, scope)
    }
}

fn alert(name: &str, resource: &str, peer: &str, at: DateTime<Utc>) -> AlertRow {
    AlertRow {
        id: stable_id("alert", &[name]),
        severity: Severity::Critical,
        alert_type: AlertType::SegmentationViolation,
        title: format!("{name}: {resource} talks to {peer}"),
        description: name.into(),
        resource_id: Some(resource_uuid(resource)),
        triggered_at: at,
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        resolved_by: None,
        status: AlertStatus::Open,
        context: serde_json::json!({"peer": peer, "pci_requirement": "1.3.1"}),
    }
}

/// A flow window from `src` to `dst` on `port`, its flows seen from
/// `first` to `last`.
fn flow(src: &str, dst: &str, port: i32, first: DateTime<Utc>, last: DateTime<Utc>, flows: i64) -> DataFlowRow {
    DataFlowRow {
        id: stable_id("edge", &[src, dst, &port.to_string(), &first.timestamp().to_string()]),
        source_resource_id: resource_uuid(src),
        dest_resource_id: resource_uuid(dst),
        protocol: "TCP".into(),
        src_port: None,
        dst_port: port,
        packet_count: flows * 10,
        byte_count: flows * 1000,
        flow_direction: EdgeDirection::IntraVpc,
        action: FlowAction::Accept,
        observed_at: first,
        window_start: first,
        window_end: first + chrono::Duration::minutes(10),
        flow_count: flows,
        first_seen: first,
        last_seen: last,
        encrypted_flow_count: 0,
        unencrypted_flow_count: 0,
        action_logged: true,
    }
}

/// Runs the binary against `db`; its standard output.
fn run(db: &TestDb, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .args(["--database-url", &db.url])
        .env_remove("DATABASE_URL")
        .output()
        .expect("run pci-scope-guard");
    assert!(out.status.success(), "{args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn report_json(db: &TestDb, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["report", "--format", "json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&run(db, &args)).expect("report JSON")
}

/// The report without its `as_of` header.
fn body(mut v: serde_json::Value) -> serde_json::Value {
    v.as_object_mut().expect("an object").remove("as_of");
    v
}

#[tokio::test]
async fn a_report_regenerated_as_of_t_is_the_report_made_at_t() {
    let db = TestDb::create().await;
    psg_store::migrate(&psg_store::pool(&db.url, 1).expect("pool")).await.expect("migrate");
    let store = Store::connect(&db.url, 2).await.expect("store");
    let now = Utc::now();
    let ago = |m: i64| now - chrono::Duration::minutes(m);

    // Before T: a CDE database, an app connected to it, a batch host out
    // of scope; flows app → db and batch → app; an alert on batch → db
    // that an operator acknowledged, and one on app still open.
    psg_store::resources::upsert_resources(
        &store,
        &[
            resource("db-1", &[("pci", "cde")], ago(120)),
            resource("app-1", &[("team", "payments")], ago(120)),
            resource("batch-1", &[], ago(120)),
        ],
    )
    .await
    .expect("resources");
    psg_store::decisions::write_decisions(
        &store,
        &[
            decision("db-1 v1", "db-1", PciScope::Cde, ago(110)),
            decision("app-1 v1", "app-1", PciScope::ConnectedCde, ago(100)),
            decision("batch-1 v1", "batch-1", PciScope::OutOfScope, ago(100)),
        ],
    )
    .await
    .expect("decisions");
    psg_store::flows::upsert_data_flows(
        &store,
        &[flow("app-1", "db-1", 5432, ago(90), ago(85), 40), flow("batch-1", "app-1", 8080, ago(80), ago(75), 7)],
    )
    .await
    .expect("flows");
    let acked = alert("batch to db", "batch-1", "db-1", ago(70));
    let open = alert("app exposed", "app-1", "ext:203.0.113.9", ago(60));
    psg_store::decisions::insert_alerts(&store, &[acked.clone(), open.clone()]).await.expect("alerts");
    psg_store::operator::set_alert_status(&store, acked.id, "acknowledged", &["open"], "alice")
        .await
        .expect("acknowledge");

    let at_t = report_json(&db, &[]);
    let diagram_at_t = run(&db, &["diagram", "--format", "mermaid"]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;

    // After T: batch-1 becomes connected-cde, app-1's tags change, a new
    // system and flows appear (a new edge, and more flows on an old one in
    // a later window), a new alert is raised, the acknowledged one is
    // resolved and the open one closed as a false positive.
    let later = Utc::now();
    psg_store::resources::upsert_resources(
        &store,
        &[resource("app-1", &[("team", "checkout")], later), resource("cache-1", &[], later)],
    )
    .await
    .expect("resources after T");
    psg_store::decisions::write_decisions(
        &store,
        &[
            decision("batch-1 v2", "batch-1", PciScope::ConnectedCde, later),
            decision("cache-1 v1", "cache-1", PciScope::ConnectedCde, later),
        ],
    )
    .await
    .expect("decisions after T");
    let after = t + chrono::Duration::minutes(5);
    psg_store::flows::upsert_data_flows(
        &store,
        &[
            flow("cache-1", "db-1", 6379, after, after, 3),
            flow("app-1", "db-1", 5432, after, after + chrono::Duration::minutes(1), 12),
        ],
    )
    .await
    .expect("flows after T");
    psg_store::decisions::insert_alerts(&store, &[alert("cache to db", "cache-1", "db-1", later)])
        .await
        .expect("alert after T");
    psg_store::operator::set_alert_status(&store, acked.id, "resolved", &["acknowledged"], "bob")
        .await
        .expect("resolve");
    psg_store::operator::set_alert_status(&store, open.id, "false_positive", &["open"], "bob").await.expect("close");

    let now_report = report_json(&db, &[]);
    assert_ne!(body(now_report.clone()), body(at_t.clone()), "the changes after T show in today's report");

    let t_text = t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let as_of = report_json(&db, &["--as-of", &t_text]);
    assert_eq!(body(as_of.clone()), body(at_t.clone()), "report --as-of T == the report made at T");
    assert_eq!(as_of["as_of"].as_str(), Some(t_text.as_str()), "the header says T");
    // What it contains, so that an empty pair would not pass.
    assert_eq!(as_of["resources"].as_array().map(Vec::len), Some(3));
    let scope_of = |v: &serde_json::Value, id: &str| {
        v["resources"].as_array().unwrap().iter().find(|r| r["resource_id"] == id).map(|r| r["scope"].clone())
    };
    assert_eq!(scope_of(&as_of, "batch-1"), Some(serde_json::json!("out-of-scope")));
    assert_eq!(scope_of(&now_report, "batch-1"), Some(serde_json::json!("connected-cde")));
    let statuses: Vec<&str> = as_of["alerts"].as_array().unwrap().iter().filter_map(|a| a["status"].as_str()).collect();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert!(statuses.contains(&"acknowledged") && statuses.contains(&"open"), "{statuses:?}");
    assert_eq!(as_of["edges"].as_array().map(Vec::len), Some(2), "{}", as_of["edges"]);

    // The diagram too, but for its "as of" line.
    let strip = |s: &str| s.lines().filter(|l| !l.contains("s of ")).collect::<Vec<_>>().join("\n");
    let diagram_as_of = run(&db, &["diagram", "--format", "mermaid", "--as-of", &t_text]);
    assert_eq!(strip(&diagram_as_of), strip(&diagram_at_t), "diagram --as-of T == the diagram made at T");
    assert_ne!(strip(&run(&db, &["diagram", "--format", "mermaid"])), strip(&diagram_at_t));

    // A time before anything was decided: an empty report, not an error.
    let empty = report_json(&db, &["--as-of", "2000-01-01"]);
    assert_eq!(empty["resources"].as_array().map(Vec::len), Some(0));
    assert_eq!(empty["edges"].as_array().map(Vec::len), Some(0));
}
