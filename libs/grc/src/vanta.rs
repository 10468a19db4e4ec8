//! Vanta, as its public API reference documents it:
//!
//! - OAuth 2.0 client credentials: `POST /oauth/token` with JSON
//!   `{client_id, client_secret, scope, grant_type: "client_credentials"}`;
//!   the bearer token is reused until it expires (the token endpoint is rate
//!   limited), and fetched again when a call answers 401;
//! - the systems as custom resources: `PUT /v1/resources/custom_resource`
//!   with `{resourceId, resources: [{displayName, uniqueId, externalUrl,
//!   customProperties}]}`. Vanta replaces the whole set (a system left out
//!   is deleted), so every sync sends the complete set, and an empty set is
//!   never sent;
//! - evidence documents: `POST /v1/documents/{documentId}/uploads`
//!   (multipart, field `file`) for each record not uploaded yet (found by
//!   file name in `GET /v1/documents/{documentId}/uploads`), then
//!   `POST /v1/documents/{documentId}/submit`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use psg_config::Secret;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;

use crate::http::{Http, Reply, RetryPolicy, segment};
use crate::sync::{GrcProvider, ItemError, ProviderKind, Pushed, SyncType};
use crate::{Error, Inventory, Result, ScopeItem};

/// Vanta's API root (Vanta Gov: `https://api.vanta-gov.com`).
pub const DEFAULT_BASE_URL: &str = "https://api.vanta.com";

/// Settings of the Vanta client.
#[derive(Debug, Clone)]
pub struct VantaConfig {
    pub base_url: String,
    pub client_id: Secret,
    pub client_secret: Secret,
    pub scope: String,
    /// The custom resource type created in Vanta for the systems.
    pub resource_id: String,
    /// The Vanta document evidence is uploaded to; `None`: no evidence push.
    pub document_id: Option<String>,
    /// `externalUrl` of a system; `{resource_id}` is replaced.
    pub external_url: String,
}

impl VantaConfig {
    /// From `[grc.vanta]` / `PSG_GRC_VANTA_*`; `base_url` overrides the configured root.
    pub fn from_settings(s: &psg_config::VantaSettings, base_url: Option<&str>) -> Result<Self> {
        let missing = |what: &str, env: &str| crate::missing_setting(ProviderKind::Vanta, what, env);
        Ok(Self {
            base_url: base_url.or(s.base_url.as_deref()).unwrap_or(DEFAULT_BASE_URL).to_owned(),
            client_id: s.client_id.clone().ok_or_else(|| missing("the client id", "PSG_GRC_VANTA_CLIENT_ID"))?,
            client_secret: s
                .client_secret
                .clone()
                .ok_or_else(|| missing("the client secret", "PSG_GRC_VANTA_CLIENT_SECRET"))?,
            scope: s.scope.clone(),
            resource_id: s
                .resource_id
                .clone()
                .ok_or_else(|| missing("the custom resource type id", "PSG_GRC_VANTA_RESOURCE_ID"))?,
            document_id: s.document_id.clone(),
            external_url: s.external_url.clone(),
        })
    }
}

#[derive(Debug)]
struct Token {
    value: Secret,
    expires: Instant,
}

/// The Vanta client.
#[derive(Debug)]
pub struct Vanta {
    http: Http,
    cfg: VantaConfig,
    token: Option<Token>,
    /// Tokens fetched so far (the token endpoint is rate limited).
    tokens_fetched: u32,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadsPage {
    results: UploadsResults,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadsResults {
    #[serde(default)]
    data: Vec<Upload>,
    #[serde(default)]
    page_info: Option<PageInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Upload {
    #[serde(default)]
    file_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    #[serde(default)]
    has_next_page: bool,
    #[serde(default)]
    end_cursor: Option<String>,
}

const OP_TOKEN: &str = "POST /oauth/token";
const OP_SYNC: &str = "PUT /v1/resources/custom_resource";

impl Vanta {
    pub fn new(cfg: VantaConfig, policy: RetryPolicy) -> Result<Self> {
        Ok(Self { http: Http::new(ProviderKind::Vanta, &cfg.base_url, policy)?, cfg, token: None, tokens_fetched: 0 })
    }

    /// How many tokens this client fetched.
    pub fn tokens_fetched(&self) -> u32 {
        self.tokens_fetched
    }

    /// The cached token while it is valid, else a new one.
    async fn token(&mut self) -> Result<Secret> {
        if let Some(t) = self.token.as_ref().filter(|t| Instant::now() < t.expires) {
            return Ok(t.value.clone());
        }
        let body = serde_json::json!({
            "client_id": self.cfg.client_id.expose(),
            "client_secret": self.cfg.client_secret.expose(),
            "scope": self.cfg.scope,
            "grant_type": "client_credentials",
        });
        let url = self.http.url("/oauth/token");
        let reply = self.http.send(OP_TOKEN, |c| c.post(&url).json(&body)).await?;
        let token: TokenReply = reply.json(ProviderKind::Vanta, OP_TOKEN)?;
        self.tokens_fetched += 1;
        // Renew a little before it expires: a minute, or a tenth of a short lifetime.
        let lifetime = token.expires_in.unwrap_or(3600);
        let margin = (lifetime / 10).min(60);
        let value = Secret::new(token.access_token);
        self.token = Some(Token {
            value: value.clone(),
            expires: Instant::now() + Duration::from_secs(lifetime.saturating_sub(margin)),
        });
        Ok(value)
    }

    /// A call with the bearer token; on 401 the token is fetched again once.
    async fn call(
        &mut self,
        op: &str,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<Reply> {
        let token = self.token().await?;
        match self.http.send(op, |c| build(c, token.expose())).await {
            Err(Error::Status { status: 401, .. }) => {
                tracing::info!("Vanta answered 401: fetching a new token");
                self.token = None;
                let token = self.token().await?;
                self.http.send(op, |c| build(c, token.expose())).await
            }
            other => other,
        }
    }

    /// The body of the custom resource sync: the complete set.
    pub fn resources_body(&self, systems: &[ScopeItem]) -> serde_json::Value {
        let resources: Vec<serde_json::Value> = systems
            .iter()
            .map(|s| {
                serde_json::json!({
                    "displayName": s.display_name(),
                    "uniqueId": s.resource_id,
                    "externalUrl": self.cfg.external_url.replace("{resource_id}", &segment(&s.resource_id)),
                    "customProperties": s.properties(&[]),
                })
            })
            .collect();
        serde_json::json!({ "resourceId": self.cfg.resource_id, "resources": resources })
    }

    async fn push_systems(&mut self, inventory: &Inventory, sync_type: SyncType, out: &mut Pushed) {
        if inventory.systems.is_empty() {
            out.errors.push(ItemError {
                item: "systems".into(),
                operation: OP_SYNC.into(),
                status: None,
                message: "no systems to push: an empty set would delete every system in Vanta, so nothing was sent"
                    .into(),
            });
            return;
        }
        let body = self.resources_body(&inventory.systems);
        let url = self.http.url("/v1/resources/custom_resource");
        match self.call(OP_SYNC, |c, t| c.put(&url).bearer_auth(t).json(&body)).await {
            Ok(_) => {
                out.resources_synced = inventory.systems.len() as u64;
                if sync_type == SyncType::Incremental {
                    out.notes
                        .push("Vanta replaces the whole set of custom resources: the complete set was sent".into());
                }
            }
            Err(e) => out.errors.push(ItemError::new("systems", OP_SYNC, &e)),
        }
    }

    /// File names already uploaded to the document.
    async fn uploaded_files(&mut self, document: &str) -> Result<HashSet<String>> {
        let op = "GET /v1/documents/{documentId}/uploads";
        let url = self.http.url(&format!("/v1/documents/{}/uploads", segment(document)));
        let mut names = HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("pageSize", "100".to_owned())];
            if let Some(c) = &cursor {
                query.push(("pageCursor", c.clone()));
            }
            let reply = self.call(op, |c, t| c.get(&url).bearer_auth(t).query(&query)).await?;
            let page: UploadsPage = reply.json(ProviderKind::Vanta, op)?;
            names.extend(page.results.data.into_iter().filter_map(|u| u.file_name));
            match page.results.page_info {
                Some(PageInfo { has_next_page: true, end_cursor: Some(next) }) if cursor.as_ref() != Some(&next) => {
                    cursor = Some(next)
                }
                _ => return Ok(names),
            }
        }
    }

    async fn push_evidence(&mut self, inventory: &Inventory, out: &mut Pushed) {
        if inventory.evidence.is_empty() {
            return;
        }
        let Some(document) = self.cfg.document_id.clone() else {
            out.notes.push(format!(
                "{} evidence records not pushed: no Vanta document configured (PSG_GRC_VANTA_DOCUMENT_ID)",
                inventory.evidence.len()
            ));
            return;
        };
        let existing = match self.uploaded_files(&document).await {
            Ok(names) => names,
            Err(e) => {
                // Without the list a re-run would upload duplicates: push no evidence.
                out.errors.push(ItemError::new(
                    format!("document {document}"),
                    "GET /v1/documents/{documentId}/uploads",
                    &e,
                ));
                return;
            }
        };
        let op = "POST /v1/documents/{documentId}/uploads";
        let url = self.http.url(&format!("/v1/documents/{}/uploads", segment(&document)));
        for item in &inventory.evidence {
            let name = item.file_name();
            if existing.contains(&name) {
                out.evidence_skipped += 1;
                continue;
            }
            let Some(bytes) = item.document.clone() else {
                out.errors.push(ItemError {
                    item: format!("evidence {}", item.evidence_id),
                    operation: op.into(),
                    status: None,
                    message: format!("its document {} was not loaded", item.document_path),
                });
                continue;
            };
            let description = item.description();
            let effective = item.generated_at.clone();
            let result = self
                .call(op, |c, t| {
                    let part = || Part::bytes(bytes.clone()).file_name(name.clone());
                    let file = part().mime_str("application/json").unwrap_or_else(|_| part());
                    let form = Form::new()
                        .part("file", file)
                        .text("description", description.clone())
                        .text("effectiveAtDate", effective.clone());
                    c.post(&url).bearer_auth(t).multipart(form)
                })
                .await;
            match result {
                Ok(_) => out.evidence_uploaded += 1,
                Err(e) => out.errors.push(ItemError::new(format!("evidence {}", item.evidence_id), op, &e)),
            }
        }
        if out.evidence_uploaded > 0 {
            let op = "POST /v1/documents/{documentId}/submit";
            let url = self.http.url(&format!("/v1/documents/{}/submit", segment(&document)));
            if let Err(e) = self.call(op, |c, t| c.post(&url).bearer_auth(t)).await {
                out.errors.push(ItemError::new(format!("document {document}"), op, &e));
            }
        }
        out.metadata.insert("vanta_document_id".into(), document.into());
    }
}

impl GrcProvider for Vanta {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Vanta
    }

    async fn push(&mut self, inventory: &Inventory, sync_type: SyncType) -> Pushed {
        let mut out = Pushed::default();
        out.metadata.insert("vanta_resource_id".into(), self.cfg.resource_id.clone().into());
        // Without a token nothing can go through: one error, not one per call.
        if let Err(e) = self.token().await {
            out.errors.push(ItemError::new("token", OP_TOKEN, &e));
            return out;
        }
        self.push_systems(inventory, sync_type, &mut out).await;
        self.push_evidence(inventory, &mut out).await;
        out.metadata.insert("tokens_fetched".into(), self.tokens_fetched.into());
        out
    }
}
