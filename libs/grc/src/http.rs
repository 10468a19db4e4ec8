//! The HTTP client of every provider: rustls, a timeout per request, no
//! redirects (an API that redirects would get the credentials elsewhere),
//! and [`Http::send`], which retries what may succeed later:
//!
//! - `5xx`, `408` and transport failures (timeouts, refused connections):
//!   exponential backoff from [`RetryPolicy::initial_backoff`];
//! - `429`: waits the `Retry-After` the provider asks (seconds or an HTTP
//!   date, at most [`RetryPolicy::max_retry_after`]), else the backoff.
//!
//! Other statuses fail at once, with what the provider said and, for the
//! statuses that need a person (401, 402, 403, 404, 412), what to check.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;

use crate::sync::ProviderKind;
use crate::{Error, Result};

/// Timeouts and retries of provider requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// Timeout of one attempt.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The policy of `[grc]`.
    pub fn from_config(c: &psg_config::GrcConfig) -> Self {
        Self {
            max_attempts: c.max_attempts.max(1),
            initial_backoff: Duration::from_millis(c.backoff_ms),
            timeout: Duration::from_secs(c.timeout_secs.max(1)),
            ..Self::default()
        }
    }

    /// The wait after failed attempt `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json<T: DeserializeOwned>(&self, provider: ProviderKind, op: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Response {
            provider,
            op: op.to_owned(),
            detail: format!("HTTP {}: {e}: {}", self.status.as_u16(), snippet(&self.body)),
            source: Some(e),
        })
    }
}

/// The client of one provider at one API root.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    base: String,
    policy: RetryPolicy,
    provider: ProviderKind,
}

impl Http {
    pub(crate) fn new(provider: ProviderKind, base_url: &str, policy: RetryPolicy) -> Result<Self> {
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(Error::Config {
                provider,
                message: format!("base URL '{base_url}' must start with https:// (or http:// for a local test server)"),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pci-scope-guard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::Client)?;
        Ok(Self { client, base: base_url.trim_end_matches('/').to_owned(), policy, provider })
    }

    /// The URL of `path` (which starts with `/`) under the API root.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends the request `build` makes (once per attempt: a multipart body
    /// cannot be sent twice), retrying as the module says.
    pub(crate) async fn send(&self, op: &str, build: impl Fn(&reqwest::Client) -> RequestBuilder) -> Result<Reply> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.policy.max_attempts;
            let request = build(&self.client);
            let wait = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    let body = match response.bytes().await {
                        Ok(b) => b.to_vec(),
                        Err(e) if !last && (e.is_timeout() || e.is_body()) => {
                            tracing::warn!(provider = %self.provider, op, attempt, "reading the answer failed: {e}; retrying");
                            tokio::time::sleep(self.policy.backoff(attempt)).await;
                            continue;
                        }
                        Err(source) => return Err(self.transport(op, attempt, source)),
                    };
                    if status.is_success() {
                        return Ok(Reply { status, body });
                    }
                    let retryable = status.is_server_error()
                        || status == StatusCode::TOO_MANY_REQUESTS
                        || status == StatusCode::REQUEST_TIMEOUT;
                    if !retryable || last {
                        return Err(Error::Status {
                            provider: self.provider,
                            op: op.to_owned(),
                            status: status.as_u16(),
                            detail: format!("{}{}", hint(self.provider, status), snippet(&body)),
                        });
                    }
                    let wait = match (status, retry_after) {
                        (StatusCode::TOO_MANY_REQUESTS, Some(after)) => after.min(self.policy.max_retry_after),
                        _ => self.policy.backoff(attempt),
                    };
                    tracing::warn!(provider = %self.provider, op, attempt, status = status.as_u16(), wait_ms = wait.as_millis() as u64, "retrying");
                    wait
                }
                Err(e) if !last && (e.is_timeout() || e.is_connect() || e.is_request()) => {
                    let wait = self.policy.backoff(attempt);
                    tracing::warn!(provider = %self.provider, op, attempt, wait_ms = wait.as_millis() as u64, "no answer: {e}; retrying");
                    wait
                }
                Err(source) => return Err(self.transport(op, attempt, source)),
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn transport(&self, op: &str, attempts: u32, source: reqwest::Error) -> Error {
        Error::Transport { provider: self.provider, op: op.to_owned(), url: self.base.clone(), attempts, source }
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// What to check for statuses a retry cannot fix.
fn hint(provider: ProviderKind, status: StatusCode) -> &'static str {
    match (provider, status.as_u16()) {
        (_, 401) => "credentials rejected (check the key, or the client id and secret); ",
        (ProviderKind::Drata, 402) => {
            "missing entitlement: the Drata plan lacks this feature (Custom Connections and Tests, or the evidence library); "
        }
        (ProviderKind::Drata, 412) => {
            "the Drata terms and conditions have not been accepted for this account's API use; "
        }
        (_, 403) => "the credentials lack a permission or scope this call needs; ",
        (_, 404) => "not found: check the configured ids (resource type, connection, workspace, document); ",
        (_, 429) => "rate limited, still after the retries; ",
        (_, 500..=599) => "the provider failed, still after the retries; ",
        _ => "",
    }
}

/// The start of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut out: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// `s` as one URL path segment (RFC 3986 unreserved characters kept).
pub(crate) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(350));
        assert_eq!(p.backoff(40), Duration::from_millis(350));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn drata_statuses_are_named() {
        assert!(hint(ProviderKind::Drata, StatusCode::PAYMENT_REQUIRED).contains("entitlement"));
        assert!(hint(ProviderKind::Drata, StatusCode::PRECONDITION_FAILED).contains("terms"));
    }
}
