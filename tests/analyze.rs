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
        ("pending-review", 2),
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
    assert_eq!(
        (scope("archive").as_str(), resource(&report, "archive")["rule"].as_str()),
        ("pending-review", Some("no-flow-log-coverage")),
        "6. declared out-of-scope, but its VPC sent no flow logs"
    );
    assert!(
        resource(&report, "hr")["justification"].as_str().expect("j").contains("flow logs of subnet sn-corp cover it"),
        "5. covered: {}",
        resource(&report, "hr")
    );
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
    let mut gaps: Vec<&str> =
        alerts_of(&report, "coverage_gap").iter().filter_map(|a| a["resource_id"].as_str()).collect();
    gaps.sort_unstable();
    assert_eq!(gaps, vec!["net-ops", "vpc-archive"], "the networks holding systems that sent no flow log");

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
    // Issue 20: the bundle carries its evidence log, one checkpoint of all
    // its records.
    assert!(verification.contains("evidence log: 1 signed checkpoint)"), "{verification}");
    let checkpoints = manifest["log"]["checkpoints"].as_array().expect("checkpoints");
    let records = manifest["records"].as_array().expect("records").len();
    assert_eq!(checkpoints.last().expect("one")["size"], records as u64);
    let note = std::fs::read_to_string(dir.join("evidence").join(checkpoints[0]["file"].as_str().expect("file")))
        .expect("checkpoint");
    assert!(note.starts_with("pci-scope-guard/evidence/") && note.contains(&format!("\n{records}\n")), "{note}");
    // The bundle verifies with the CLI too.
    let verified = Command::new(BIN).args(["evidence", "verify"]).arg(dir.join("evidence")).output().expect("verify");
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{stdout}");
    assert!(stdout.contains("evidence log pci-scope-guard/evidence/"), "{stdout}");
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

/// Runs `analyze --output json` with `args` (and `stdin`); the report and
/// standard error, or standard error on failure.
fn analyze_json(args: &[&std::ffi::OsStr], stdin: Option<std::fs::File>) -> Result<(Value, String), (i32, String)> {
    let mut cmd = Command::new(BIN);
    cmd.args(["analyze", "--output", "json"]).args(args);
    if let Some(f) = stdin {
        cmd.stdin(f);
    }
    let out = cmd.output().expect("run analyze");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err((out.status.code().unwrap_or(-1), stderr));
    }
    Ok((serde_json::from_slice(&out.stdout).expect("stdout is JSON"), stderr))
}

/// Flows counted in the report's edges (every line is its own connection).
fn edge_flows(report: &Value) -> i64 {
    report["edges"].as_array().expect("edges").iter().map(|e| e["flows"].as_i64().expect("flows")).sum()
}

/// `lines` AWS lines between 400 instances with 3 bad lines after the
/// 100,000th record (or the middle): the flow-log text, and the file line
/// numbers of the bad ones.
fn flow_log(lines: u64) -> (Vec<u8>, [i64; 3]) {
    let mut text = Vec::new();
    psg_estate::bulk::write_aws_v2(&mut text, lines, 400, 11).expect("lines");
    let after = (lines / 2).min(100_000) as usize;
    let cut = text.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(after).map(|(i, _)| i + 1).expect("cut");
    let bad = b"2 123456789012 eni-x not-an-address 10.1.0.2 1 2 6 1 80 1767225600 1767225660 ACCEPT OK\n\
                2 123456789012 eni-x 10.1.0.1 10.1.0.2 70000 2 6 1 80 1767225600 1767225660 ACCEPT OK\n\
                garbage\n";
    text.splice(cut..cut, bad.iter().copied());
    // header line 1, then record k on line k + 1
    let first = after as i64 + 2;
    (text, [first, first + 1, first + 2])
}

/// 200,000 AWS lines (21 MB: over 5 MB for each of the 3 partitions) plus 3
/// bad lines: every record counted, the bad ones dead-lettered with file and
/// line, and the end of the input closing every window (flows in the
/// report's edges = lines, each line being its own connection).
#[test]
fn analyze_counts_every_record_of_a_large_input() {
    const LINES: u64 = 200_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory.jsonl");
    std::fs::write(&inventory, psg_estate::bulk::inventory_jsonl(400)).expect("inventory");
    let (text, bad_lines) = flow_log(LINES);
    assert!(text.len() > 15 << 20, "{} bytes", text.len());
    let flows = dir.path().join("flows.log");
    std::fs::write(&flows, &text).expect("flows");

    let out_dir = dir.path().join("out");
    let args = ["--inventory".as_ref(), inventory.as_os_str(), "--flows".as_ref(), flows.as_os_str()];
    let (report, _) =
        analyze_json(&[&args[..], &["--out-dir".as_ref(), out_dir.as_os_str()]].concat(), None).expect("analyze");
    let summary = &report["summary"];
    assert_eq!(summary["records_read"], LINES + 3, "{summary}");
    assert_eq!(summary["flow_records"], LINES, "{summary}");
    assert_eq!(summary["dead_lettered"], 3, "{summary}");
    assert_eq!(edge_flows(&report), LINES as i64, "the last windows closed: every line in an edge");
    let dead: Vec<Value> = std::fs::read_to_string(out_dir.join("dead-letters.jsonl"))
        .expect("dead letters")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let mut lines: Vec<i64> = dead.iter().map(|d| d["line"].as_i64().expect("line")).collect();
    lines.sort();
    assert_eq!(lines, bad_lines, "{dead:?}");
    assert!(dead.iter().all(|d| d["file"].as_str().is_some_and(|f| f.ends_with("flows.log"))));
    assert!(dead.iter().any(|d| d["reason"].as_str().is_some_and(|r| r.contains("srcaddr"))), "{dead:?}");
}

/// The same counts from a gzip file, a directory of parts (nested, one of
/// them gzipped, each with its header line) and standard input.
#[test]
fn analyze_reads_gzip_directories_and_standard_input() {
    const LINES: u64 = 30_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory.jsonl");
    std::fs::write(&inventory, psg_estate::bulk::inventory_jsonl(400)).expect("inventory");
    let (text, _) = flow_log(LINES);
    let flows = dir.path().join("flows.log");
    std::fs::write(&flows, &text).expect("flows");
    let gzip = |path: &std::path::Path, bytes: &[u8]| {
        let file = std::fs::File::create(path).expect("gz");
        let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, bytes).expect("gzip");
        enc.finish().expect("gzip");
    };
    let gz = dir.path().join("flows.log.gz");
    gzip(&gz, &text);
    let parts = dir.path().join("parts");
    std::fs::create_dir_all(parts.join("b/c")).expect("dirs");
    let header_end = text.iter().position(|b| *b == b'\n').expect("header") + 1;
    let (header, body) = text.split_at(header_end);
    let half = body.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(10_000).map(|(i, _)| i + 1).expect("half");
    std::fs::write(parts.join("a.log"), [header, &body[..half]].concat()).expect("part a");
    gzip(&parts.join("b/c/b.log.gz"), &[header, &body[half..]].concat());
    for (what, flows_arg, stdin) in [
        ("gzip", gz.as_os_str(), None),
        ("a directory", parts.as_os_str(), None),
        ("standard input", "-".as_ref(), Some(std::fs::File::open(&flows).expect("open"))),
    ] {
        let args = ["--inventory".as_ref(), inventory.as_os_str(), "--flows".as_ref(), flows_arg];
        let (r, _) = analyze_json(&args, stdin).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let s = &r["summary"];
        assert_eq!(
            (s["records_read"].as_u64(), s["flow_records"].as_u64()),
            (Some(LINES + 3), Some(LINES)),
            "{what}: {s}"
        );
        assert_eq!(s["dead_lettered"], 3, "{what}: {s}");
        assert_eq!(edge_flows(&r), LINES as i64, "{what}");
    }
}

/// A failure in the middle of the run (a gzip file cut short) is an error
/// exit naming it, never a partial report.
#[test]
fn analyze_fails_with_the_cause_when_the_input_breaks_mid_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory.jsonl");
    std::fs::write(&inventory, psg_estate::bulk::inventory_jsonl(50)).expect("inventory");
    let mut text = Vec::new();
    psg_estate::bulk::write_aws_v2(&mut text, 50_000, 50, 3).expect("lines");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &text).expect("gzip");
    let gz = enc.finish().expect("gzip");
    let broken = dir.path().join("broken.log.gz");
    std::fs::write(&broken, &gz[..gz.len() / 2]).expect("write");
    let (code, stderr) =
        analyze_json(&["--inventory".as_ref(), inventory.as_os_str(), "--flows".as_ref(), broken.as_os_str()], None)
            .expect_err("a broken input must fail the run");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("broken.log.gz"), "{stderr}");
}

/// Issue 15, cases 2 and 3, end to end: an Azure VM whose NIC holds its
/// address is one system (the NIC listed under it, not counted, never
/// alerted on), in either order of the inventory records; a declared
/// out-of-scope system that connects to the CDE gets one drift alert.
#[test]
fn analyze_counts_systems_not_interfaces() {
    let nic_id = "/subscriptions/s1/resourcegroups/rg/providers/microsoft.network/networkinterfaces/corp-nic";
    let vault = r#"{"provider": "azure", "resource_type": "virtual_machine", "resource_id": "vault", "resource_name": "vault", "region": "westeurope", "vpc_id": "vnet-pay", "subnet_id": "snet", "private_ips": ["10.1.0.5"], "public_ips": [], "interface_ids": [], "security_groups": [], "tags": {"pci-scope": "cde"}, "observed_at": "2026-01-01T00:00:00Z", "deleted": false}"#;
    let vm = format!(
        r#"{{"provider": "azure", "resource_type": "virtual_machine", "resource_id": "corp", "resource_name": "corp", "region": "westeurope", "vpc_id": "vnet-pay", "subnet_id": "snet", "private_ips": [], "public_ips": [], "interface_ids": ["{nic_id}"], "security_groups": [], "tags": {{"pci-scope": "out-of-scope"}}, "observed_at": "2026-01-01T00:00:00Z", "deleted": false}}"#
    );
    let nic = format!(
        r#"{{"provider": "azure", "resource_type": "network_interface", "resource_id": "{nic_id}", "resource_name": "corp-nic", "region": "westeurope", "vpc_id": "vnet-pay", "subnet_id": "snet", "private_ips": ["10.1.0.9"], "public_ips": [], "interface_ids": ["000D3AF87856"], "security_groups": [], "tags": {{}}, "observed_at": "2026-01-01T00:00:00Z", "deleted": false}}"#
    );
    let flows = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n\
                 2 123456789012 eni-x 10.1.0.9 10.1.0.5 49152 5432 6 10 840 1767226200 1767226260 ACCEPT OK\n";
    for vm_first in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let inventory = dir.path().join("inventory.jsonl");
        let lines = if vm_first { [vault, &vm, &nic] } else { [vault, &nic, &vm] };
        std::fs::write(&inventory, lines.join("\n") + "\n").expect("inventory");
        let flow_file = dir.path().join("flows.log");
        std::fs::write(&flow_file, flows).expect("flows");
        let (report, stderr) = analyze_json(
            &["--inventory".as_ref(), inventory.as_os_str(), "--flows".as_ref(), flow_file.as_os_str()],
            None,
        )
        .unwrap_or_else(|(code, e)| panic!("analyze exited {code}: {e}"));
        let ids: Vec<&str> = report["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|r| r["resource_id"].as_str())
            .collect();
        assert_eq!(ids, vec!["vault", "corp"], "vm first: {vm_first}: {stderr}");
        let corp = resource(&report, "corp");
        assert_eq!(corp["scope"], "connected-cde", "{corp}");
        assert_eq!(corp["interfaces"], serde_json::json!([nic_id]), "{corp}");
        let summary = &report["summary"];
        assert_eq!((summary["cde"].as_u64(), summary["connected-cde"].as_u64()), (Some(1), Some(1)), "{summary}");
        assert_eq!((summary["out-of-scope"].as_u64(), summary["pending-review"].as_u64()), (Some(0), Some(0)));
        let alerts = report["alerts"].as_array().expect("alerts");
        assert!(alerts.iter().all(|a| a["resource_id"] != nic_id), "no alert on the interface: {alerts:?}");
        assert_eq!(alerts_of(&report, "scope_drift").len(), 1, "one drift alert: {alerts:?}");
        assert_eq!(alerts_of(&report, "segmentation_violation").len(), 1, "{alerts:?}");
    }
}

/// Issue 16: AWS's NAT gateway example layout (no start, end or action)
/// through `analyze`: every record is placed at the file's time, counted
/// as accepted, none refused.
#[test]
fn analyze_reads_a_layout_without_time_or_action() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = dir.path().join("inventory.jsonl");
    std::fs::write(
        &inventory,
        r#"{"provider": "aws", "resource_type": "ec2_instance", "resource_id": "i-01234567890123456", "resource_name": "app", "region": "us-east-1", "vpc_id": "vpc-1", "subnet_id": "subnet-1", "private_ips": ["10.0.1.5"], "public_ips": [], "interface_ids": ["eni-1235b8ca123456789"], "security_groups": [], "tags": {"pci-scope": "cde"}, "observed_at": "2020-01-01T00:00:00Z", "deleted": false}
"#,
    )
    .expect("inventory");
    let flows = dir.path().join("nat.log");
    std::fs::write(
        &flows,
        "i-01234567890123456 eni-1235b8ca123456789 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5\n\
         i-01234567890123456 eni-1235b8ca123456789 10.0.0.220 203.0.113.5 10.0.0.220 203.0.113.5\n",
    )
    .expect("flows");
    let (report, stderr) = analyze_json(
        &[
            "--inventory".as_ref(),
            inventory.as_os_str(),
            "--flows".as_ref(),
            flows.as_os_str(),
            "--flow-format".as_ref(),
            "aws:instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr".as_ref(),
        ],
        None,
    )
    .unwrap_or_else(|(code, e)| panic!("analyze exited {code}: {e}"));
    let summary = &report["summary"];
    assert_eq!(summary["records_read"], 2, "{summary} {stderr}");
    assert_eq!(summary["flow_records"], 2, "{summary}");
    assert_eq!(summary["dead_lettered"], 0, "{summary}");
    // The CDE instance talks to a public address: its flows count as
    // accepted, and the alert says the action was not logged.
    let internet = alerts_of(&report, "cde_internet");
    assert_eq!(internet.len(), 1, "{:?}", report["alerts"]);
    let description = internet[0]["description"].as_str().expect("description");
    assert!(description.contains("(action not logged: counted as accepted)"), "{description}");
}

/// Issue 15, case 1, end to end: `corp` (declared out-of-scope) → CDE
/// `vault` TCP/5432, accepted by corp's egress and rejected by vault's
/// ingress. The reports come five minutes apart (the ends capture
/// independently), in two files read one after the other, in either order:
/// a blocked attempt, kept and shown, never a connection, a violation or a
/// drift.
#[test]
fn analyze_treats_a_flow_rejected_at_one_end_as_a_blocked_attempt() {
    let instance = |id: &str, eni: &str, ip: &str, scope: &str| {
        format!(
            r#"{{"provider": "aws", "resource_type": "ec2_instance", "resource_id": "{id}", "resource_name": "{id}", "region": "us-east-1", "vpc_id": "vpc-1", "subnet_id": "subnet-1", "private_ips": ["{ip}"], "public_ips": [], "interface_ids": ["{eni}"], "security_groups": [], "tags": {{"pci-scope": "{scope}"}}, "observed_at": "2026-01-01T00:00:00Z", "deleted": false}}"#
        )
    };
    let inventory_text =
        [instance("corp", "eni-corp", "10.0.0.9", "out-of-scope"), instance("vault", "eni-vault", "10.0.0.5", "cde")]
            .join("\n")
            + "\n";
    let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";
    let corp = "2 123456789012 eni-corp 10.0.0.9 10.0.0.5 49152 5432 6 3 180 1767226200 1767226260 ACCEPT OK";
    let vault = "2 123456789012 eni-vault 10.0.0.9 10.0.0.5 49152 5432 6 3 180 1767226500 1767226560 REJECT OK";
    // Later traffic of the same pair of addresses (the same partition)
    // moves its event time on, past both windows: another blocked attempt.
    let later = "2 123456789012 eni-vault 10.0.0.5 10.0.0.9 50000 22 6 1 40 1767230000 1767230060 REJECT OK";
    for accept_first in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let inventory = dir.path().join("inventory.jsonl");
        std::fs::write(&inventory, &inventory_text).expect("inventory");
        let (a, b) = if accept_first { (corp, vault) } else { (vault, corp) };
        // Two files, as two interfaces' logs: the second one read after
        // the first one's windows closed.
        let flows = dir.path().join("flows");
        std::fs::create_dir(&flows).expect("flows dir");
        std::fs::write(flows.join("1.log"), format!("{header}\n{a}\n{later}\n")).expect("flows");
        std::fs::write(flows.join("2.log"), format!("{header}\n{b}\n")).expect("flows");
        let out_dir = dir.path().join("out");
        let (report, stderr) = analyze_json(
            &[
                "--inventory".as_ref(),
                inventory.as_os_str(),
                "--flows".as_ref(),
                flows.as_os_str(),
                "--out-dir".as_ref(),
                out_dir.as_os_str(),
            ],
            None,
        )
        .unwrap_or_else(|(code, e)| panic!("analyze exited {code}: {e}"));
        let ctx = format!("accept first: {accept_first}: {stderr}");
        assert_eq!(resource(&report, "corp")["scope"], "out-of-scope", "{ctx}");
        let alerts = report["alerts"].as_array().expect("alerts");
        for t in ["segmentation_violation", "scope_drift"] {
            assert!(alerts_of(&report, t).is_empty(), "{t}: {alerts:?} {ctx}");
        }
        let edges: Vec<&Value> =
            report["edges"].as_array().expect("edges").iter().filter(|e| e["source"] == "corp").collect();
        assert_eq!(edges.len(), 1, "{edges:?} {ctx}");
        // Each report counts in its own window (00:11, 00:16), the second
        // one late. Unless the first one's window had closed (and was
        // withdrawn) before the second arrived, as batches fall: then only
        // the rejecting report counts as blocked.
        assert_eq!(edges[0]["action"], "REJECT", "{ctx}");
        let flows = edges[0]["flows"].as_i64().expect("flows");
        assert!((1..=2).contains(&flows), "{ctx}");
        assert_eq!(edges[0]["last_seen"], "2026-01-01T00:16:00.000000Z", "{ctx}");
        let md = std::fs::read_to_string(out_dir.join("report.md")).expect("report.md");
        let section = md.split("## Blocked attempts at the CDE boundary").nth(1).expect("the section");
        assert!(section.contains(&format!("| `corp` | `vault` | TCP/5432 | {flows} |")), "{section}");
    }
}

/// Issue 17, end to end: a declared out-of-scope instance in a VPC from
/// which not a single flow record arrived is pending review with a
/// `coverage_gap` alert on its VPC, and the report's coverage says so;
/// one NODATA record of its interface (logging works, no traffic) makes
/// the absence of flows count again.
#[test]
fn analyze_needs_flow_log_coverage_to_call_a_system_out_of_scope() {
    let instance = |id: &str, eni: &str, ip: &str, vpc: &str, scope: &str| {
        format!(
            r#"{{"provider": "aws", "resource_type": "ec2_instance", "resource_id": "{id}", "resource_name": "{id}", "region": "us-east-1", "vpc_id": "{vpc}", "subnet_id": "subnet-{id}", "private_ips": ["{ip}"], "public_ips": [], "interface_ids": ["{eni}"], "security_groups": [], "tags": {{"pci-scope": "{scope}"}}, "observed_at": "2026-01-01T00:00:00Z", "deleted": false}}"#
        )
    };
    let inventory_text = [
        instance("vault", "eni-vault", "10.0.0.5", "vpc-lit", "cde"),
        instance("web", "eni-web", "10.0.0.9", "vpc-lit", "connected-cde"),
        instance("hr", "eni-hr", "10.9.0.7", "vpc-dark", "out-of-scope"),
    ]
    .join("\n")
        + "\n";
    let header = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n";
    let traffic = "2 123456789012 eni-web 10.0.0.9 10.0.0.5 49152 5432 6 10 840 1767226200 1767226260 ACCEPT OK\n\
                   2 123456789012 eni-vault 10.0.0.9 10.0.0.5 49152 5432 6 10 840 1767226200 1767226260 ACCEPT OK\n";
    let nodata = "2 123456789012 eni-hr - - - - - - - 1767226200 1767226260 - NODATA\n";
    for with_nodata in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let inventory = dir.path().join("inventory.jsonl");
        std::fs::write(&inventory, &inventory_text).expect("inventory");
        let flows = dir.path().join("flows.log");
        let text = format!("{header}{traffic}{}", if with_nodata { nodata } else { "" });
        std::fs::write(&flows, text).expect("flows");
        let (report, stderr) =
            analyze_json(&["--inventory".as_ref(), inventory.as_os_str(), "--flows".as_ref(), flows.as_os_str()], None)
                .unwrap_or_else(|(code, e)| panic!("analyze exited {code}: {e}"));
        let hr = resource(&report, "hr");
        let gaps = alerts_of(&report, "coverage_gap");
        let coverage = report["coverage"].as_array().expect("coverage");
        let dark = coverage.iter().find(|c| c["network"] == "vpc-dark").expect("vpc-dark listed");
        let lit = coverage.iter().find(|c| c["network"] == "vpc-lit").expect("vpc-lit listed");
        assert_eq!(
            (lit["systems"].as_u64(), lit["records"].as_i64(), lit["units"].as_u64()),
            (Some(2), Some(2), Some(2)),
            "{lit}"
        );
        assert_eq!(lit["traffic"], "accepted only", "{lit}");
        if with_nodata {
            assert_eq!(
                (hr["scope"].as_str(), hr["rule"].as_str()),
                (Some("out-of-scope"), Some("declared-out-of-scope")),
                "{hr}"
            );
            assert!(hr["justification"].as_str().unwrap().contains("flow logs of interface eni-hr cover it"), "{hr}");
            assert!(gaps.is_empty(), "{gaps:?}");
            assert_eq!(dark["traffic"], "no traffic (NODATA only)", "{dark}");
        } else {
            assert_eq!(
                (hr["scope"].as_str(), hr["rule"].as_str()),
                (Some("pending-review"), Some("no-flow-log-coverage")),
                "{hr} {stderr}"
            );
            let why = hr["justification"].as_str().unwrap();
            assert!(why.contains("but no flow logs from VPC vpc-dark since"), "{why}");
            assert_eq!(gaps.len(), 1, "{gaps:?}");
            assert_eq!(gaps[0]["resource_id"], "vpc-dark");
            assert_eq!(gaps[0]["severity"], "high");
            assert_eq!((dark["systems"].as_u64(), dark["records"].as_i64()), (Some(1), Some(0)), "{dark}");
            assert!(alerts_of(&report, "scope_drift").is_empty(), "the gap is the alert: {:?}", report["alerts"]);
        }
    }
}

/// `--as-of T`: every record is read and counted, but the scope, edges and
/// alerts are those of the flow records that had ended by `T` — exactly
/// what analysing only those records gives — and they differ from the
/// whole input's.
#[test]
fn analyze_as_of_a_time_is_the_input_up_to_that_time() {
    let cut = 1_767_226_400; // 2026-01-01T00:13:20Z: after the first three records end
    let text = std::fs::read_to_string(format!("{FIXTURES}/flows.log")).expect("fixture");
    let early: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("version") || l.split_whitespace().nth(11).and_then(|e| e.parse::<i64>().ok()) <= Some(cut)
        })
        .collect();
    assert_eq!(early.len(), 4, "a header and three records end by the cut");
    let dir = tempfile::tempdir().expect("tempdir");
    let early_file = dir.path().join("early.log");
    std::fs::write(&early_file, early.join("\n") + "\n").expect("write");
    let inventory = std::ffi::OsString::from(format!("{FIXTURES}/inventory.jsonl"));
    let decisions = std::ffi::OsString::from(format!("{FIXTURES}/decisions.json"));
    let all = std::ffi::OsString::from(format!("{FIXTURES}/flows.log"));
    let run = |flows: &std::ffi::OsStr, as_of: Option<&str>| {
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["--inventory".as_ref(), &inventory, "--flows".as_ref(), flows, "--decisions".as_ref(), &decisions];
        if let Some(t) = as_of {
            args.extend([std::ffi::OsStr::new("--as-of"), std::ffi::OsStr::new(t)]);
        }
        analyze_json(&args, None).expect("analyze")
    };
    let (at, stderr) = run(&all, Some("2026-01-01T00:13:20Z"));
    let (only_early, _) = run(early_file.as_os_str(), None);
    let (whole, _) = run(&all, None);

    assert_eq!(at["as_of"], "2026-01-01T00:13:20.000000Z");
    assert!(stderr.contains("3 of 6 flow records ended later"), "{stderr}");
    // Every record still read and counted.
    assert_eq!(at["summary"]["records_read"], whole["summary"]["records_read"]);
    assert_eq!(at["summary"]["dead_lettered"], 1);
    let scopes = |r: &Value| {
        let mut v: Vec<(String, String, String, String)> = r["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .map(|x| {
                let s = |k: &str| x[k].as_str().unwrap_or_default().to_owned();
                (s("resource_id"), s("scope"), s("rule"), s("justification"))
            })
            .collect();
        v.sort();
        v
    };
    let alerts = |r: &Value| {
        let mut v: Vec<String> = r["alerts"].as_array().expect("alerts").iter().map(Value::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(scopes(&at), scopes(&only_early));
    assert_eq!(at["edges"], only_early["edges"]);
    assert_eq!(alerts(&at), alerts(&only_early));
    // And the later records did change the answer.
    assert_eq!(
        (at["summary"]["connected-cde"].as_i64(), whole["summary"]["connected-cde"].as_i64()),
        (Some(3), Some(4))
    );
    assert_ne!(at["edges"], whole["edges"]);
}
