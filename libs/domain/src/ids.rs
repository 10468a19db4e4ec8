//! Deterministic ids: UUIDv5 of natural keys, or UUIDv8 of a time and a
//! natural key ([`time_ordered_id`]) for ids that key large, growing indexes.
//!
//! Every output of every service carries an id computed from what it is
//! about, never a random one, so that a batch processed twice (at-least-once
//! delivery) overwrites its earlier copy instead of adding a duplicate.

use uuid::Uuid;

/// Root namespace of every PCI Scope Guard id.
const ROOT: Uuid = Uuid::from_u128(0x6b1f_3c2e_9a4d_4f0b_8e57_2d1c_a9b3_e640);

/// Separator between the parts of a natural key (ASCII unit separator, which
/// cannot appear in any of our identifiers).
const SEP: u8 = 0x1f;

/// `kind` and `parts` as one byte string, the parts separated by [`SEP`].
fn natural_key(kind: &str, parts: &[&str]) -> Vec<u8> {
    let mut key = Vec::with_capacity(kind.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    key.extend_from_slice(kind.as_bytes());
    for part in parts {
        key.push(SEP);
        key.extend_from_slice(part.as_bytes());
    }
    key
}

/// The id of `kind` identified by `parts`, e.g. `stable_id("edge", &[..])`.
pub fn stable_id(kind: &str, parts: &[&str]) -> Uuid {
    Uuid::new_v5(&ROOT, &natural_key(kind, parts))
}

/// As [`stable_id`], for things made in time order whose ids are keys of a
/// large, growing index: a UUIDv8 (RFC 9562, section 5.8) whose first 48
/// bits are `at`'s Unix time in milliseconds, as UUIDv7's are, and whose
/// other 74 bits are from SHA-256 of the namespace and the natural key. The
/// same `at` and key give the same id; ids made in time order sort in time
/// order, so a b-tree over them grows at its right edge instead of taking
/// each new key on a random page (a random page per row is a page read and,
/// after each checkpoint, a full page image in the WAL, once the index no
/// longer fits in memory). Times before 1970 count as 1970.
pub fn time_ordered_id(at_micros: i64, kind: &str, parts: &[&str]) -> Uuid {
    use sha2::{Digest, Sha256};
    const MAX_MILLIS: u64 = (1 << 48) - 1;
    let millis = u64::try_from(at_micros.div_euclid(1_000)).unwrap_or(0).min(MAX_MILLIS);
    let digest = Sha256::new().chain_update(ROOT.as_bytes()).chain_update(natural_key(kind, parts)).finalize();
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&digest[..10]);
    // sets the version (8) and variant bits over the digest's
    Uuid::new_v8(bytes)
}

/// The database id (`resources.id`) of the resource whose natural id is
/// `resource_id` (an instance id, an ARN, `ip:10.0.0.9`, ...).
pub fn resource_uuid(resource_id: &str) -> Uuid {
    stable_id("resource", &[resource_id])
}

/// The natural id of an address that maps to no inventory resource.
pub fn address_resource_id(address: &str) -> String {
    format!("ip:{address}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(resource_uuid("i-1"), resource_uuid("i-1"));
        assert_ne!(resource_uuid("i-1"), resource_uuid("i-2"));
        // parts are separated, so ("ab","c") and ("a","bc") differ
        assert_ne!(stable_id("k", &["ab", "c"]), stable_id("k", &["a", "bc"]));
        assert_ne!(stable_id("a", &["x"]), stable_id("b", &["x"]));
    }

    #[test]
    fn time_ordered_ids_are_stable_distinct_and_sort_by_time() {
        let at = 1_767_226_200_123_456; // 2026-01-01T00:10:00.123456Z
        let id = time_ordered_id(at, "evidence", &["a", "b"]);
        assert_eq!(id, time_ordered_id(at, "evidence", &["a", "b"]));
        assert_eq!(id.get_version_num(), 8);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        // the first 48 bits are the milliseconds, as in UUIDv7
        assert_eq!(id.as_u128() >> 80, 1_767_226_200_123);
        assert_ne!(id, time_ordered_id(at, "evidence", &["ab", ""]));
        assert_ne!(id, time_ordered_id(at, "other", &["a", "b"]));
        // the same key at another time is another id
        assert_ne!(id, time_ordered_id(at + 1_000, "evidence", &["a", "b"]));
        // ids sort by their time whatever their keys
        let mut ids: Vec<(i64, Uuid)> = (0..200)
            .map(|i: i64| {
                let t = at + (i * 7_919 % 200) * 1_000;
                (t, time_ordered_id(t, "evidence", &[&i.to_string()]))
            })
            .collect();
        ids.sort_by_key(|(_, id)| *id);
        assert!(ids.windows(2).all(|w| w[0].0 < w[1].0));
        // before 1970 and beyond 48 bits of milliseconds: clamped, not wrapped
        assert_eq!(time_ordered_id(-5, "k", &[]).as_u128() >> 80, 0);
        assert_eq!(time_ordered_id(i64::MAX, "k", &[]).as_u128() >> 80, (1 << 48) - 1);
    }
}
