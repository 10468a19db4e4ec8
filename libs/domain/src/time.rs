//! Event time: microseconds since the Unix epoch, UTC.
//!
//! Messages carry `i64` microseconds (Avro `timestamp-micros`); these helpers
//! convert at the edges (PostgreSQL, JSON, reports).

use chrono::{DateTime, TimeZone, Utc};

/// Microseconds since the Unix epoch.
pub type Micros = i64;

/// Microseconds in one second.
pub const SECOND: Micros = 1_000_000;

/// Microseconds in one day.
pub const DAY: Micros = 86_400 * SECOND;

/// `DateTime<Utc>` → microseconds.
pub fn to_micros(t: DateTime<Utc>) -> Micros {
    t.timestamp_micros()
}

/// Microseconds → `DateTime<Utc>`; values outside chrono's range saturate.
pub fn from_micros(us: Micros) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or(if us < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// The current wall-clock time (only for `decided_at`/`generated_at`-style
/// bookkeeping, never for windows).
pub fn now_micros() -> Micros {
    to_micros(Utc::now())
}

/// RFC 3339 rendering with microsecond precision.
pub fn rfc3339(us: Micros) -> String {
    from_micros(us).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let us = 1_418_530_010 * SECOND + 123;
        assert_eq!(to_micros(from_micros(us)), us);
        assert_eq!(rfc3339(1_418_530_010 * SECOND), "2014-12-14T04:06:50.000000Z");
    }
}
