//! Field values shared by the JSON flow-log parsers ([`crate::azure`],
//! [`crate::gcp`]): strings borrowed from the input, integers that come as
//! JSON numbers or strings, and the checks on addresses, ports, protocols,
//! counters and times, with errors that name the field and the value.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use psg_domain::Text;
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
    #[error("field '{end_field}' ({}) is before field '{start_field}' ({})", show_time(*.end), show_time(*.start))]
    EndBeforeStart { start_field: &'static str, end_field: &'static str, start: Micros, end: Micros },
    #[error(transparent)]
    Time(#[from] TimeError),
}

/// The first flow time refused as too late: 2100-01-01T00:00:00Z. Later
/// ones are garbage (year 9999 is a favourite "never" value).
pub(crate) const END_FLOW_TIME: Micros = 4_102_444_800 * SECOND;
/// The earliest time read from Unix milliseconds: 2000-01-01T00:00:00Z. A
/// number of 12 digits or more is read as milliseconds (as seconds it would
/// be past the year 5138), but one that gives a time before 2000 is no flow
/// log's (AWS's began in 2015): it is more likely seconds of a far future,
/// such as 253402300799, the last second of 9999.
pub(crate) const MIN_MILLIS_TIME: Micros = 946_684_800 * SECOND;

/// The accepted range of flow times, for messages.
const RANGE: &str = "1970-01-01 to 2099-12-31";
const RANGE_MILLIS: &str = "2000-01-01 to 2099-12-31 for Unix milliseconds";

/// A flow time outside the accepted range: before 1970 (a negative epoch,
/// the year 0), from 2100 on (the year 9999), or a Unix-milliseconds value
/// before 2000 (seconds misread as milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field '{field}': '{value}' is {read}, outside the accepted range of flow times ({range})")]
pub struct TimeError {
    pub field: &'static str,
    pub value: String,
    /// What the value was read as (`1978-01-11T21:31:40.799Z in Unix milliseconds`, `in year 9999`).
    pub read: String,
    pub range: &'static str,
}

/// A time for a message: RFC 3339 when it is one chrono can show.
pub(crate) fn show_time(us: Micros) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| format!("{us} µs since 1970"))
}

/// `us` (from `value` of `field`, read as `unit`: `seconds`, `milliseconds`
/// or `""` for RFC 3339) if it is a plausible flow time.
pub(crate) fn plausible(field: &'static str, value: &str, us: Micros, unit: &str) -> Result<Micros, TimeError> {
    let (min, range) = if unit == "milliseconds" { (MIN_MILLIS_TIME, RANGE_MILLIS) } else { (0, RANGE) };
    if (min..END_FLOW_TIME).contains(&us) {
        return Ok(us);
    }
    let read = if unit.is_empty() {
        match chrono::DateTime::from_timestamp_micros(us) {
            Some(t) => format!("in year {}", chrono::Datelike::year(&t)),
            None => "out of range".to_owned(),
        }
    } else {
        format!("{} in Unix {unit}", show_time(us))
    };
    Err(TimeError { field, value: value.chars().take(64).collect(), read, range })
}

/// Unix seconds, or milliseconds from 10^11 on (10^11 seconds is the year
/// 5138), as a plausible flow time. `n` is `v` read as a number (`None`:
/// not one, or too large for a `u64`).
pub(crate) fn unix_digits(field: &'static str, v: &str, n: Option<u64>) -> Result<Micros, FieldError> {
    let out_of_range =
        |read: &str| TimeError { field, value: v.chars().take(64).collect(), read: read.to_owned(), range: RANGE };
    if v.strip_prefix('-').is_some_and(is_digits) {
        return Err(out_of_range("before 1970").into());
    }
    let Some(n) = n else {
        return Err(if is_digits(v) {
            out_of_range("too large for a time").into()
        } else {
            bad(field, v, "is not a Unix time")
        });
    };
    let (us, unit) = if n >= 100_000_000_000 {
        (n.checked_mul(1_000), "milliseconds")
    } else {
        (n.checked_mul(SECOND as u64), "seconds")
    };
    match us.and_then(|u| i64::try_from(u).ok()) {
        Some(us) => Ok(plausible(field, v, us, unit)?),
        None => Err(out_of_range("too large for a time").into()),
    }
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

/// A serde_json error for a human: syntax errors say the JSON is invalid;
/// nesting past serde_json's limit (128 levels) says so.
pub(crate) fn json_error(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Syntax if e.to_string().starts_with("recursion limit exceeded") => {
            format!("invalid JSON: nested more than 128 levels deep ({e})")
        }
        // What serde_json says of bytes that are not UTF-8 inside a string.
        serde_json::error::Category::Syntax if e.to_string().starts_with("invalid unicode code point") => {
            format!("invalid JSON: a string is not valid UTF-8 ({e})")
        }
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
        // A count of more than 2^63 - 1: not "not a count", too large.
        None if max == i64::MAX && is_digits(&v.text()) => {
            Err(bad(field, &v.text(), "is larger than the largest count (2^63-1)"))
        }
        _ => Err(bad(field, &v.text(), problem)),
    }
}

/// Whether `v` is a non-empty run of ASCII digits.
pub(crate) fn is_digits(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
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
pub(crate) fn addr(field: &'static str, v: &str) -> Result<Text, FieldError> {
    match v.parse::<IpAddr>() {
        // The IPv4 parser accepts only the canonical dotted-quad form.
        Ok(IpAddr::V4(_)) => Ok(Text::new(v)),
        Ok(ip @ IpAddr::V6(_)) => Ok(Text::from(ip.to_string())),
        Err(_) => Err(bad(field, v, "is not an IP address")),
    }
}

/// Unix seconds, or milliseconds (13 digits), as microseconds, within the
/// accepted range of flow times.
pub(crate) fn unix_time(field: &'static str, v: &str) -> Result<Micros, FieldError> {
    let n = if is_digits(v) { v.parse::<u64>().ok() } else { None };
    unix_digits(field, v, n)
}

/// An RFC 3339 time (any fraction of a second; nanoseconds are truncated
/// to microseconds), within the accepted range of flow times.
pub(crate) fn rfc3339(field: &'static str, v: &str) -> Result<Micros, FieldError> {
    let t = chrono::DateTime::parse_from_rfc3339(v).map_err(|_| bad(field, v, "is not an RFC 3339 time"))?;
    Ok(plausible(field, v, t.timestamp_micros(), "")?)
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
        assert_eq!(
            unix_time("t", "-1").unwrap_err().to_string(),
            "field 't': '-1' is before 1970, outside the accepted range of flow times (1970-01-01 to 2099-12-31)"
        );
        assert_eq!(rfc3339("t", "2019-06-14T03:45:37.301953198Z").unwrap(), 1_560_483_937_301_953);
        assert_eq!(
            rfc3339("t", "1969-12-31T23:59:59Z").unwrap_err().to_string(),
            "field 't': '1969-12-31T23:59:59Z' is in year 1969, outside the accepted range of flow times (1970-01-01 to 2099-12-31)"
        );
        assert_eq!(split_tuple::<3>("a,,c,d"), (["a", "", "c"], 4));
    }

    #[test]
    fn absurd_times_and_counts_are_named() {
        let range = "outside the accepted range of flow times (1970-01-01 to 2099-12-31)";
        let millis = "outside the accepted range of flow times (2000-01-01 to 2099-12-31 for Unix milliseconds)";
        let e = |v: &str| unix_time("time", v).unwrap_err().to_string();
        // year 9999 in seconds has 12 digits: read as milliseconds, it is 1978
        assert_eq!(
            e("253402300799"),
            format!("field 'time': '253402300799' is 1978-01-11T21:31:40.799Z in Unix milliseconds, {millis}")
        );
        assert_eq!(
            e("253402300799000"),
            format!("field 'time': '253402300799000' is 9999-12-31T23:59:59Z in Unix milliseconds, {millis}")
        );
        assert_eq!(
            e("4102444800"),
            format!("field 'time': '4102444800' is 2100-01-01T00:00:00Z in Unix seconds, {range}")
        );
        assert_eq!(
            e("99999999999999999999999"),
            format!("field 'time': '99999999999999999999999' is too large for a time, {range}")
        );
        assert_eq!(e("-62167219200"), format!("field 'time': '-62167219200' is before 1970, {range}"));
        assert_eq!(e("1.5"), "field 'time': '1.5' is not a Unix time");
        assert_eq!(unix_time("time", "0").unwrap(), 0);
        assert_eq!(unix_time("time", "4102444799").unwrap(), END_FLOW_TIME - SECOND);
        assert_eq!(unix_time("time", "946684800000").unwrap(), MIN_MILLIS_TIME);
        assert!(unix_time("time", "946684799999").is_err());
        assert_eq!(
            rfc3339("t", "9999-12-31T23:59:59Z").unwrap_err().to_string(),
            format!("field 't': '9999-12-31T23:59:59Z' is in year 9999, {range}")
        );
        assert_eq!(
            rfc3339("t", "0000-01-01T00:00:00Z").unwrap_err().to_string(),
            format!("field 't': '0000-01-01T00:00:00Z' is in year 0, {range}")
        );
        assert_eq!(
            count("bytes", "99999999999999999999").unwrap_err().to_string(),
            "field 'bytes': '99999999999999999999' is larger than the largest count (2^63-1)"
        );
        let big: Num<'_> = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(
            count("bytes", &big).unwrap_err().to_string(),
            "field 'bytes': '18446744073709551615' is larger than the largest count (2^63-1)"
        );
        assert_eq!(count("bytes", "-5").unwrap_err().to_string(), "field 'bytes': '-5' is not a non-negative count");
        assert_eq!(port("p", "-1").unwrap_err().to_string(), "field 'p': '-1' is not a port (0-65535)");
    }
}
