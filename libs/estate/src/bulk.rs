//! Flow logs at real size for benchmarks and tests: an inventory of `n`
//! EC2 instances and any number of AWS VPC flow-log (v2) lines between them,
//! written as a stream (never held in memory).
//!
//! Every line is its own connection (its source port is unique within its
//! 60-second window) with one to a thousand packets, ACCEPTed, reported at
//! the source interface only, a thousand lines per second of event time from
//! 2026-01-01T00:00:00Z: so the window edges of an analysis must hold as
//! many flows as there are lines. Each instance talks to eight others, each
//! pair on one service port (as estates do: a few services per system). One
//! instance in fifty is tagged `pci-scope=cde`, one in seven `out-of-scope`,
//! the rest untagged.

use std::io::{self, Write};

/// The AWS v2 default layout, as its header line.
pub const AWS_V2_HEADER: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600;

/// The address of instance `k` (up to 62,500 instances).
fn address(k: usize) -> String {
    format!("10.{}.{}.{}", 1 + k / 62_500, (k / 250) % 250, k % 250 + 1)
}

/// The inventory of `n` instances, one native JSON object per line.
pub fn inventory_jsonl(n: usize) -> String {
    let mut out = String::with_capacity(n * 300);
    for k in 0..n {
        let tags = if k % 50 == 0 {
            r#"{"pci-scope": "cde"}"#
        } else if k % 7 == 0 {
            r#"{"pci-scope": "out-of-scope"}"#
        } else {
            "{}"
        };
        out.push_str(&format!(
            r#"{{"provider": "aws", "resource_type": "ec2_instance", "resource_id": "i-{k:08x}", "resource_name": "host-{k}", "region": "us-east-1", "vpc_id": "vpc-{}", "subnet_id": "subnet-{}", "private_ips": ["{}"], "public_ips": [], "interface_ids": ["eni-{k:08x}"], "security_groups": [], "tags": {tags}, "observed_at": "2025-12-31T23:00:00Z", "deleted": false}}"#,
            k % 4,
            k % 16,
            address(k)
        ));
        out.push('\n');
    }
    out
}

/// Writes the header line and `lines` flow-log lines between `resources`
/// instances (seeded, deterministic).
pub fn write_aws_v2(w: &mut impl Write, lines: u64, resources: usize, seed: u64) -> io::Result<()> {
    let n = resources.max(2) as u64;
    let mut state = seed | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const PORTS: [u16; 6] = [443, 5432, 22, 80, 6379, 8080];
    writeln!(w, "{AWS_V2_HEADER}")?;
    for i in 0..lines {
        let r = next();
        let a = (r % n) as usize;
        let b = ((a as u64 + 1 + ((r >> 20) % 8) * 97) % n) as usize;
        let b = if b == a { (a + 1) % n as usize } else { b };
        let dport = PORTS[(a + b) % PORTS.len()];
        let sport = 1024 + i % 60_000;
        let packets = 1 + (r >> 8) % 1000;
        let end = T0 + i / 1000;
        writeln!(
            w,
            "2 123456789012 eni-{a:08x} {} {} {sport} {dport} 6 {packets} {} {} {end} ACCEPT OK",
            address(a),
            address(b),
            packets * 80,
            end.saturating_sub(30),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_deterministic_and_distinct_connections() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_aws_v2(&mut a, 2000, 100, 7).expect("write");
        write_aws_v2(&mut b, 2000, 100, 7).expect("write");
        assert_eq!(a, b);
        let text = String::from_utf8(a).expect("utf-8");
        assert_eq!(text.lines().count(), 2001);
        let mut seen = std::collections::HashSet::new();
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split(' ').collect();
            assert_ne!(f[3], f[4], "never a flow to itself");
            assert!(seen.insert((f[3], f[4], f[5], f[11])), "one connection per line: {l}");
        }
        assert_eq!(inventory_jsonl(10).lines().count(), 10);
    }
}
