//! Drata, public API v2 (`https://public-api.drata.com/public/v2`; the EU
//! and APAC hosts are `public-api.eu.drata.com` and
//! `public-api.apac.drata.com`), `Authorization: Bearer <key>`:
//!
//! - the systems as records of a custom connection's resource:
//!   `POST /custom-connections/{connectionId}/resources/{resourceId}/records`
//!   with `{data: [record, ...]}`, upserted by `id` (our resource id), in
//!   batches of at most 500;
//! - a full sync goes through a session: `POST …/sessions/{sessionId}`, the
//!   records (header `X-Session-ID`), then `POST …/sessions/{sessionId}/actions`
//!   with `{action: "complete"}`, which replaces the active records with the
//!   session's (a system not sent is deleted). When a batch fails the session
//!   is aborted (`{action: "abort"}`): Drata keeps what it had;
//! - an incremental sync reads the records (`GET …/records`, cursor
//!   pagination, `size` ≤ 500) and upserts only new or changed systems;
//! - evidence: `POST /workspaces/{workspaceId}/evidence-files` (multipart)
//!   then `POST /workspaces/{workspaceId}/evidence` with the artifact, the
//!   `controlIds` and a renewal date; records already there (by name, from
//!   `GET /workspaces/{workspaceId}/evidence`) are skipped.
//!
//! 402 (missing entitlement) and 412 (terms not accepted) are named in the
//! error; 429 waits its `Retry-After`.

use std::collections::{HashMap, HashSet};

use psg_config::Secret;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

use crate::http::{Http, Reply, RetryPolicy, segment};
use crate::sync::{GrcProvider, ItemError, ProviderKind, Pushed, SyncType};
use crate::{Error, EvidenceItem, Inventory, Result, ScopeItem};

/// Drata's public API v2 root (US).
pub const DEFAULT_BASE_URL: &str = "https://public-api.drata.com/public/v2";

/// Records per page when reading (Drata's maximum).
const PAGE_SIZE: usize = 500;

/// Settings of the Drata client.
#[derive(Debug, Clone)]
pub struct DrataConfig {
    pub base_url: String,
    pub api_key: Secret,
    pub connection_id: String,
    pub resource_id: String,
    /// The workspace evidence goes to; `None`: no evidence push.
    pub workspace_id: Option<String>,
    pub control_ids: Vec<u64>,
    pub renewal_days: u32,
    /// Records per upsert request (≤ 500).
    pub batch_size: usize,
}

impl DrataConfig {
    /// From `[grc.drata]` / `PSG_GRC_DRATA_*`; `base_url` overrides the configured root.
    pub fn from_settings(s: &psg_config::DrataSettings, base_url: Option<&str>) -> Result<Self> {
        let missing = |what: &str, env: &str| crate::missing_setting(ProviderKind::Drata, what, env);
        Ok(Self {
            base_url: base_url.or(s.base_url.as_deref()).unwrap_or(DEFAULT_BASE_URL).to_owned(),
            api_key: s.api_key.clone().ok_or_else(|| missing("the API key", "PSG_GRC_DRATA_API_KEY"))?,
            connection_id: s
                .connection_id
                .clone()
                .ok_or_else(|| missing("the custom connection id", "PSG_GRC_DRATA_CONNECTION_ID"))?,
            resource_id: s
                .resource_id
                .clone()
                .ok_or_else(|| missing("the custom connection's resource id", "PSG_GRC_DRATA_RESOURCE_ID"))?,
            workspace_id: s.workspace_id.clone(),
            control_ids: s.control_ids.clone(),
            renewal_days: s.renewal_days,
            batch_size: s.batch_size.clamp(1, 500),
        })
    }
}

/// The Drata client.
#[derive(Debug)]
pub struct Drata {
    http: Http,
    cfg: DrataConfig,
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Deserialize)]
struct Pagination {
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Deserialize)]
struct Record {
    id: String,
    #[serde(default)]
    attributes: serde_json::Value,
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct Created {
    id: serde_json::Value,
}

impl Drata {
    pub fn new(cfg: DrataConfig, policy: RetryPolicy) -> Result<Self> {
        Ok(Self { http: Http::new(ProviderKind::Drata, &cfg.base_url, policy)?, cfg })
    }

    fn records_path(&self) -> String {
        format!(
            "/custom-connections/{}/resources/{}/records",
            segment(&self.cfg.connection_id),
            segment(&self.cfg.resource_id)
        )
    }

    fn sessions_path(&self, session: &str) -> String {
        format!(
            "/custom-connections/{}/resources/{}/sessions/{}",
            segment(&self.cfg.connection_id),
            segment(&self.cfg.resource_id),
            segment(session)
        )
    }

    async fn call(&self, op: &str, build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder) -> Result<Reply> {
        let key = self.cfg.api_key.expose();
        self.http.send(op, |c| build(c).bearer_auth(key)).await
    }

    /// Every page of a cursor-paginated list.
    async fn list<T: serde::de::DeserializeOwned>(&self, op: &str, path: &str, size: usize) -> Result<Vec<T>> {
        let url = self.http.url(path);
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("size", size.to_string())];
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let page: Page<T> = self.call(op, |c| c.get(&url).query(&query)).await?.json(ProviderKind::Drata, op)?;
            out.extend(page.data);
            match page.pagination.and_then(|p| p.cursor).filter(|c| !c.is_empty()) {
                Some(next) if cursor.as_ref() != Some(&next) => cursor = Some(next),
                _ => return Ok(out),
            }
        }
    }

    /// A system as a Drata record (`id` is the upsert key, `name` its display name).
    pub fn record(s: &ScopeItem) -> serde_json::Value {
        s.properties(&[("id", &s.resource_id), ("name", s.display_name())])
    }

    /// Upserts `systems` in batches; returns how many went through.
    async fn upsert(&self, systems: &[&ScopeItem], session: Option<&str>, out: &mut Pushed) -> u64 {
        let op = "POST /custom-connections/{connectionId}/resources/{resourceId}/records";
        let url = self.http.url(&self.records_path());
        let mut synced = 0;
        for (i, batch) in systems.chunks(self.cfg.batch_size).enumerate() {
            let body = serde_json::json!({ "data": batch.iter().map(|s| Self::record(s)).collect::<Vec<_>>() });
            let result = self
                .call(op, |c| {
                    let r = c.post(&url).json(&body);
                    match session {
                        Some(id) => r.header("X-Session-ID", id),
                        None => r,
                    }
                })
                .await;
            match result {
                Ok(_) => synced += batch.len() as u64,
                Err(e) => {
                    let first = i * self.cfg.batch_size;
                    let ids: Vec<&str> = batch.iter().map(|s| s.resource_id.as_str()).collect();
                    let mut err = ItemError::new(format!("systems[{first}..{}]", first + batch.len()), op, &e);
                    err.message = format!("{} ({})", err.message, ids.join(", "));
                    out.errors.push(err);
                }
            }
        }
        synced
    }

    async fn push_full(&self, inventory: &Inventory, out: &mut Pushed) {
        if inventory.systems.is_empty() {
            out.errors.push(ItemError {
                item: "systems".into(),
                operation: "full sync".into(),
                status: None,
                message:
                    "no systems to push: completing an empty session would delete every record, so nothing was sent"
                        .into(),
            });
            return;
        }
        let op_list = "GET /custom-connections/{connectionId}/resources/{resourceId}/records";
        let before: Option<HashSet<String>> = match self.list::<Record>(op_list, &self.records_path(), PAGE_SIZE).await
        {
            Ok(records) => Some(records.into_iter().map(|r| r.id).collect()),
            Err(e) => {
                out.notes.push(format!("could not count the records a full sync deletes: {e}"));
                None
            }
        };
        let session = format!("psg-{}", uuid::Uuid::new_v4().simple());
        out.metadata.insert("drata_session_id".into(), session.clone().into());
        let op_open = "POST /custom-connections/{connectionId}/resources/{resourceId}/sessions/{sessionId}";
        let url = self.http.url(&self.sessions_path(&session));
        if let Err(e) = self.call(op_open, |c| c.post(&url).json(&serde_json::json!({}))).await {
            out.errors.push(ItemError::new("session", op_open, &e));
            return;
        }
        let systems: Vec<&ScopeItem> = inventory.systems.iter().collect();
        let sent = self.upsert(&systems, Some(&session), out).await;
        let op_action = "POST /custom-connections/{connectionId}/resources/{resourceId}/sessions/{sessionId}/actions";
        let url = self.http.url(&format!("{}/actions", self.sessions_path(&session)));
        if sent < systems.len() as u64 {
            // Completing would delete the systems of the failed batches.
            let abort = self.call(op_action, |c| c.post(&url).json(&serde_json::json!({"action": "abort"}))).await;
            if let Err(e) = abort {
                out.errors.push(ItemError::new("session", op_action, &e));
            }
            out.notes.push(format!(
                "Drata session {session} aborted because {} of {} systems were refused: Drata keeps the records it had",
                systems.len() as u64 - sent,
                systems.len()
            ));
            return;
        }
        match self.call(op_action, |c| c.post(&url).json(&serde_json::json!({"action": "complete"}))).await {
            Ok(_) => {
                out.resources_synced = sent;
                let ours: HashSet<&str> = inventory.systems.iter().map(|s| s.resource_id.as_str()).collect();
                out.resources_deleted =
                    before.map(|b| b.iter().filter(|id| !ours.contains(id.as_str())).count() as u64);
            }
            Err(e) => out.errors.push(ItemError::new("session", op_action, &e)),
        }
    }

    async fn push_incremental(&self, inventory: &Inventory, out: &mut Pushed) {
        let op_list = "GET /custom-connections/{connectionId}/resources/{resourceId}/records";
        let current: HashMap<String, serde_json::Value> =
            match self.list::<Record>(op_list, &self.records_path(), PAGE_SIZE).await {
                Ok(records) => records.into_iter().map(|r| (r.id, r.attributes)).collect(),
                Err(e) => {
                    out.notes.push(format!("could not read Drata's records ({e}): every system was upserted"));
                    HashMap::new()
                }
            };
        let changed: Vec<&ScopeItem> =
            inventory.systems.iter().filter(|s| current.get(&s.resource_id) != Some(&Self::record(s))).collect();
        let unchanged = (inventory.systems.len() - changed.len()) as u64;
        let sent = self.upsert(&changed, None, out).await;
        out.resources_synced = unchanged + sent;
        out.metadata.insert("records_unchanged".into(), unchanged.into());
        out.metadata.insert("records_upserted".into(), sent.into());
    }

    async fn push_evidence(&self, inventory: &Inventory, out: &mut Pushed) {
        if inventory.evidence.is_empty() {
            return;
        }
        let Some(workspace) = self.cfg.workspace_id.clone() else {
            out.notes.push(format!(
                "{} evidence records not pushed: no Drata workspace configured (PSG_GRC_DRATA_WORKSPACE_ID)",
                inventory.evidence.len()
            ));
            return;
        };
        let ws = segment(&workspace);
        let op_list = "GET /workspaces/{workspaceId}/evidence";
        let existing: HashSet<String> =
            match self.list::<Named>(op_list, &format!("/workspaces/{ws}/evidence"), 50).await {
                Ok(items) => items.into_iter().map(|n| n.name).collect(),
                Err(e) => {
                    // Without the list a re-run would create duplicates: push no evidence.
                    out.errors.push(ItemError::new(format!("workspace {workspace}"), op_list, &e));
                    return;
                }
            };
        for item in &inventory.evidence {
            if existing.contains(&evidence_name(item)) {
                out.evidence_skipped += 1;
                continue;
            }
            match self.upload_evidence(&ws, item).await {
                Ok(()) => out.evidence_uploaded += 1,
                Err((op, e)) => out.errors.push(ItemError::new(format!("evidence {}", item.evidence_id), op, &e)),
            }
        }
        out.metadata.insert("drata_workspace_id".into(), workspace.into());
    }

    async fn upload_evidence(&self, ws: &str, item: &EvidenceItem) -> Result<(), (&'static str, Error)> {
        let op_file = "POST /workspaces/{workspaceId}/evidence-files";
        let Some(bytes) = item.document.clone() else {
            return Err((
                op_file,
                Error::Config {
                    provider: ProviderKind::Drata,
                    message: format!("the document {} was not loaded", item.document_path),
                },
            ));
        };
        let name = item.file_name();
        let url = self.http.url(&format!("/workspaces/{ws}/evidence-files"));
        let reply = self
            .call(op_file, |c| {
                let part = || Part::bytes(bytes.clone()).file_name(name.clone());
                let file = part().mime_str("application/json").unwrap_or_else(|_| part());
                c.post(&url).multipart(Form::new().part("file", file))
            })
            .await
            .map_err(|e| (op_file, e))?;
        let created: Created = reply.json(ProviderKind::Drata, op_file).map_err(|e| (op_file, e))?;
        let op = "POST /workspaces/{workspaceId}/evidence";
        let generated = chrono::DateTime::parse_from_rfc3339(&item.generated_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now());
        let renewal = (generated + chrono::Duration::days(i64::from(self.cfg.renewal_days))).date_naive();
        let body = serde_json::json!({
            "name": evidence_name(item),
            "description": item.description(),
            "filedAt": item.generated_at,
            "renewalDate": renewal.to_string(),
            "renewalScheduleType": "CUSTOM",
            "controlIds": self.cfg.control_ids,
            "artifacts": [{ "type": "FILE", "evidenceFileId": created.id }],
        });
        let url = self.http.url(&format!("/workspaces/{ws}/evidence"));
        self.call(op, |c| c.post(&url).json(&body)).await.map_err(|e| (op, e))?;
        Ok(())
    }
}

/// The name of a record's evidence item in Drata: stable, so a re-run finds it.
pub fn evidence_name(item: &EvidenceItem) -> String {
    format!("PCI Scope Guard {} {} #{}", item.evidence_type, item.chain, item.sequence)
}

impl GrcProvider for Drata {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Drata
    }

    async fn push(&mut self, inventory: &Inventory, sync_type: SyncType) -> Pushed {
        let mut out = Pushed::default();
        match sync_type {
            SyncType::Full => self.push_full(inventory, &mut out).await,
            SyncType::Incremental => self.push_incremental(inventory, &mut out).await,
        }
        self.push_evidence(inventory, &mut out).await;
        out.metadata.insert("drata_connection_id".into(), self.cfg.connection_id.clone().into());
        out
    }
}
