//! Reading provider JSON for the inventory readers: fields found by any of
//! their spellings (camelCase, snake_case, ...), every error naming the path
//! of the field (`configuration.networkInterfaces[1].privateIpAddress`),
//! canonical IP addresses, times, tags, and per-item refusals.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, NaiveDateTime, Utc};
use psg_domain::time::{self, Micros};
use serde_json::Value;

use crate::parsed::Rejected;

/// Why one item was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) kind: &'static str,
    pub(crate) reason: String,
}

pub(crate) type Result<T> = std::result::Result<T, Refusal>;

impl Refusal {
    /// The item is malformed or holds a bad value.
    pub(crate) fn parse(reason: impl Into<String>) -> Self {
        Self { kind: "parse", reason: reason.into() }
    }

    /// The item is well formed but of a kind this version does not map.
    pub(crate) fn unsupported(reason: impl Into<String>) -> Self {
        Self { kind: "unsupported", reason: reason.into() }
    }

    /// Prefixes the reason with where the item is in its object (`configurationItems[2]`).
    pub(crate) fn within(self, place: &str) -> Self {
        Self { kind: self.kind, reason: format!("{place}: {}", self.reason) }
    }

    /// The refusal of `item`, item `line` of its message.
    pub(crate) fn rejected(self, line: u32, item: &Value) -> Rejected {
        Rejected::new(line, item.to_string(), self.kind, self.reason)
    }
}

/// A JSON value and its path from the item's root, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct At<'a> {
    pub(crate) value: &'a Value,
    pub(crate) path: String,
}

impl<'a> At<'a> {
    /// The root of an item; `path` prefixes every field path (`""` for none).
    pub(crate) fn root(value: &'a Value, path: impl Into<String>) -> Self {
        Self { value, path: path.into() }
    }

    /// The path of `key` under this value.
    pub(crate) fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    /// The first of `keys` (spellings of one field) that is present and not null.
    pub(crate) fn get(&self, keys: &[&str]) -> Option<At<'a>> {
        let obj = self.value.as_object()?;
        keys.iter()
            .find_map(|k| obj.get(*k).filter(|v| !v.is_null()).map(|v| At { value: v, path: self.child_path(k) }))
    }

    /// Follows a chain of fields, each given by its spellings.
    pub(crate) fn dig(&self, chain: &[&[&str]]) -> Option<At<'a>> {
        chain.iter().try_fold(self.clone(), |at, keys| at.get(keys))
    }

    /// This value as a string.
    pub(crate) fn as_str(&self) -> Result<&'a str> {
        self.value
            .as_str()
            .ok_or_else(|| Refusal::parse(format!("{}: expected a string, found {}", self.path, self.value)))
    }

    /// A string field; absent, null and empty are `None`, other types an error.
    pub(crate) fn opt_str(&self, keys: &[&str]) -> Result<Option<&'a str>> {
        match self.get(keys) {
            None => Ok(None),
            Some(at) => at.as_str().map(|s| Some(s.trim()).filter(|s| !s.is_empty())),
        }
    }

    /// [`Self::opt_str`], owned.
    pub(crate) fn opt_string(&self, keys: &[&str]) -> Result<Option<String>> {
        self.opt_str(keys).map(|s| s.map(str::to_owned))
    }

    /// A string field that must be present.
    pub(crate) fn req_str(&self, keys: &[&str]) -> Result<&'a str> {
        self.opt_str(keys)?.ok_or_else(|| Refusal::parse(format!("{}: missing", self.child_path(keys[0]))))
    }

    /// The elements of a list field; absent or null is empty, other types an error.
    pub(crate) fn items(&self, keys: &[&str]) -> Result<Vec<At<'a>>> {
        match self.get(keys) {
            None => Ok(Vec::new()),
            Some(at) => at.elements(),
        }
    }

    /// The elements of this value, a list.
    pub(crate) fn elements(&self) -> Result<Vec<At<'a>>> {
        let list = self
            .value
            .as_array()
            .ok_or_else(|| Refusal::parse(format!("{}: expected a list, found {}", self.path, self.value)))?;
        Ok(list.iter().enumerate().map(|(i, v)| At { value: v, path: format!("{}[{i}]", self.path) }).collect())
    }

    /// The strings of a list-of-strings field.
    pub(crate) fn strs(&self, keys: &[&str]) -> Result<Vec<&'a str>> {
        self.items(keys)?.iter().map(At::as_str).map(|s| s.map(str::trim)).filter(|s| !matches!(s, Ok(""))).collect()
    }

    /// Adds the canonical form of the address in field `keys` to `out`
    /// (absent, null and empty add nothing).
    pub(crate) fn ip_into(&self, keys: &[&str], out: &mut Vec<String>) -> Result<()> {
        match self.get(keys) {
            None => Ok(()),
            Some(at) => at.ip_value_into(out),
        }
    }

    /// Adds the canonical form of this value, an address, to `out`.
    pub(crate) fn ip_value_into(&self, out: &mut Vec<String>) -> Result<()> {
        let s = self.as_str()?.trim();
        if !s.is_empty() {
            push_unique(out, &canonical_ip(&self.path, s)?);
        }
        Ok(())
    }
}

/// The canonical text of address `s`, read from `field`.
pub(crate) fn canonical_ip(field: &str, s: &str) -> Result<String> {
    s.parse::<IpAddr>()
        .map(|a| a.to_string())
        .map_err(|_| Refusal::parse(format!("{field}: '{s}' is not an IP address")))
}

/// Whether an address is private (RFC 1918, shared, link-local, loopback,
/// unique-local) rather than routable on the internet.
pub(crate) fn is_private(addr: &str) -> bool {
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => {
            let o = a.octets();
            a.is_private() || a.is_loopback() || a.is_link_local() || (o[0] == 100 && (o[1] & 0xC0) == 64)
        }
        Ok(IpAddr::V6(a)) => {
            let s = a.segments();
            a.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
        }
        Err(_) => false,
    }
}

/// Appends `s` unless it is empty or already there.
pub(crate) fn push_unique(out: &mut Vec<String>, s: &str) {
    if !s.is_empty() && !out.iter().any(|x| x == s) {
        out.push(s.to_owned());
    }
}

/// The one distinct value of `values`, if there is exactly one.
pub(crate) fn single(values: &[String]) -> Option<String> {
    match values {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// The last path segment of a URL or resource path (`.../networks/default` → `default`).
pub(crate) fn last_segment(path: &str) -> Option<&str> {
    path.trim_end_matches('/').rsplit('/').next().filter(|s| !s.is_empty())
}

/// A time: RFC 3339 (`2026-01-01T00:00:00.123Z`), or BigQuery's
/// `2026-01-01 00:00:00.123 UTC`.
pub(crate) fn time_at(at: &At<'_>) -> Result<Micros> {
    let s = at.as_str()?.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(time::to_micros(t.with_timezone(&Utc)));
    }
    if let Some(naive) = s.strip_suffix(" UTC")
        && let Ok(t) = NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f")
    {
        return Ok(time::to_micros(t.and_utc()));
    }
    Err(Refusal::parse(format!("{}: '{s}' is not an RFC 3339 time", at.path)))
}

/// Tags from a map (`{"Name": "web-1"}`) or a list of pairs
/// (`[{"key": "Name", "value": "web-1"}]`, any capitalisation of `key`/`value`).
/// Tags already in `out` are kept (the first source wins).
pub(crate) fn tags_into(at: &At<'_>, out: &mut HashMap<String, String>) -> Result<()> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match at.value {
        Value::Object(map) => {
            for (k, v) in map.iter().filter(|(_, v)| !v.is_null()) {
                out.entry(k.clone()).or_insert_with(|| text(v));
            }
        }
        Value::Array(_) => {
            for pair in at.elements()? {
                let key = pair.req_str(&["key", "Key"])?;
                let value = pair.get(&["value", "Value"]).map(|v| text(v.value)).unwrap_or_default();
                out.entry(key.to_owned()).or_insert(value);
            }
        }
        Value::Null => {}
        other => {
            return Err(Refusal::parse(format!("{}: expected tags (an object or a list), found {other}", at.path)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_addresses_and_tags() {
        let t = |s: &str| time_at(&At::root(&Value::String(s.into()), "t"));
        assert_eq!(t("2026-01-01T00:00:00Z").unwrap(), 1_767_225_600 * time::SECOND);
        assert_eq!(t("2026-01-01T01:00:00+01:00").unwrap(), 1_767_225_600 * time::SECOND);
        assert_eq!(t("2026-01-01 00:00:00 UTC").unwrap(), 1_767_225_600 * time::SECOND);
        assert_eq!(t("2026-01-01 00:00:00.5 UTC").unwrap(), 1_767_225_600 * time::SECOND + 500_000);
        assert_eq!(t("2026-01-01").unwrap_err().reason, "t: '2026-01-01' is not an RFC 3339 time");

        let v = serde_json::json!({"a": {"ips": ["10.0.0.1", " 10.0.0.1 ", "", "2001:DB8::1"]}});
        let mut out = Vec::new();
        for ip in At::root(&v, "").dig(&[&["a"]]).unwrap().items(&["ips"]).unwrap() {
            ip.ip_value_into(&mut out).unwrap();
        }
        assert_eq!(out, vec!["10.0.0.1", "2001:db8::1"]);
        let bad = serde_json::json!({"ip": 7});
        assert_eq!(
            At::root(&bad, "x").ip_into(&["ip"], &mut out).unwrap_err().reason,
            "x.ip: expected a string, found 7"
        );
        assert!(is_private("10.1.2.3") && is_private("100.64.0.1") && is_private("fd00::1"));
        assert!(!is_private("34.200.1.1") && !is_private("2600:1f18::5"));

        let mut tags = HashMap::new();
        let list = serde_json::json!([{"Key": "a", "Value": "1"}, {"key": "b", "value": null}]);
        tags_into(&At::root(&list, "tags"), &mut tags).unwrap();
        let map = serde_json::json!({"a": "2", "c": 3});
        tags_into(&At::root(&map, "tags"), &mut tags).unwrap();
        assert_eq!((tags["a"].as_str(), tags["b"].as_str(), tags["c"].as_str()), ("1", "", "3"));
        assert_eq!(last_segment("https://x/global/networks/default/"), Some("default"));
    }
}
