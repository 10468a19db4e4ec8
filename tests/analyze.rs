//! `pci-scope-guard analyze` on a small estate built to hit every scope rule
//! and every alert type (tests/fixtures/estate): the four services over the
//! embedded broker, the documented JSON on standard output, and the files of
//! `--out-dir`.

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_pci-scope-guard");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/estate");

fn resource<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["resource_id"] == id)
        .unwrap_or_else(|| panic!("{id} is not in the report"))
}

fn alerts_of<'a>(report: &'a Value, alert_type: &str) -> Vec<&'a Value> {
    report["alerts"].as_array().expect("alerts").iter().filter(|a| a["alert_type"] == alert_type).collect()
}

#[test]
fn analyze_prints_the_documented_json_for_every_rule_and_alert() {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args(["analyze", "--output", "json"])
        .arg("--inventory")
        .arg(format!("{FIXTURES}/inventory.jsonl"))
        .arg("--flows")
        .arg(format!("{FIXTURES}/flows.log"))
        .arg("--decisions")
        .arg(format!("{FIXTURES}/decisions.json"))
        .arg("--out-dir")
        .arg(out_dir.path())
        .output()
        .expect("run analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "analyze failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");

    // The documented shape.
    assert_eq!(report["as_of"], "2026-01-01T00:17:40.000000Z");
    let summary = &report["summary"];
    for (key, n) in [
        ("cde", 2),
        ("connected-cde", 4),
        ("out-of-scope", 3),
        ("pending-review", 1),
        ("flow_records", 6),
        ("dead_lettered", 1),
    ] {
        assert_eq!(summary[key], n, "summary.{key}: {summary}");
    }
    for r in report["resources"].as_array().expect("resources") {
        for key in [
            "resource_id",
            "provider",
            "resource_type",
            "resource_name",
            "scope",
            "data_classification",
            "justification",
            "dependency_resource_ids",
        ] {
            assert!(r.get(key).is_some(), "resource without {key}: {r}");
        }
    }
    for a in report["alerts"].as_array().expect("alerts") {
        for key in ["alert_type", "severity", "resource_id", "title", "description"] {
            assert!(a.get(key).is_some(), "alert without {key}: {a}");
        }
    }

    // Every scope rule, in order.
    let scope = |id: &str| resource(&report, id)["scope"].as_str().expect("scope").to_owned();
    assert_eq!(scope("legacy"), "out-of-scope", "1. manual decision");
    assert!(resource(&report, "legacy")["justification"].as_str().expect("j").contains("air-gapped"));
    assert_eq!(scope("db"), "cde", "2. pci-scope=cde");
    assert_eq!(scope("vault"), "cde", "2. pci-data");
    assert_eq!(resource(&report, "vault")["data_classification"], "stores-cardholder");
    assert_eq!(scope("web"), "connected-cde", "3. ACCEPTed flow with the CDE");
    assert_eq!(resource(&report, "web")["dependency_resource_ids"], serde_json::json!(["db"]));
    assert!(resource(&report, "web")["justification"].as_str().expect("j").contains("TCP/5432"));
    assert_eq!(scope("mon"), "connected-cde", "4. pci-scope=connected-cde");
    assert_eq!(scope("hr"), "out-of-scope", "5. pci-scope=out-of-scope");
    assert_eq!(scope("scanner"), "out-of-scope", "REJECTed flows connect nothing");
    assert_eq!(scope("new"), "pending-review", "6. otherwise");
    assert_eq!(scope("corp"), "connected-cde", "declared out-of-scope, but a CDE flow");
    let unknown = resource(&report, "ip:10.0.9.9");
    assert_eq!(
        (unknown["resource_type"].as_str(), unknown["scope"].as_str()),
        (Some("unknown_host"), Some("connected-cde"))
    );

    // Every alert type.
    let violation = alerts_of(&report, "segmentation_violation");
    assert_eq!(violation.len(), 1, "{violation:?}");
    assert_eq!(
        (violation[0]["resource_id"].as_str(), violation[0]["severity"].as_str()),
        (Some("corp"), Some("critical"))
    );
    assert!(violation[0]["title"].as_str().expect("title").contains("jenkins"), "{}", violation[0]);
    assert!(alerts_of(&report, "scope_drift").iter().any(|a| a["resource_id"] == "corp"));
    let unknown = alerts_of(&report, "unknown_system");
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0]["resource_id"], "ip:10.0.9.9");
    let internet = alerts_of(&report, "cde_internet");
    assert_eq!(internet.len(), 1);
    assert!(internet[0]["description"].as_str().expect("d").contains("203.0.113.7"));
    let untagged: Vec<&str> =
        alerts_of(&report, "untagged_resource").iter().filter_map(|a| a["resource_id"].as_str()).collect();
    assert!(untagged.contains(&"web") && untagged.contains(&"new"), "{untagged:?}");
    assert!(!untagged.contains(&"db"));

    // External connections of the CDE; the response record joined its request.
    assert_eq!(
        report["external_connections"],
        serde_json::json!([{"resource_id": "db", "address": "203.0.113.7", "protocol": "TCP", "port": 443, "flows": 1}])
    );
    let web_db: Vec<&Value> = report["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter(|e| {
            (e["source"] == "web" && e["destination"] == "db") || (e["source"] == "db" && e["destination"] == "web")
        })
        .collect();
    assert_eq!(web_db.len(), 1, "one connection, one edge: {web_db:?}");
    assert_eq!((web_db[0]["source"].as_str(), web_db[0]["port"].as_i64()), (Some("web"), Some(5432)));

    // The files of --out-dir: reports, diagram, verified evidence.
    let dir = out_dir.path();
    for f in ["report.json", "report.md", "report.csv", "diagram.svg", "diagram.mmd", "diagram.dot"] {
        let len = std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 100, "{f} is missing or empty");
    }
    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    assert!(md.contains("## Cardholder data environment (CDE) (2)"), "{md}");
    let svg = std::fs::read_to_string(dir.join("diagram.svg")).expect("svg");
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{}", &svg[..80.min(svg.len())]);
    assert!(svg.contains("payments-db"));
    let verification = std::fs::read_to_string(dir.join("evidence-verification.txt")).expect("verification");
    assert!(verification.starts_with("OK: "), "{verification}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("evidence/manifest.json")).expect("manifest")).expect("json");
    let decisions = report["resources"].as_array().expect("resources").len();
    assert!(manifest["records"].as_array().expect("records").len() >= decisions, "a record per decision at least");
    // The bundle verifies with the CLI too.
    let verified = Command::new(BIN).args(["evidence", "verify"]).arg(dir.join("evidence")).output().expect("verify");
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
}

#[test]
fn analyze_explains_bad_arguments() {
    let out = Command::new(BIN)
        .args(["analyze", "--inventory", "/nonexistent/inv.json", "--flows", "/nonexistent/f.log"])
        .output()
        .expect("run analyze");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--inventory /nonexistent/inv.json"), "{err}");
    let out = Command::new(BIN)
        .args(["analyze", "--inventory", FIXTURES, "--flows", FIXTURES, "--flow-format", "netflow"])
        .output()
        .expect("run analyze");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not one of auto, aws, azure, gcp"));
}
