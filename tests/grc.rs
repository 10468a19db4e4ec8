//! `grc sync` as a user runs it: where the scope comes from, credentials
//! only from the environment, never printed; exit codes. The providers
//! themselves are tested in libs/grc against local servers.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_pci-scope-guard");

fn grc(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("DATABASE_URL").env_remove("PSG_CONFIG").env_remove("KAFKA_BROKERS");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("PSG_GRC")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied()).output().expect("run pci-scope-guard")
}

fn report(dir: &std::path::Path) -> String {
    let path = dir.join("report.json");
    let report = r#"{"as_of": "2026-11-01T00:00:00Z",
        "summary": {"cde": 1, "connected-cde": 0, "out-of-scope": 0, "pending-review": 0,
                    "flow_records": 0, "dead_lettered": 0, "records_read": 0},
        "resources": [{"resource_id": "db-1", "provider": "aws", "resource_type": "rds_instance",
                       "resource_name": "payments-db", "scope": "cde", "data_classification": null,
                       "justification": "tagged", "dependency_resource_ids": [], "rule": "tag_cde", "segment": "vpc-1"}],
        "alerts": [], "external_connections": []}"#;
    std::fs::write(&path, report).expect("write report");
    path.display().to_string()
}

#[test]
fn grc_sync_needs_a_scope_and_credentials() {
    let out = grc(&["grc", "sync", "--provider", "vanta"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--report"), "{out:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let report = report(dir.path());
    let out = grc(&["grc", "sync", "--provider", "vanta", "--report", &report], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PSG_GRC_VANTA_CLIENT_ID"), "{out:?}");
}

#[test]
fn secrets_are_never_printed_and_a_sync_that_fails_exits_1() {
    let secret = "t0psecret-do-not-print";
    let env = [
        ("PSG_GRC_VANTA_CLIENT_ID", "cid"),
        ("PSG_GRC_VANTA_CLIENT_SECRET", secret),
        ("PSG_GRC_VANTA_RESOURCE_ID", "res-1"),
        ("PSG_GRC__MAX_ATTEMPTS", "1"),
    ];
    let help = grc(&["grc", "sync", "--help"], &env);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("PSG_GRC_VANTA_CLIENT_SECRET") && !help.contains(secret), "{help}");
    assert!(help.contains("`grc run` syncs continuously"), "{help}");

    let dir = tempfile::tempdir().expect("tempdir");
    let report = report(dir.path());
    // Nothing listens on port 1: nothing goes through.
    let out =
        grc(&["grc", "sync", "--provider", "vanta", "--report", &report, "--base-url", "http://127.0.0.1:1"], &env);
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("to Vanta (incremental): failed") && all.contains("not recorded (no database)"), "{all}");
    assert!(!all.contains(secret), "{all}");
}

#[test]
fn grc_run_needs_a_database_brokers_and_credentials_and_checks_its_schedule() {
    let out = grc(&["grc", "run", "--provider", "drata"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--database-url"), "{out:?}");

    let db = [("DATABASE_URL", "postgres://nobody@127.0.0.1:1/psg")];
    let out = grc(&["grc", "run", "--provider", "drata"], &db);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--brokers"), "{out:?}");

    let both = [("DATABASE_URL", "postgres://nobody@127.0.0.1:1/psg"), ("KAFKA_BROKERS", "127.0.0.1:1")];
    let out = grc(&["grc", "run", "--provider", "drata"], &both);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PSG_GRC_DRATA_API_KEY"), "{out:?}");

    let out = grc(&["grc", "run", "--provider", "drata", "--interval", "1h", "--full-every", "30m"], &both);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("grc.full-every (30m) must not be shorter than grc.interval (1h)"), "{err}");

    let out = grc(&["grc", "run", "--provider", "drata", "--interval", "soon"], &both);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a length of time"), "{out:?}");

    let help = grc(&["grc", "run", "--help"], &[]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--full-every") && help.contains("scope.decisions") && help.contains("grc_syncs"), "{help}");
}
