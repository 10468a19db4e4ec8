//! The `[grc]` section: sync schedule ([`Span`]s) and each provider's
//! settings.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Secret;

/// A length of time as people write it: `90s`, `15m`, `24h`, `7d`, or
/// parts of them (`1h30m`); a bare number is seconds. Printed the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(std::time::Duration);

impl Span {
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    pub const fn as_duration(self) -> std::time::Duration {
        self.0
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str("0s");
        }
        for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if secs >= len {
                write!(f, "{}{unit}", secs / len)?;
                secs %= len;
            }
        }
        Ok(())
    }
}

/// A text that is not a [`Span`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a length of time: write e.g. 90s, 15m, 24h, 7d or 1h30m")]
pub struct BadSpan(pub String);

impl std::str::FromStr for Span {
    type Err = BadSpan;

    fn from_str(text: &str) -> std::result::Result<Self, BadSpan> {
        let s = text.trim();
        let wrong = || BadSpan(text.to_owned());
        if s.is_empty() {
            return Err(wrong());
        }
        if let Ok(secs) = s.parse::<u64>() {
            return Ok(Self::from_secs(secs));
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3_600,
                'd' => 86_400,
                _ => return Err(wrong()),
            };
            let n: u64 = digits.parse().map_err(|_| wrong())?;
            digits.clear();
            total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(wrong)?;
        }
        if !digits.is_empty() {
            return Err(wrong());
        }
        Ok(Self::from_secs(total))
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Span {
    /// `"15m"`, or a number of seconds (`900`, as an environment value
    /// that looks like a number arrives).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Secs(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
            Raw::Secs(n) => Ok(Self::from_secs(n)),
        }
    }
}

/// `[grc]`: pushing the scope inventory and evidence to GRC platforms
/// (`pci-scope-guard grc sync` once, `grc run` continuously). Secrets come
/// from here or from the environment (`PSG_GRC_VANTA_CLIENT_SECRET`, ...),
/// never from flags.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct GrcConfig {
    /// `grc run`: how often it looks for changes (decisions, evidence) and,
    /// when there are any, syncs incrementally (`PSG_GRC__INTERVAL=15m`).
    pub interval: Span,
    /// `grc run`: a full sync at least this often, and at start when the
    /// last completed full sync is older (`PSG_GRC__FULL_EVERY=24h`).
    pub full_every: Span,
    /// Timeout of one HTTP request to a provider, in seconds.
    pub timeout_secs: u64,
    /// Attempts of one request (5xx, 429 and timeouts are retried with
    /// exponential backoff; 429 waits its `Retry-After`).
    pub max_attempts: u32,
    /// First backoff between attempts, in milliseconds (doubled each time).
    pub backoff_ms: u64,
    /// Vanta.
    pub vanta: VantaSettings,
    /// Drata.
    pub drata: DrataSettings,
    /// Secureframe.
    pub secureframe: SecureframeSettings,
}

impl Default for GrcConfig {
    fn default() -> Self {
        Self {
            interval: Span::from_secs(15 * 60),
            full_every: Span::from_secs(24 * 3_600),
            timeout_secs: 30,
            max_attempts: 5,
            backoff_ms: 500,
            vanta: VantaSettings::default(),
            drata: DrataSettings::default(),
            secureframe: SecureframeSettings::default(),
        }
    }
}

/// `[grc.vanta]` (environment: `PSG_GRC_VANTA_<KEY>`, e.g. `PSG_GRC_VANTA_CLIENT_ID`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct VantaSettings {
    /// API root. Unset: `https://api.vanta.com` (Vanta Gov: `https://api.vanta-gov.com`).
    pub base_url: Option<String>,
    /// OAuth client id of the Vanta application.
    pub client_id: Option<Secret>,
    /// OAuth client secret of the Vanta application.
    pub client_secret: Option<Secret>,
    /// OAuth scopes asked for (space separated).
    pub scope: String,
    /// The id of the custom resource type created in Vanta for the systems.
    #[serde(deserialize_with = "id_string")]
    pub resource_id: Option<String>,
    /// A Vanta document the signed evidence documents are uploaded to.
    /// Unset: evidence is not pushed to Vanta.
    #[serde(deserialize_with = "id_string")]
    pub document_id: Option<String>,
    /// `externalUrl` of every system; `{resource_id}` is replaced.
    pub external_url: String,
}

impl Default for VantaSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            client_id: None,
            client_secret: None,
            scope: "connectors.self:write-resource connectors.self:read-resource".into(),
            resource_id: None,
            document_id: None,
            external_url: "https://console.pci-scope-guard.local/systems/{resource_id}".into(),
        }
    }
}

/// `[grc.drata]` (environment: `PSG_GRC_DRATA_<KEY>`, e.g. `PSG_GRC_DRATA_API_KEY`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct DrataSettings {
    /// API root. Unset: `https://public-api.drata.com/public/v2`
    /// (EU: `public-api.eu.drata.com`, APAC: `public-api.apac.drata.com`).
    pub base_url: Option<String>,
    /// API key (Bearer).
    pub api_key: Option<Secret>,
    /// The custom connection that holds the systems.
    #[serde(deserialize_with = "id_string")]
    pub connection_id: Option<String>,
    /// Its resource the system records go to.
    #[serde(deserialize_with = "id_string")]
    pub resource_id: Option<String>,
    /// The workspace evidence goes to. Unset: evidence is not pushed to Drata.
    #[serde(deserialize_with = "id_string")]
    pub workspace_id: Option<String>,
    /// Drata controls the evidence is linked to.
    pub control_ids: Vec<u64>,
    /// Days until an evidence item is due for renewal.
    pub renewal_days: u32,
    /// Records per upsert request (at most 500).
    pub batch_size: usize,
}

impl Default for DrataSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            connection_id: None,
            resource_id: None,
            workspace_id: None,
            control_ids: Vec::new(),
            renewal_days: 365,
            batch_size: 100,
        }
    }
}

/// `[grc.secureframe]` (environment: `PSG_GRC_SECUREFRAME_<KEY>`, e.g. `PSG_GRC_SECUREFRAME_API_KEY`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct SecureframeSettings {
    /// API root. Unset: `https://api.secureframe.com`.
    pub base_url: Option<String>,
    /// API key.
    pub api_key: Option<Secret>,
    /// Its secret.
    pub api_secret: Option<Secret>,
    /// Schema slug of the custom integration the systems are published to.
    pub schema_slug: String,
    /// Path of the custom integration's publish endpoint, under the API root.
    pub publish_path: String,
    /// Where the evidence bundle (CSV plus documents) is written for upload
    /// by hand: Secureframe documents no API to upload evidence.
    pub bundle_dir: PathBuf,
}

impl Default for SecureframeSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            api_secret: None,
            schema_slug: "pci-scope-guard-systems".into(),
            publish_path: "/custom_integrations/publish".into(),
            bundle_dir: PathBuf::from("./grc-secureframe"),
        }
    }
}

/// An id given as a string or, as environment values that look like one
/// arrive, as a number (`PSG_GRC_DRATA_CONNECTION_ID=42`).
fn id_string<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Unsigned(u64),
        Signed(i64),
    }
    Ok(Option::<Id>::deserialize(d)?.map(|id| match id {
        Id::Text(s) => s,
        Id::Unsigned(n) => n.to_string(),
        Id::Signed(n) => n.to_string(),
    }))
}
