//! [`Secret`]s and the redaction of connection URLs and client properties.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value that must never appear in logs or `--help` output.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl<'de> Deserialize<'de> for Secret {
    /// A string; also a number or boolean as written, since environment
    /// values that look like one (a numeric password) arrive as one.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> std::result::Result<Secret, E> {
                Ok(Secret(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_char<E: serde::de::Error>(self, v: char) -> std::result::Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: pass it to the library that needs it, nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A connection URL with its password (if any, also a `password` query
/// parameter) replaced by `***`, for logs.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query_pairs().any(|(k, _)| k.to_ascii_lowercase().contains("password")) {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let secret = k.to_ascii_lowercase().contains("password");
                        (k.into_owned(), if secret { "***".to_owned() } else { v.into_owned() })
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "<unparseable url>".to_owned(),
    }
}

/// Whether a librdkafka property holds a secret (its value is never logged):
/// every property librdkafka itself marks sensitive (passwords, private keys
/// and their locations, SASL user names, OAUTHBEARER configuration), plus
/// anything named like a password, secret, passphrase, token or private key.
pub fn is_secret_property(key: &str) -> bool {
    const SENSITIVE: &[&str] = &[
        "sasl.username",
        "sasl.password",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.client.secret",
        "ssl.key.location",
        "ssl.key.password",
        "ssl.key.pem",
        "ssl_key",
        "ssl.ca.pem",
        "ssl.keystore.password",
        "ssl.truststore.password",
    ];
    let k = key.trim().to_ascii_lowercase();
    SENSITIVE.contains(&k.as_str())
        || ["password", "secret", "passphrase", "token", "private.key", "private_key", "key.pem", "credential"]
            .iter()
            .any(|word| k.contains(word))
}

/// The value of query parameter `key` of a connection URL, percent-decoded.
pub(crate) fn url_param(url: &str, key: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters
/// and `/` stay as they are).
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
