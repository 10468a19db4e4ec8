//! Secureframe (`https://api.secureframe.com`, JSON:API,
//! `Authorization: <key> <secret>`):
//!
//! - the systems are published to a custom integration (its "Publish data"
//!   endpoint, early access at the time of writing): one JSON:API document
//!   whose resources are the current state of every system, keyed by
//!   `resource_id` (the schema's primary id). The path is
//!   `grc.secureframe.publish-path` under the API root;
//! - evidence: Secureframe's public API documents no endpoint to upload
//!   evidence files, so the evidence is written to a bundle directory for
//!   upload by hand (`systems.csv`, `evidence.csv` and the signed
//!   documents), and the summary says it was not synced.

use std::path::{Path, PathBuf};

use psg_config::Secret;
use reqwest::header::{AUTHORIZATION, HeaderValue};

use crate::http::{Http, RetryPolicy};
use crate::model::{csv_field, systems_csv};
use crate::sync::{GrcProvider, ItemError, ProviderKind, Pushed, SyncType};
use crate::{Error, Inventory, Result};

/// Secureframe's API root.
pub const DEFAULT_BASE_URL: &str = "https://api.secureframe.com";

/// Settings of the Secureframe client.
#[derive(Debug, Clone)]
pub struct SecureframeConfig {
    pub base_url: String,
    pub api_key: Secret,
    pub api_secret: Secret,
    /// The custom integration's schema slug.
    pub schema_slug: String,
    /// The publish endpoint's path under the API root.
    pub publish_path: String,
    /// Bundles are written in a new directory under this one.
    pub bundle_dir: PathBuf,
}

impl SecureframeConfig {
    /// From `[grc.secureframe]` / `PSG_GRC_SECUREFRAME_*`; `base_url` overrides the configured root.
    pub fn from_settings(s: &psg_config::SecureframeSettings, base_url: Option<&str>) -> Result<Self> {
        let missing = |what: &str, env: &str| crate::missing_setting(ProviderKind::Secureframe, what, env);
        Ok(Self {
            base_url: base_url.or(s.base_url.as_deref()).unwrap_or(DEFAULT_BASE_URL).to_owned(),
            api_key: s.api_key.clone().ok_or_else(|| missing("the API key", "PSG_GRC_SECUREFRAME_API_KEY"))?,
            api_secret: s
                .api_secret
                .clone()
                .ok_or_else(|| missing("the API key's secret", "PSG_GRC_SECUREFRAME_API_SECRET"))?,
            schema_slug: s.schema_slug.clone(),
            publish_path: s.publish_path.clone(),
            bundle_dir: s.bundle_dir.clone(),
        })
    }
}

/// The Secureframe client.
#[derive(Debug)]
pub struct Secureframe {
    http: Http,
    cfg: SecureframeConfig,
}

impl Secureframe {
    pub fn new(cfg: SecureframeConfig, policy: RetryPolicy) -> Result<Self> {
        Ok(Self { http: Http::new(ProviderKind::Secureframe, &cfg.base_url, policy)?, cfg })
    }

    /// `Authorization: <key> <secret>`, marked sensitive (never printed).
    fn authorization(&self) -> Result<HeaderValue> {
        let mut v = HeaderValue::from_str(&format!("{} {}", self.cfg.api_key.expose(), self.cfg.api_secret.expose()))
            .map_err(|_| Error::Config {
            provider: ProviderKind::Secureframe,
            message: "the API key or secret holds characters a header cannot carry".into(),
        })?;
        v.set_sensitive(true);
        Ok(v)
    }

    /// The JSON:API document publishing the systems.
    pub fn publish_body(&self, inventory: &Inventory) -> serde_json::Value {
        let resources: Vec<serde_json::Value> = inventory
            .systems
            .iter()
            .map(|s| s.properties(&[("resource_id", &s.resource_id), ("name", &s.name)]))
            .collect();
        serde_json::json!({
            "data": {
                "type": "custom_integration_resource_data",
                "attributes": { "schema_slug": self.cfg.schema_slug, "resources": resources },
            }
        })
    }

    async fn publish(&self, inventory: &Inventory, out: &mut Pushed) {
        let op = format!("POST {}", self.cfg.publish_path);
        if inventory.systems.is_empty() {
            out.errors.push(ItemError {
                item: "systems".into(),
                operation: op,
                status: None,
                message: "no systems to publish".into(),
            });
            return;
        }
        let auth = match self.authorization() {
            Ok(a) => a,
            Err(e) => return out.errors.push(ItemError::new("systems", op, &e)),
        };
        let body = self.publish_body(inventory);
        let url = self.http.url(&self.cfg.publish_path);
        let result = self
            .http
            .send(&op, |c| {
                c.post(&url)
                    .header(AUTHORIZATION, auth.clone())
                    .header("Content-Type", "application/vnd.api+json")
                    .header("Accept", "application/vnd.api+json")
                    .body(body.to_string())
            })
            .await;
        match result {
            Ok(_) => out.resources_synced = inventory.systems.len() as u64,
            Err(e) => out.errors.push(ItemError::new("systems", op, &e)),
        }
    }

    /// Writes the bundle for upload by hand; returns its directory.
    pub fn write_bundle(&self, inventory: &Inventory) -> Result<(PathBuf, u64)> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let dir = self
            .cfg
            .bundle_dir
            .join(format!("secureframe-{stamp}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Bundle { path, source }
        };
        let docs = dir.join("documents");
        std::fs::create_dir_all(&docs).map_err(io(&docs))?;
        let systems = dir.join("systems.csv");
        std::fs::write(&systems, systems_csv(&inventory.systems)).map_err(io(&systems))?;
        let mut csv = String::from("evidence_id,evidence_type,pci_requirement,generated_at,sha256,file,description\n");
        let mut written = 0;
        for item in &inventory.evidence {
            let Some(bytes) = &item.document else { continue };
            let name = item.file_name();
            let path = docs.join(&name);
            std::fs::write(&path, bytes).map_err(io(&path))?;
            written += 1;
            let fields = [
                item.evidence_id.clone(),
                item.evidence_type.clone(),
                item.requirement.clone().unwrap_or_default(),
                item.generated_at.clone(),
                item.hash.clone(),
                format!("documents/{name}"),
                item.description(),
            ];
            csv.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
            csv.push('\n');
        }
        let evidence = dir.join("evidence.csv");
        std::fs::write(&evidence, csv).map_err(io(&evidence))?;
        let readme = dir.join("README.txt");
        std::fs::write(
            &readme,
            "PCI Scope Guard bundle for Secureframe, for upload by hand.\n\n\
             Secureframe's public API documents no endpoint to upload evidence files, so these\n\
             were NOT synced. Upload documents/* to the matching controls or tests in Secureframe;\n\
             evidence.csv lists each document with its type, PCI DSS requirement and SHA-256.\n\
             systems.csv is the scope inventory (also published to the custom integration).\n",
        )
        .map_err(io(&readme))?;
        Ok((dir, written))
    }
}

impl GrcProvider for Secureframe {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Secureframe
    }

    async fn push(&mut self, inventory: &Inventory, _sync_type: SyncType) -> Pushed {
        let mut out = Pushed::default();
        self.publish(inventory, &mut out).await;
        out.metadata.insert("secureframe_schema_slug".into(), self.cfg.schema_slug.clone().into());
        match self.write_bundle(inventory) {
            Ok((dir, written)) => {
                out.evidence_bundled = written;
                out.notes.push(format!(
                    "Secureframe documents no evidence upload API: {written} evidence documents (and systems.csv) were written to {} for upload by hand; they are not synced",
                    dir.display()
                ));
                out.metadata.insert("bundle_dir".into(), dir.display().to_string().into());
            }
            Err(e) => out.errors.push(ItemError::new("evidence bundle", "write", &e)),
        }
        out
    }
}
