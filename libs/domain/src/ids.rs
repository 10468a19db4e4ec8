//! Deterministic ids: UUIDv5 of natural keys.
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

/// The id of `kind` identified by `parts`, e.g. `stable_id("edge", &[..])`.
pub fn stable_id(kind: &str, parts: &[&str]) -> Uuid {
    let mut key = Vec::with_capacity(kind.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    key.extend_from_slice(kind.as_bytes());
    for part in parts {
        key.push(SEP);
        key.extend_from_slice(part.as_bytes());
    }
    Uuid::new_v5(&ROOT, &key)
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
}
