//! The estate's clock: a fixed hour of flows, inventory observed before it.

/// 2026-11-01T00:00:00Z: the first second of the flow window.
pub(crate) const WINDOW_START: u64 = 1_793_491_200;
/// The window is one hour; AWS aggregates flows over at most 10 minutes, so
/// the hour is six slots of 600 seconds.
pub(crate) const SLOT_SECS: u64 = 600;
pub(crate) const SLOTS: u32 = 6;
/// Inventory is observed in the hour before the window.
pub(crate) const INVENTORY_START: u64 = WINDOW_START - 3_600;

/// The first second of slot `slot`.
pub(crate) fn slot_start(slot: u32) -> u64 {
    WINDOW_START + u64::from(slot) * SLOT_SECS
}

/// RFC 3339 in UTC with `digits` fractional digits (0 for none) of `nanos`.
pub(crate) fn rfc3339(secs: u64, nanos: u32, digits: usize) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let base = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3_600, rem % 3_600 / 60, rem % 60);
    if digits == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", &frac[..digits.min(9)])
    }
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_formatted_in_utc() {
        assert_eq!(rfc3339(WINDOW_START, 0, 0), "2026-11-01T00:00:00Z");
        assert_eq!(rfc3339(INVENTORY_START + 61, 123_456_789, 3), "2026-10-31T23:01:01.123Z");
        assert_eq!(rfc3339(951_782_400, 0, 0), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(slot_start(5), 5, 9), "2026-11-01T00:50:00.000000005Z");
    }
}
