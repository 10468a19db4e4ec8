//! S3 and S3-compatible object storage for evidence, with S3 Object Lock.
//!
//! Reads, unlocked writes and deletes go through `object_store`'s S3
//! client. A locked write is a `PutObject` with the Object Lock headers
//! (`x-amz-object-lock-mode: COMPLIANCE`,
//! `x-amz-object-lock-retain-until-date`), which `object_store`'s put
//! options cannot carry; it is built here, signed with `object_store`'s
//! SigV4 signer and sent with its HTTP client. Connection settings and
//! credentials come from the standard `AWS_*` environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`, `AWS_ENDPOINT` for an S3-compatible server,
//! `AWS_ALLOW_HTTP`, ...), as `object_store` reads them.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use md5::Md5;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer, Checksum};
use object_store::client::{ClientConfigKey, ClientOptions, HttpClient, HttpConnector, ReqwestConnector};
use object_store::prefix::PrefixStore;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The lock every locked object gets.
pub const LOCK_MODE: &str = "COMPLIANCE";

/// A bucket (and key prefix) holding evidence.
#[derive(Debug)]
pub struct Bucket {
    s3: Arc<AmazonS3>,
    client: HttpClient,
    /// The bucket's URL: an object's URL is this plus its key.
    endpoint: url::Url,
    region: String,
    /// Prepended to every path (`prefix/`), or empty.
    prefix: String,
    /// `s3://bucket/prefix`, for messages and storage URLs.
    url: String,
}

/// A signed request's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An object's retention as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub mode: String,
    pub retain_until: DateTime<Utc>,
}

impl Bucket {
    /// Opens `s3://bucket[/prefix]` with the `AWS_*` environment, then
    /// `options` (`object_store`'s S3 configuration keys, e.g.
    /// `aws_endpoint`), and returns it with the object store reads go
    /// through.
    pub fn open(location: &str, options: &[(&str, &str)]) -> Result<(Self, Arc<dyn ObjectStore>)> {
        let err = |reason: String| Error::Documents { url: location.to_owned(), reason };
        let parsed = url::Url::parse(location).map_err(|e| err(e.to_string()))?;
        let bucket = parsed.host_str().filter(|b| !b.is_empty()).ok_or_else(|| err("no bucket name".to_owned()))?;
        let prefix = parsed.path().trim_matches('/').to_owned();
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            // A bucket with Object Lock refuses writes without a checksum.
            .with_checksum_algorithm(Checksum::SHA256);
        for (key, value) in options {
            let key: AmazonS3ConfigKey = key.parse().map_err(|e: object_store::Error| err(e.to_string()))?;
            builder = builder.with_config(key, *value);
        }
        let config = |k: AmazonS3ConfigKey| builder.get_config_value(&k);
        let region = config(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".to_owned());
        let virtual_hosted = config(AmazonS3ConfigKey::VirtualHostedStyleRequest).is_some_and(|v| truthy(&v));
        // As object_store addresses the bucket.
        let endpoint = match (config(AmazonS3ConfigKey::Endpoint), virtual_hosted) {
            (Some(e), true) => e,
            (Some(e), false) => format!("{}/{bucket}", e.trim_end_matches('/')),
            (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
            (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        };
        let endpoint = url::Url::parse(&endpoint).map_err(|e| err(format!("endpoint {endpoint}: {e}")))?;
        let allow_http = config(AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp)).is_some_and(|v| truthy(&v));
        let client = ReqwestConnector::default()
            .connect(&ClientOptions::new().with_allow_http(allow_http))
            .map_err(|e| err(e.to_string()))?;
        let s3 = Arc::new(builder.build().map_err(|e| err(e.to_string()))?);
        let store: Arc<dyn ObjectStore> =
            if prefix.is_empty() { s3.clone() } else { Arc::new(PrefixStore::new(s3.clone(), prefix.as_str())) };
        let url = if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
        let prefix = if prefix.is_empty() { prefix } else { format!("{prefix}/") };
        Ok((Self { s3, client, endpoint, region, prefix, url }, store))
    }

    /// `s3://bucket[/prefix]`.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn error(&self, what: &str, reason: impl std::fmt::Display) -> Error {
        Error::Documents { url: self.url.clone(), reason: format!("{what}: {reason}") }
    }

    /// Sends a signed request for `path` under the prefix (`None`: the
    /// bucket itself) with the sub-resource `query` (e.g. `object-lock`).
    pub async fn request(
        &self,
        method: Method,
        path: Option<&str>,
        query: Option<&str>,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Answer> {
        let mut url = self.endpoint.clone();
        if let Some(path) = path {
            let key = format!("{}{path}", self.prefix);
            url.path_segments_mut()
                .map_err(|()| self.error("endpoint", "cannot hold a path"))?
                .pop_if_empty()
                .extend(key.split('/'));
        }
        url.set_query(query);
        let what = format!("{method} {}", path.unwrap_or("(bucket)"));
        let digest = Sha256::digest(&body);
        let mut request = http::Request::builder()
            .method(method)
            .uri(url.as_str())
            .body(body.into())
            .map_err(|e| self.error(&what, e))?;
        *request.headers_mut() = headers;
        let credential = self.s3.credentials().get_credential().await.map_err(|e| self.error("credentials", e))?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .try_authorize(&mut request, Some(digest.as_slice()))
            .map_err(|e| self.error(&what, e))?;
        let response = self.client.execute(request).await.map_err(|e| self.error(&what, e))?;
        let (parts, body) = response.into_parts();
        let body = body.bytes().await.map_err(|e| self.error(&what, e))?;
        Ok(Answer { status: parts.status, headers: parts.headers, body })
    }

    /// Whether the bucket has Object Lock enabled.
    pub async fn object_lock_enabled(&self) -> Result<bool> {
        let a = self.request(Method::GET, None, Some("object-lock"), HeaderMap::new(), Bytes::new()).await?;
        let body = String::from_utf8_lossy(&a.body);
        match a.status {
            StatusCode::OK => Ok(body.contains("<ObjectLockEnabled>Enabled</ObjectLockEnabled>")),
            StatusCode::NOT_FOUND if body.contains("ObjectLockConfigurationNotFound") => Ok(false),
            status => Err(self.error("reading the bucket's Object Lock configuration", s3_error(status, &body))),
        }
    }

    /// Writes `path`, locked in compliance mode until `retain_until`.
    pub async fn put_locked(&self, path: &str, body: Bytes, retain_until: DateTime<Utc>) -> Result<()> {
        let mut headers = HeaderMap::new();
        let mut set = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        set("x-amz-object-lock-mode", LOCK_MODE.to_owned());
        set("x-amz-object-lock-retain-until-date", retain_until.to_rfc3339_opts(SecondsFormat::Millis, true));
        // Object Lock writes need an integrity check: Content-MD5 (every
        // S3-compatible server knows it) and SHA-256.
        set("content-md5", B64.encode(<Md5 as md5::Digest>::digest(&body)));
        set("x-amz-sdk-checksum-algorithm", "SHA256".to_owned());
        set("x-amz-checksum-sha256", B64.encode(Sha256::digest(&body)));
        set("content-length", body.len().to_string());
        let a = self.request(Method::PUT, Some(path), None, headers, body).await?;
        if a.status.is_success() {
            return Ok(());
        }
        Err(self.error(&format!("locked write of {path}"), s3_error(a.status, &String::from_utf8_lossy(&a.body))))
    }

    /// The Object Lock retention of `path` (its newest version), from the
    /// object's headers; `None` when it has none.
    pub async fn retention(&self, path: &str) -> Result<Option<Retention>> {
        let a = self.request(Method::HEAD, Some(path), None, HeaderMap::new(), Bytes::new()).await?;
        if !a.status.is_success() {
            return Err(self.error(&format!("HEAD {path}"), a.status));
        }
        let header = |n: &str| a.headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (Some(mode), Some(until)) =
            (header("x-amz-object-lock-mode"), header("x-amz-object-lock-retain-until-date"))
        else {
            return Ok(None);
        };
        let retain_until = DateTime::parse_from_rfc3339(&until)
            .map_err(|e| self.error(&format!("{path}: retain-until date '{until}'"), e))?
            .with_timezone(&Utc);
        Ok(Some(Retention { mode, retain_until }))
    }
}

fn truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on")
}

/// An S3 error answer in a line: its status, code and message.
fn s3_error(status: StatusCode, body: &str) -> String {
    let tag = |t: &str| {
        let open = format!("<{t}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&format!("</{t}>"))? + start;
        Some(body[start..end].to_owned())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{status}: {code}: {message}"),
        (Some(code), None) => format!("{status}: {code}"),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_read_as_one_line() {
        let body = "<?xml version=\"1.0\"?><Error><Code>InvalidRequest</Code><Message>Bucket is missing ObjectLockConfiguration</Message></Error>";
        assert_eq!(
            s3_error(StatusCode::BAD_REQUEST, body),
            "400 Bad Request: InvalidRequest: Bucket is missing ObjectLockConfiguration"
        );
        assert_eq!(s3_error(StatusCode::FORBIDDEN, ""), "403 Forbidden");
    }

    #[test]
    fn buckets_are_addressed_as_object_store_does() {
        let (b, _) = Bucket::open(
            "s3://evidence/prod/pci",
            &[("aws_endpoint", "http://127.0.0.1:9000/"), ("aws_allow_http", "true"), ("aws_region", "eu-west-1")],
        )
        .unwrap();
        assert_eq!(b.endpoint.as_str(), "http://127.0.0.1:9000/evidence");
        assert_eq!(
            (b.prefix.as_str(), b.url(), b.region.as_str()),
            ("prod/pci/", "s3://evidence/prod/pci", "eu-west-1")
        );
        let (b, _) =
            Bucket::open("s3://evidence", &[("aws_region", "eu-west-1"), ("aws_virtual_hosted_style_request", "true")])
                .unwrap();
        assert_eq!(b.endpoint.as_str(), "https://evidence.s3.eu-west-1.amazonaws.com/");
        assert_eq!((b.prefix.as_str(), b.url()), ("", "s3://evidence"));
        assert!(Bucket::open("s3:///x", &[]).is_err());
    }
}
