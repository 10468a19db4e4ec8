//! Field values shared by the JSON flow-log parsers ([`crate::azure`],
//! [`crate::gcp`]): strings borrowed from the input, integers that come as
//! JSON numbers or strings, and the checks on addresses, ports, protocols,
//! counters and times, with errors that name the field and the value.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use psg_domain::time::{Micros, SECOND};
use serde::de::{Deserialize, Deserializer, Visitor};

/// Why one field (or one tuple, one entry) is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FieldError {
    #[error("field '{field}': '{value}' {problem}")]
    Value { field: &'static str, value: String, problem: &'static str },
    #[error("field '{0}' is missing")]
    Missing(&'static str),
    #[error("tuple has {found} fields, {expected}")]
    FieldCount { found: usize, expected: &'static str },
    #[error("end time is before start time")]
    EndBeforeStart,
}

/// The error for `value` of `field` (the value is cut to 64 characters).
pub(crate) fn bad(field: &'static str, value: &str, problem: &'static str) -> FieldError {
    FieldError::Value { field, value: value.chars().take(64).collect(), problem }
}

/// A JSON string: borrowed from the input, owned only when it has escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl Str<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_str(V).map(Str)
    }
}

/// The text of an optional string field, `None` when absent or empty.
pub(crate) fn nonempty<'s>(v: &'s Option<Str<'_>>) -> Option<&'s str> {
    v.as_ref().map(Str::as_str).filter(|s| !s.is_empty())
}

/// A serde_json error for a human: syntax errors say the JSON is invalid.
pub(crate) fn json_error(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => format!("invalid JSON: {e}"),
        serde_json::error::Category::Data | serde_json::error::Category::Io => e.to_string(),
    }
}

/// A JSON number or a string holding one (protobuf's JSON mapping writes
/// int64 values as strings; producers differ).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Num<'a> {
    Int(i64),
    UInt(u64),
    Float(f64),
    Text(Str<'a>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Num<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string holding one")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Num::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Num::UInt(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Num::Float(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Num::Text(Str(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Num::Text(Str(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Num::Text(Str(Cow::Owned(v))))
            }
        }
        d.deserialize_any(V)
    }
}

/// A value that may hold an integer: a tuple field, or a JSON [`Num`].
pub(crate) trait IntValue {
    /// The integer, if the value is one that fits an `i64`.
    fn int(&self) -> Option<i64>;
    /// The value as written, for error messages.
    fn text(&self) -> Cow<'_, str>;
}

impl IntValue for str {
    fn int(&self) -> Option<i64> {
        self.parse().ok()
    }
    fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl IntValue for Num<'_> {
    fn int(&self) -> Option<i64> {
        match self {
            Self::Int(n) => Some(*n),
            Self::UInt(n) => i64::try_from(*n).ok(),
            Self::Float(_) => None,
            Self::Text(s) => s.as_str().parse().ok(),
        }
    }
    fn text(&self) -> Cow<'_, str> {
        match self {
            Self::Int(n) => Cow::Owned(n.to_string()),
            Self::UInt(n) => Cow::Owned(n.to_string()),
            Self::Float(n) => Cow::Owned(n.to_string()),
            Self::Text(s) => Cow::Borrowed(s.as_str()),
        }
    }
}

fn ranged<V: IntValue + ?Sized>(
    field: &'static str,
    v: &V,
    max: i64,
    problem: &'static str,
) -> Result<i64, FieldError> {
    match v.int() {
        Some(n) if (0..=max).contains(&n) => Ok(n),
        _ => Err(bad(field, &v.text(), problem)),
    }
}

/// A port, 0–65535.
pub(crate) fn port<V: IntValue + ?Sized>(field: &'static str, v: &V) -> Result<i32, FieldError> {
    ranged(field, v, 65_535, "is not a port (0-65535)").map(|n| n as i32)
}

/// An IANA protocol number, 0–255.
pub(crate) fn protocol<V: IntValue + ?Sized>(field: &'static str, v: &V) -> Result<i32, FieldError> {
    ranged(field, v, 255, "is not an IANA protocol number (0-255)").map(|n| n as i32)
}

/// A packet or byte count (non-negative).
pub(crate) fn count<V: IntValue + ?Sized>(field: &'static str, v: &V) -> Result<i64, FieldError> {
    ranged(field, v, i64::MAX, "is not a non-negative count")
}

/// A count that may be empty (`None`).
pub(crate) fn opt_count(field: &'static str, v: &str) -> Result<Option<i64>, FieldError> {
    if v.is_empty() { Ok(None) } else { count(field, v).map(Some) }
}

/// An IP address, as the canonical text of [`IpAddr`] (IPv6 in its
/// compressed lowercase form).
pub(crate) fn addr(field: &'static str, v: &str) -> Result<String, FieldError> {
    match v.parse::<IpAddr>() {
        // The IPv4 parser accepts only the canonical dotted-quad form.
        Ok(IpAddr::V4(_)) => Ok(v.to_owned()),
        Ok(ip @ IpAddr::V6(_)) => Ok(ip.to_string()),
        Err(_) => Err(bad(field, v, "is not an IP address")),
    }
}

/// Unix seconds, or milliseconds (13 digits), as microseconds.
pub(crate) fn unix_time(field: &'static str, v: &str) -> Result<Micros, FieldError> {
    let n: i64 = v.parse().map_err(|_| bad(field, v, "is not a Unix time"))?;
    if n < 0 {
        return Err(bad(field, v, "is before 1970"));
    }
    // 10^11 seconds is the year 5138: anything larger is milliseconds.
    let us = if n >= 100_000_000_000 { n.checked_mul(1_000) } else { n.checked_mul(SECOND) };
    us.ok_or_else(|| bad(field, v, "is out of range"))
}

/// An RFC 3339 time (any fraction of a second; nanoseconds are truncated
/// to microseconds).
pub(crate) fn rfc3339(field: &'static str, v: &str) -> Result<Micros, FieldError> {
    let t = chrono::DateTime::parse_from_rfc3339(v).map_err(|_| bad(field, v, "is not an RFC 3339 time"))?;
    let us = t.timestamp_micros();
    if us < 0 {
        return Err(bad(field, v, "is before 1970"));
    }
    Ok(us)
}

/// Splits a comma-separated tuple into at most `N` fields without
/// allocating; the count is the number of fields found (may exceed `N`).
pub(crate) fn split_tuple<const N: usize>(t: &str) -> ([&str; N], usize) {
    let mut out = [""; N];
    let mut found = 0;
    for (i, part) in t.split(',').enumerate() {
        if let Some(slot) = out.get_mut(i) {
            *slot = part;
        }
        found = i + 1;
    }
    (out, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrow_unless_escaped() {
        let s: Str<'_> = serde_json::from_str(r#""plain""#).unwrap();
        assert!(matches!(s.0, Cow::Borrowed("plain")));
        let s: Str<'_> = serde_json::from_str(r#""a\/b""#).unwrap();
        assert_eq!(s.as_str(), "a/b");
    }

    #[test]
    fn numbers_come_as_numbers_or_strings() {
        let v: Vec<Num<'_>> = serde_json::from_str(r#"[7, "7", -1, 1.5, "x", 18446744073709551615]"#).unwrap();
        assert_eq!(v.iter().map(IntValue::int).collect::<Vec<_>>(), [Some(7), Some(7), Some(-1), None, None, None]);
        assert_eq!(count("bytes", &v[2]).unwrap_err().to_string(), "field 'bytes': '-1' is not a non-negative count");
        assert_eq!(port("port", &v[3]).unwrap_err().to_string(), "field 'port': '1.5' is not a port (0-65535)");
    }

    #[test]
    fn values_are_checked() {
        assert_eq!(addr("a", "10.0.0.1").unwrap(), "10.0.0.1");
        assert_eq!(addr("a", "2001:DB8:0:0::1").unwrap(), "2001:db8::1");
        assert_eq!(addr("a", "010.0.0.1").unwrap_err().to_string(), "field 'a': '010.0.0.1' is not an IP address");
        assert_eq!(port("p", "65535").unwrap(), 65_535);
        assert!(port("p", "65536").is_err());
        assert!(protocol("p", "256").is_err());
        assert_eq!(opt_count("c", "").unwrap(), None);
        assert_eq!(unix_time("t", "1542110437").unwrap(), 1_542_110_437 * SECOND);
        assert_eq!(unix_time("t", "1663146003606").unwrap(), 1_663_146_003_606_000);
        assert_eq!(unix_time("t", "-1").unwrap_err().to_string(), "field 't': '-1' is before 1970");
        assert_eq!(rfc3339("t", "2019-06-14T03:45:37.301953198Z").unwrap(), 1_560_483_937_301_953);
        assert_eq!(
            rfc3339("t", "1969-12-31T23:59:59Z").unwrap_err().to_string(),
            "field 't': '1969-12-31T23:59:59Z' is before 1970"
        );
        assert_eq!(split_tuple::<3>("a,,c,d"), (["a", "", "c"], 4));
    }
}
