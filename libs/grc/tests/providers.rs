//! Each provider against a local HTTP server (axum on 127.0.0.1:0,
//! `psg_testkit::http`) that implements its documented endpoints and records
//! every request: no mocked client. Runs with a database (`grc_syncs`, `audit_logs`) from
//! `TEST_DATABASE_ADMIN_URL` where a case records its run.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use psg_config::Secret;
use psg_grc::drata::{Drata, DrataConfig};
use psg_grc::secureframe::{Secureframe, SecureframeConfig};
use psg_grc::sync::Recording;
use psg_grc::vanta::{Vanta, VantaConfig};
use psg_grc::{EvidenceItem, Inventory, RetryPolicy, ScopeItem, SyncStatus, SyncType, run};
use psg_store::Store;
use psg_testkit::TestDb;
use psg_testkit::http::{Fault, Req, Resp, VantaState, ok, serve, vanta_handle};
use serde_json::{Value, json};

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(3),
        timeout: Duration::from_secs(5),
    }
}

fn system(id: &str, scope: &str) -> ScopeItem {
    ScopeItem {
        resource_id: id.into(),
        name: format!("{id}-name"),
        scope: scope.into(),
        rule: "tag_cde".into(),
        justification: format!("{id} is tagged pci-scope={scope}"),
        provider: "aws".into(),
        resource_type: "rds_instance".into(),
        segment: "vpc-0cde".into(),
    }
}

fn evidence(seq: i64) -> EvidenceItem {
    EvidenceItem {
        evidence_id: format!("00000000-0000-0000-0000-00000000000{seq}"),
        evidence_type: "pci_scope_identification".into(),
        requirement: Some("12.5.2".into()),
        generated_at: "2026-11-01T00:00:00Z".into(),
        hash: format!("{seq:064}"),
        chain: "scope".into(),
        sequence: seq,
        document_path: format!("scope/{seq:012}.json"),
        document: Some(format!("{{\"signed\":{seq}}}").into_bytes()),
    }
}

fn inventory(ids: &[(&str, &str)], evidence_count: i64) -> Inventory {
    Inventory {
        source: "test".into(),
        as_of: None,
        systems: ids.iter().map(|(id, scope)| system(id, scope)).collect(),
        evidence: (1..=evidence_count).map(evidence).collect(),
    }
}

async fn database() -> (TestDb, Store) {
    let db = TestDb::create().await;
    psg_store::migrate(&psg_store::pool(&db.url, 2).unwrap()).await.unwrap();
    let store = Store::connect(&db.url, 2).await.unwrap();
    (db, store)
}

async fn audit_rows(db: &TestDb) -> Vec<(String, String, bool)> {
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .query("SELECT action, resource_id, success FROM audit_logs ORDER BY timestamp", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

// ---------------------------------------------------------------- Vanta

fn vanta_client(url: &str) -> Vanta {
    Vanta::new(
        VantaConfig {
            base_url: url.to_owned(),
            client_id: Secret::new("cid"),
            client_secret: Secret::new("csecret"),
            scope: "connectors.self:write-resource".into(),
            resource_id: "res-1".into(),
            document_id: Some("doc-1".into()),
            external_url: "https://example.test/systems/{resource_id}".into(),
        },
        policy(),
    )
    .unwrap()
}

#[tokio::test]
async fn vanta_happy_path_sends_the_complete_set_and_uploads_evidence() {
    let server = serve(VantaState::default(), vanta_handle).await;
    let (db, store) = database().await;
    let mut vanta = vanta_client(&server.url);
    let inv = inventory(&[("db-1", "cde"), ("mon-1", "connected-cde")], 2);
    let rec = Recording { store: &store, user: "alice@example.com" };
    let summary = run(&mut vanta, &inv, SyncType::Full, Some(rec)).await.unwrap();
    assert_eq!(summary.status, SyncStatus::Completed, "{summary}");
    assert_eq!(summary.pushed.resources_synced, 2);
    assert_eq!(summary.pushed.evidence_uploaded, 2);

    let reqs = server.requests();
    let token = &reqs[0];
    assert_eq!((token.method.as_str(), token.path.as_str()), ("POST", "/oauth/token"));
    assert_eq!(token.json()["scope"], "connectors.self:write-resource");
    let put = reqs.iter().find(|r| r.method == "PUT").unwrap();
    assert_eq!(put.path, "/v1/resources/custom_resource");
    assert_eq!(put.header("authorization"), Some("Bearer tok-1"));
    let body = put.json();
    assert_eq!(body["resourceId"], "res-1");
    let mon = &body["resources"][1];
    assert_eq!(mon["uniqueId"], "mon-1");
    assert_eq!(mon["displayName"], "mon-1-name");
    assert_eq!(mon["externalUrl"], "https://example.test/systems/mon-1");
    assert_eq!(mon["customProperties"]["pci_scope"], "connected-cde");
    for key in ["rule", "justification", "provider", "resource_type", "segment"] {
        assert!(mon["customProperties"][key].is_string(), "{key} missing: {mon}");
    }
    let uploads: Vec<&Req> =
        reqs.iter().filter(|r| r.path == "/v1/documents/doc-1/uploads" && r.method == "POST").collect();
    assert_eq!(uploads.len(), 2);
    assert!(uploads[0].header("content-type").unwrap().starts_with("multipart/form-data"));
    assert!(
        uploads[0].text().contains("name=\"file\"; filename=\"psg-pci_scope_identification-scope-000000000001.json\"")
    );
    assert!(uploads[0].text().contains("{\"signed\":1}"));
    assert_eq!(server.state.lock().unwrap().submits, 1);
    assert_eq!(server.count("POST", "/oauth/token"), 1, "one token for the whole sync");

    // Idempotent: a re-run uploads nothing again.
    let again = run(&mut vanta, &inv, SyncType::Incremental, Some(rec)).await.unwrap();
    assert_eq!((again.pushed.evidence_uploaded, again.pushed.evidence_skipped), (0, 2));
    assert_eq!(server.state.lock().unwrap().uploads.len(), 2);

    let row = psg_store::grc::grc_sync(&store, summary.id).await.unwrap().unwrap();
    assert_eq!((row.provider.as_str(), row.sync_type.as_str(), row.status.as_str()), ("vanta", "full", "completed"));
    assert_eq!((row.resources_synced, row.errors_count), (2, 0));
    assert!(row.completed_at.is_some());
    assert_eq!(row.sync_metadata["evidence_uploaded"], 2);
    let audit = audit_rows(&db).await;
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0], ("grc.sync".to_owned(), summary.id.to_string(), true));
    let shown = format!("{vanta:?} {summary}");
    assert!(!shown.contains("csecret") && !shown.contains("tok-1"), "{shown}");
}

#[tokio::test]
async fn vanta_token_is_reused_until_it_expires_and_refreshed() {
    // The first two tokens expire at once, the third lasts an hour.
    let state = VantaState { lifetimes: vec![0, 0, 3600], ..Default::default() };
    let server = serve(state, vanta_handle).await;
    let mut vanta = vanta_client(&server.url);
    let inv = inventory(&[("db-1", "cde")], 1);
    let summary = run(&mut vanta, &inv, SyncType::Full, None).await.unwrap();
    assert_eq!(summary.status, SyncStatus::Completed, "{summary}");
    let auth: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.path != "/oauth/token")
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    // tok-1 (fetched first) expired before the PUT, which got tok-2; that
    // expired too: the list, upload and submit reuse tok-3.
    assert_eq!(auth, ["Bearer tok-2", "Bearer tok-3", "Bearer tok-3", "Bearer tok-3"]);
    assert_eq!(vanta.tokens_fetched(), 3);

    // Revoked early (401): fetched again once and the call retried.
    server.state.lock().unwrap().revoke_next = true;
    let summary = run(&mut vanta, &inv, SyncType::Full, None).await.unwrap();
    assert_eq!(summary.status, SyncStatus::Completed, "{summary}");
    assert_eq!(vanta.tokens_fetched(), 4);
    assert_eq!(server.count("PUT", "/v1/resources/custom_resource"), 3);
}

#[tokio::test]
async fn vanta_full_sync_deletes_a_removed_system() {
    let server = serve(VantaState::default(), vanta_handle).await;
    let (_db, store) = database().await;
    let rec = Recording { store: &store, user: "ops" };
    let mut vanta = vanta_client(&server.url);
    run(&mut vanta, &inventory(&[("db-1", "cde"), ("old-1", "out-of-scope")], 0), SyncType::Full, Some(rec))
        .await
        .unwrap();
    assert_eq!(server.state.lock().unwrap().resources.len(), 2);
    let second = run(&mut vanta, &inventory(&[("db-1", "cde")], 0), SyncType::Full, Some(rec)).await.unwrap();
    let held: Vec<String> = server.state.lock().unwrap().resources.keys().cloned().collect();
    assert_eq!(held, ["db-1"], "the system left out is gone");
    let rows = psg_store::grc::grc_syncs(&store, Some("vanta"), 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows.iter().filter(|r| r.status == "completed").count(), 2);
    assert_eq!(psg_store::grc::grc_sync(&store, second.id).await.unwrap().unwrap().resources_synced, 1);
    // An empty set is never sent: it would delete everything.
    let empty = run(&mut vanta, &inventory(&[], 0), SyncType::Full, Some(rec)).await.unwrap();
    assert_eq!(empty.status, SyncStatus::Failed);
    assert_eq!(server.state.lock().unwrap().resources.len(), 1);
}

#[tokio::test]
async fn a_5xx_then_success_is_retried() {
    let server = serve(VantaState::default(), vanta_handle).await;
    let (_db, store) = database().await;
    server.fault(Fault { method: "PUT", path_contains: "/custom_resource", status: 503, retry_after: None, times: 1 });
    let mut vanta = vanta_client(&server.url);
    let s = run(
        &mut vanta,
        &inventory(&[("db-1", "cde")], 0),
        SyncType::Full,
        Some(Recording { store: &store, user: "ops" }),
    )
    .await
    .unwrap();
    assert_eq!(s.status, SyncStatus::Completed, "{s}");
    assert!(s.pushed.errors.is_empty());
    assert_eq!(server.count("PUT", "/v1/resources/custom_resource"), 2);
    let row = psg_store::grc::grc_sync(&store, s.id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.resources_synced, row.errors_count), ("completed", 1, 0));
}

// ---------------------------------------------------------------- Drata

const RECORDS: &str = "/custom-connections/7/resources/9/records";
const SESSIONS: &str = "/custom-connections/7/resources/9/sessions/";

#[derive(Default)]
struct DrataState {
    records: BTreeMap<String, Value>,
    sessions: HashMap<String, Vec<Value>>,
    files: usize,
    evidence: Vec<Value>,
}

fn drata_handle(s: &mut DrataState, r: &Req) -> Resp {
    if r.header("authorization") != Some("Bearer key-1") {
        return (401, vec![], json!({"message": "Invalid Authorization"}).to_string());
    }
    let query: HashMap<String, String> =
        r.query.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    match (r.method.as_str(), r.path.as_str()) {
        ("GET", RECORDS) => {
            // Pages of two, whatever the size asked: the cursor is the next index.
            let size: usize = query["size"].parse().unwrap();
            assert!((1..=500).contains(&size));
            let start: usize = query.get("cursor").map(|c| c.parse().unwrap()).unwrap_or(0);
            let all: Vec<Value> = s.records.iter().map(|(id, a)| json!({"id": id, "attributes": a})).collect();
            let page: Vec<Value> = all.iter().skip(start).take(2).cloned().collect();
            let next = (start + 2 < all.len()).then(|| (start + 2).to_string());
            ok(json!({"data": page, "pagination": {"cursor": next}}))
        }
        ("POST", RECORDS) => {
            let data = r.json()["data"].as_array().cloned().unwrap_or_default();
            match r.header("x-session-id") {
                Some(sid) => match s.sessions.get_mut(sid) {
                    Some(staged) => staged.extend(data),
                    None => return (404, vec![], json!({"message": "no such session"}).to_string()),
                },
                None => {
                    for rec in data {
                        s.records.insert(rec["id"].as_str().unwrap().to_owned(), rec);
                    }
                }
            }
            (201, vec![], json!({"data": []}).to_string())
        }
        ("POST", p) if p.starts_with(SESSIONS) && p.ends_with("/actions") => {
            let sid = p[SESSIONS.len()..p.len() - "/actions".len()].to_owned();
            let Some(staged) = s.sessions.remove(&sid) else {
                return (404, vec![], json!({"message": "no such session"}).to_string());
            };
            match r.json()["action"].as_str() {
                // Complete: the session's records replace the active ones.
                Some("complete") => {
                    s.records = staged.into_iter().map(|x| (x["id"].as_str().unwrap().to_owned(), x)).collect()
                }
                Some("abort") => {}
                _ => return (400, vec![], json!({"message": "unknown action"}).to_string()),
            }
            ok(json!({"id": sid}))
        }
        ("POST", p) if p.starts_with(SESSIONS) => {
            s.sessions.insert(p[SESSIONS.len()..].to_owned(), Vec::new());
            (201, vec![], json!({"id": &p[SESSIONS.len()..]}).to_string())
        }
        ("GET", "/workspaces/3/evidence") => {
            let data: Vec<Value> = s.evidence.iter().map(|e| json!({"name": e["name"]})).collect();
            ok(json!({"data": data, "pagination": {"cursor": null}}))
        }
        ("POST", "/workspaces/3/evidence-files") => {
            if !r.text().contains("name=\"file\"") {
                return (400, vec![], json!({"message": "file missing"}).to_string());
            }
            s.files += 1;
            (201, vec![], json!({"id": 500 + s.files}).to_string())
        }
        ("POST", "/workspaces/3/evidence") => {
            s.evidence.push(r.json());
            (201, vec![], json!({"id": s.evidence.len()}).to_string())
        }
        _ => (404, vec![], json!({"message": "Not Found"}).to_string()),
    }
}

fn drata_client(url: &str, batch_size: usize) -> Drata {
    Drata::new(
        DrataConfig {
            base_url: url.to_owned(),
            api_key: Secret::new("key-1"),
            connection_id: "7".into(),
            resource_id: "9".into(),
            workspace_id: Some("3".into()),
            control_ids: vec![11, 12],
            renewal_days: 365,
            batch_size,
        },
        policy(),
    )
    .unwrap()
}

#[tokio::test]
async fn drata_full_sync_goes_through_a_session_and_deletes_a_removed_system() {
    let server = serve(DrataState::default(), drata_handle).await;
    let (db, store) = database().await;
    let rec = Recording { store: &store, user: "ops" };
    let mut drata = drata_client(&server.url, 2);
    let first = inventory(&[("a-1", "cde"), ("b-1", "connected-cde"), ("c-1", "out-of-scope")], 2);
    let s1 = run(&mut drata, &first, SyncType::Full, Some(rec)).await.unwrap();
    assert_eq!(s1.status, SyncStatus::Completed, "{s1}");
    assert_eq!((s1.pushed.resources_synced, s1.pushed.resources_deleted), (3, Some(0)));
    assert_eq!(s1.pushed.evidence_uploaded, 2);

    let reqs = server.requests();
    assert!(reqs.iter().all(|r| r.header("authorization") == Some("Bearer key-1")));
    let posts: Vec<&Req> = reqs.iter().filter(|r| r.method == "POST" && r.path == RECORDS).collect();
    assert_eq!(posts.len(), 2, "three records in batches of two");
    let sid = posts[0].header("x-session-id").unwrap().to_owned();
    assert!(reqs.iter().any(|r| r.method == "POST" && r.path == format!("{SESSIONS}{sid}")));
    let complete = reqs.iter().find(|r| r.path == format!("{SESSIONS}{sid}/actions")).unwrap();
    assert_eq!(complete.json(), json!({"action": "complete"}));
    let record = &posts[0].json()["data"][0];
    assert_eq!(record["id"], "a-1");
    assert_eq!(record["name"], "a-1-name");
    assert_eq!(record["pci_scope"], "cde");
    for key in ["rule", "justification", "provider", "resource_type", "segment"] {
        assert!(record[key].is_string(), "{key}: {record}");
    }
    let files = reqs.iter().filter(|r| r.path == "/workspaces/3/evidence-files").count();
    assert_eq!(files, 2);
    let ev = server.state.lock().unwrap().evidence[0].clone();
    assert_eq!(ev["controlIds"], json!([11, 12]));
    assert_eq!(ev["renewalDate"], "2027-11-01");
    assert_eq!(ev["artifacts"][0]["evidenceFileId"], 501);
    assert_eq!(ev["name"], "PCI Scope Guard pci_scope_identification scope #1");

    // c-1 leaves the estate: the next full sync deletes it in Drata.
    let second = inventory(&[("a-1", "cde"), ("b-1", "connected-cde")], 2);
    let s2 = run(&mut drata, &second, SyncType::Full, Some(rec)).await.unwrap();
    assert_eq!((s2.pushed.resources_synced, s2.pushed.resources_deleted), (2, Some(1)), "{s2}");
    assert_eq!(server.state.lock().unwrap().records.keys().cloned().collect::<Vec<_>>(), ["a-1", "b-1"]);
    assert_eq!((s2.pushed.evidence_uploaded, s2.pushed.evidence_skipped), (0, 2), "evidence is not sent twice");
    let row = psg_store::grc::grc_sync(&store, s2.id).await.unwrap().unwrap();
    assert_eq!((row.provider.as_str(), row.sync_type.as_str(), row.status.as_str()), ("drata", "full", "completed"));
    assert_eq!(row.sync_metadata["resources_deleted"], 1);
    assert!(row.sync_metadata["drata_session_id"].is_string());
    assert_eq!(audit_rows(&db).await.len(), 2);
    let last = psg_store::grc::last_completed_grc_sync(&store, "drata").await.unwrap();
    assert_eq!(last, Some(row.started_at), "an incremental sync sends the evidence since");
    assert_eq!(psg_store::grc::last_completed_grc_sync(&store, "vanta").await.unwrap(), None);
}

#[tokio::test]
async fn drata_partial_failure_is_recorded_in_error_details() {
    let server = serve(DrataState::default(), drata_handle).await;
    let (_db, store) = database().await;
    let mut drata = drata_client(&server.url, 1);
    // a-1 is in Drata already; of the two upserts (b-1, c-1) the first is refused (400).
    let inv = inventory(&[("a-1", "cde"), ("b-1", "cde"), ("c-1", "cde")], 0);
    server.state.lock().unwrap().records.insert("a-1".into(), Drata::record(&inv.systems[0]));
    server.fault(Fault { method: "POST", path_contains: RECORDS, status: 400, retry_after: None, times: 1 });
    let s = run(&mut drata, &inv, SyncType::Incremental, Some(Recording { store: &store, user: "ops" })).await.unwrap();
    assert_eq!(s.status, SyncStatus::Completed, "{s}");
    // a-1 was unchanged (not sent), b-1 refused, c-1 upserted.
    assert_eq!(s.pushed.resources_synced, 2);
    assert_eq!(s.pushed.errors.len(), 1);
    assert_eq!(server.count("POST", RECORDS), 2);
    let row = psg_store::grc::grc_sync(&store, s.id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.resources_synced, row.errors_count), ("completed", 2, 1));
    let detail = &row.error_details[0];
    assert_eq!(detail["item"], "systems[0..1]");
    assert_eq!(detail["status"], 400);
    assert!(detail["message"].as_str().unwrap().contains("b-1"), "{detail}");
    assert_eq!(row.sync_type, "incremental");
}

#[tokio::test]
async fn drata_incremental_sync_reads_every_page_and_upserts_only_changes() {
    let server = serve(DrataState::default(), drata_handle).await;
    let mut drata = drata_client(&server.url, 100);
    let mut inv = inventory(&[("a-1", "cde"), ("b-1", "cde"), ("c-1", "cde"), ("d-1", "cde"), ("e-1", "cde")], 0);
    let s = run(&mut drata, &inv, SyncType::Incremental, None).await.unwrap();
    assert_eq!(s.pushed.resources_synced, 5);
    inv.systems[3].scope = "out-of-scope".into();
    let s = run(&mut drata, &inv, SyncType::Incremental, None).await.unwrap();
    assert_eq!(s.pushed.resources_synced, 5, "{s}");
    assert_eq!(s.pushed.metadata["records_upserted"], 1);
    let gets: Vec<Req> = server.requests().into_iter().filter(|r| r.method == "GET" && r.path == RECORDS).collect();
    // The second run read three pages of two: cursors 2 and 4.
    assert!(gets.iter().any(|r| r.query.contains("cursor=4")), "{gets:?}");
    let last = server.requests().into_iter().rfind(|r| r.method == "POST" && r.path == RECORDS).unwrap();
    assert_eq!(last.json()["data"].as_array().unwrap().len(), 1);
    assert_eq!(last.json()["data"][0]["id"], "d-1");
}

#[tokio::test]
async fn a_429_waits_its_retry_after() {
    let server = serve(DrataState::default(), drata_handle).await;
    server.fault(Fault { method: "POST", path_contains: RECORDS, status: 429, retry_after: Some("1"), times: 1 });
    let mut drata = drata_client(&server.url, 100);
    let started = Instant::now();
    let s = run(&mut drata, &inventory(&[("a-1", "cde")], 0), SyncType::Incremental, None).await.unwrap();
    assert_eq!(s.status, SyncStatus::Completed, "{s}");
    assert!(started.elapsed() >= Duration::from_millis(950), "Retry-After 1 s honoured, not the 5 ms backoff");
    assert_eq!(server.count("POST", RECORDS), 2);
    assert_eq!(server.state.lock().unwrap().records.len(), 1);
}

#[tokio::test]
async fn drata_402_and_412_are_named_and_nothing_through_is_failed() {
    let server = serve(DrataState::default(), drata_handle).await;
    let (db, store) = database().await;
    server.fault(Fault { method: "GET", path_contains: "/", status: 402, retry_after: None, times: 10 });
    server.fault(Fault { method: "POST", path_contains: "/", status: 412, retry_after: None, times: 10 });
    let mut drata = drata_client(&server.url, 100);
    let s = run(
        &mut drata,
        &inventory(&[("a-1", "cde")], 1),
        SyncType::Full,
        Some(Recording { store: &store, user: "ops" }),
    )
    .await
    .unwrap();
    assert_eq!(s.status, SyncStatus::Failed, "{s}");
    let text = s.to_string();
    assert!(text.contains("terms and conditions"), "{text}");
    assert!(text.contains("entitlement"), "{text}");
    let row = psg_store::grc::grc_sync(&store, s.id).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.resources_synced), ("failed", 0));
    assert!(row.errors_count >= 2);
    assert!(!audit_rows(&db).await[0].2, "the audit row says the sync failed");
}

// ---------------------------------------------------------------- Secureframe

#[derive(Default)]
struct SecureframeState {
    published: Vec<Value>,
}

fn secureframe_handle(s: &mut SecureframeState, r: &Req) -> Resp {
    if r.header("authorization") != Some("key-1 secret-1") {
        return (401, vec![], json!({"errors": [{"title": "unauthorized"}]}).to_string());
    }
    match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/custom_integrations/publish") => {
            s.published.push(r.json());
            ok(json!({"data": {"type": "custom_integration_resource_data", "id": "1"}}))
        }
        _ => (404, vec![], json!({"errors": [{"title": "not found"}]}).to_string()),
    }
}

#[tokio::test]
async fn secureframe_publishes_systems_and_bundles_evidence_without_claiming_it_synced() {
    let server = serve(SecureframeState::default(), secureframe_handle).await;
    let (_db, store) = database().await;
    let dir = tempfile::tempdir().unwrap();
    let mut sf = Secureframe::new(
        SecureframeConfig {
            base_url: server.url.clone(),
            api_key: Secret::new("key-1"),
            api_secret: Secret::new("secret-1"),
            schema_slug: "pci-systems".into(),
            publish_path: "/custom_integrations/publish".into(),
            bundle_dir: dir.path().to_owned(),
        },
        policy(),
    )
    .unwrap();
    let inv = inventory(&[("a-1", "cde"), ("b-1", "pending-review")], 2);
    let s = run(&mut sf, &inv, SyncType::Full, Some(Recording { store: &store, user: "ops" })).await.unwrap();
    assert_eq!(s.status, SyncStatus::Completed, "{s}");
    assert_eq!((s.pushed.resources_synced, s.pushed.evidence_uploaded, s.pushed.evidence_bundled), (2, 0, 2));
    let req = &server.requests()[0];
    assert_eq!(req.header("content-type"), Some("application/vnd.api+json"));
    let body = server.state.lock().unwrap().published[0].clone();
    assert_eq!(body["data"]["attributes"]["schema_slug"], "pci-systems");
    assert_eq!(body["data"]["attributes"]["resources"][1]["pci_scope"], "pending-review");
    let text = s.to_string();
    assert!(text.contains("0 of 2 uploaded") && text.contains("not synced"), "{text}");
    let bundle = std::path::PathBuf::from(s.pushed.metadata["bundle_dir"].as_str().unwrap());
    assert!(std::fs::read_to_string(bundle.join("systems.csv")).unwrap().contains("a-1,a-1-name,cde"));
    let evidence_csv = std::fs::read_to_string(bundle.join("evidence.csv")).unwrap();
    assert_eq!(evidence_csv.lines().count(), 3);
    assert_eq!(
        std::fs::read(bundle.join("documents/psg-pci_scope_identification-scope-000000000002.json")).unwrap(),
        b"{\"signed\":2}"
    );
    let row = psg_store::grc::grc_sync(&store, s.id).await.unwrap().unwrap();
    assert_eq!(row.sync_metadata["evidence_bundled"], 2);
    assert_eq!(row.sync_metadata["evidence_uploaded"], 0);
    assert!(format!("{sf:?}").contains("redacted") && !format!("{sf:?}").contains("secret-1"));
}

// ---------------------------------------------------------------- report file

#[tokio::test]
async fn a_report_file_syncs_without_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let report = json!({
        "as_of": "2026-11-01T00:48:41Z",
        "summary": {"cde": 1, "connected-cde": 1, "out-of-scope": 0, "pending-review": 0,
                    "flow_records": 10, "dead_lettered": 0, "records_read": 10},
        "resources": [
            {"resource_id": "i-0mon", "provider": "aws", "resource_type": "ec2_instance", "resource_name": "monitoring",
             "scope": "connected-cde", "data_classification": null, "justification": "declared connected-cde",
             "dependency_resource_ids": [], "rule": "declared", "segment": "vpc-1", "tags": {}},
            {"resource_id": "db-1", "provider": "aws", "resource_type": "rds_instance", "resource_name": "payments-db",
             "scope": "cde", "data_classification": "stores-cardholder", "justification": "tagged pci-scope=cde",
             "dependency_resource_ids": [], "rule": "tag_cde", "segment": "vpc-1", "tags": {}}
        ],
        "alerts": [],
        "external_connections": []
    });
    std::fs::write(&path, report.to_string()).unwrap();
    let inv = Inventory::from_report_file(&path).unwrap();
    assert_eq!(inv.systems.iter().map(|s| s.resource_id.as_str()).collect::<Vec<_>>(), ["db-1", "i-0mon"]);
    assert_eq!(inv.as_of.as_deref(), Some("2026-11-01T00:48:41Z"));

    let server = serve(VantaState::default(), vanta_handle).await;
    let mut vanta = vanta_client(&server.url);
    let s = run(&mut vanta, &inv, SyncType::Full, None).await.unwrap();
    assert_eq!(s.status, SyncStatus::Completed, "{s}");
    assert!(!s.recorded);
    assert!(s.to_string().contains("not recorded (no database)"));
    let held = server.state.lock().unwrap().resources.clone();
    assert_eq!(held["i-0mon"]["customProperties"]["pci_scope"], "connected-cde");
    assert_eq!(held["i-0mon"]["customProperties"]["rule"], "declared");

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{}").unwrap();
    let err = Inventory::from_report_file(&broken).unwrap_err().to_string();
    assert!(err.contains("not a report written by analyze or demo"), "{err}");
}

// ---------------------------------------------------------------- database source

#[tokio::test]
async fn the_database_is_a_source_of_systems_and_evidence() {
    use psg_domain::rows::{EvidenceRow, ResourceRow, ScopeDecisionRow};
    use psg_domain::{CloudProvider, DecisionMethod, EvidenceType, PciScope};

    let (_db, store) = database().await;
    let now = chrono::Utc::now();
    let hosts = [("10.0.0.5", PciScope::Cde), ("10.0.0.6", PciScope::OutOfScope)];
    let rows: Vec<ResourceRow> =
        hosts.iter().map(|(ip, _)| ResourceRow::for_address(ip, true, CloudProvider::Aws, now)).collect();
    psg_store::resources::ensure_resources(&store, &rows).await.unwrap();
    let decisions: Vec<ScopeDecisionRow> = rows
        .iter()
        .zip(hosts)
        .map(|(r, (_, scope))| ScopeDecisionRow {
            id: uuid::Uuid::new_v4(),
            resource_id: r.id,
            scope,
            data_classification: None,
            segment: Some("vpc-9".into()),
            justification: format!("{} decided", r.resource_id),
            confidence_score: None,
            decided_at: now,
            decided_by: "classify".into(),
            decision_method: DecisionMethod::Automated,
            is_current: true,
            superseded_by_id: None,
            dependency_resource_ids: json!([]),
        })
        .collect();
    psg_store::decisions::write_decisions(&store, &decisions).await.unwrap();
    let record = EvidenceRow {
        id: uuid::Uuid::new_v4(),
        scope_decision_id: Some(decisions[0].id),
        evidence_type: EvidenceType::ScopeIdentification,
        data: json!({}).into(),
        hash: "ab".repeat(32),
        signature: "sig".into(),
        signing_key_id: "key".into(),
        storage_url: None,
        pci_requirement: Some("12.5.2".into()),
        generated_at: now,
        generated_by: "test".into(),
        expires_at: now + chrono::Duration::days(1),
        last_verified_at: None,
        verification_count: 0,
        chain: "scope".into(),
        sequence: 1,
        prev_hash: None,
    };
    psg_store::evidence::insert_evidence(&store, std::slice::from_ref(&record)).await.unwrap();

    let mut inv = Inventory::from_store(&store).await.unwrap();
    assert_eq!(inv.source, "database");
    let scopes: Vec<(&str, &str, &str)> =
        inv.systems.iter().map(|s| (s.resource_id.as_str(), s.scope.as_str(), s.segment.as_str())).collect();
    assert_eq!(scopes, [("ip:10.0.0.5", "cde", ""), ("ip:10.0.0.6", "out-of-scope", "")]);
    let stored = psg_store::evidence::records_between(
        &store,
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
    )
    .await
    .unwrap();
    inv.evidence = stored.iter().map(|r| EvidenceItem::from_row(r, "scope/000000000001.json".into())).collect();
    inv.evidence[0].document = Some(b"{}".to_vec());
    assert_eq!(inv.evidence[0].requirement.as_deref(), Some("12.5.2"));

    let server = serve(DrataState::default(), drata_handle).await;
    let mut drata = drata_client(&server.url, 100);
    let s = run(&mut drata, &inv, SyncType::Full, Some(Recording { store: &store, user: "ops" })).await.unwrap();
    assert_eq!((s.status, s.pushed.resources_synced, s.pushed.evidence_uploaded), (SyncStatus::Completed, 2, 1), "{s}");
    assert_eq!(server.state.lock().unwrap().records["ip:10.0.0.5"]["pci_scope"], "cde");
    let row = psg_store::grc::grc_sync(&store, s.id).await.unwrap().unwrap();
    assert_eq!(row.sync_metadata["source"], "database");
}
