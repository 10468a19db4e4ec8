//! Reachability by configuration at size (issue 17): 10,000 security
//! groups and 100,000 resources through the scope engine from scratch, then
//! single rule changes applied incrementally. Prints figures; asserts
//! nothing about time.
//!
//! `cargo bench --bench reachability` (REACH_RESOURCES, REACH_GROUPS,
//! REACH_CDE override the sizes).

use std::hint::black_box;
use std::time::{Duration, Instant};

use psg_classify::engine::{Engine, Settings};
use psg_domain::time::DAY;
use psg_domain::{CloudProvider, Resource, ResourceType, SourceRef};
use serde_json::json;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn resource(id: &str, t: ResourceType) -> Resource {
    Resource::new(
        id,
        CloudProvider::Aws,
        t,
        0,
        SourceRef { topic: Default::default(), partition: 0, offset: 0, line: 0 },
    )
}

/// Group `g`: CDE groups (the first `cde_groups`) admit TCP/5432 from five
/// application groups and SSH from one /24; the others admit HTTPS from
/// their neighbour group. Every group lets everything out.
fn group(g: usize, groups: usize, cde_groups: usize, port: u16) -> Resource {
    let id = format!("sg-{g:08x}");
    let ingress = if g < cde_groups {
        let mut rules: Vec<serde_json::Value> = (1..=5)
            .map(|k| {
                let peer = cde_groups + (g * 7 + k * 131) % (groups - cde_groups);
                json!({"ipProtocol": "tcp", "fromPort": port, "toPort": port,
                       "userIdGroupPairs": [{"groupId": format!("sg-{peer:08x}")}]})
            })
            .collect();
        rules.push(json!({"ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                          "ipv4Ranges": [{"cidrIp": format!("10.{}.{}.0/24", (g / 256) % 256, g % 256)}]}));
        rules
    } else {
        vec![json!({"ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
                    "userIdGroupPairs": [{"groupId": format!("sg-{:08x}", (g + 1) % groups)}]})]
    };
    let cfg = json!({"groupId": id, "vpcId": "vpc-1", "ipPermissions": ingress,
                     "ipPermissionsEgress": [{"ipProtocol": "-1", "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}]}]});
    Resource { metadata_json: Some(cfg.to_string()), ..resource(&id, ResourceType::SecurityGroup) }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("reachability: bench");
        return;
    }
    let (n, groups, cde) = (env("REACH_RESOURCES", 100_000), env("REACH_GROUPS", 10_000), env("REACH_CDE", 500));
    let cde_groups = (groups / 200).max(1);
    let mut engine = Engine::new(Settings {
        scope_tag_key: "pci-scope".into(),
        data_tag_key: "pci-data".into(),
        lookback: 90 * DAY,
        policy: None,
        coverage_grace: 0,
    });
    let started = Instant::now();
    for g in 0..groups {
        engine.upsert_resource(&group(g, groups, cde_groups, 5432));
    }
    for i in 0..n {
        let mut r = resource(&format!("i-{i:017x}"), ResourceType::Ec2Instance);
        let g = if i < cde { i % cde_groups } else { cde_groups + i % (groups - cde_groups) };
        r.security_groups = vec![format!("sg-{g:08x}")];
        r.private_ips = vec![format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)];
        r.vpc_id = Some("vpc-1".into());
        let scope = if i < cde {
            "cde"
        } else if i % 3 == 0 {
            "out-of-scope"
        } else {
            "connected-cde"
        };
        r.tags.insert("pci-scope".into(), scope.into());
        engine.upsert_resource(&r);
    }
    let loaded = started.elapsed();
    let (changes, alerts) = engine.recompute();
    let total = started.elapsed();
    let reachable = changes.iter().filter(|c| c.outcome.rule == psg_domain::ScopeRule::Reachable).count();
    println!(
        "from scratch: {groups} security groups, {n} resources ({cde} CDE in {cde_groups} groups): {:.2} s \
         (inventory {:.2} s, first recompute {:.2} s); {reachable} systems reachable, {} latent violations",
        total.as_secs_f64(),
        loaded.as_secs_f64(),
        (total - loaded).as_secs_f64(),
        alerts.iter().filter(|a| a.alert_type == psg_domain::AlertType::LatentViolation).count()
    );

    // One rule change at a time: a CDE group's port moves and back.
    let mut times: Vec<Duration> = Vec::new();
    for k in 0..40 {
        let g = k % cde_groups;
        let port = if k % 2 == 0 { 6432 } else { 5432 };
        let t = Instant::now();
        engine.upsert_resource(&group(g, groups, cde_groups, port));
        black_box(engine.recompute());
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "one rule change (upsert of a CDE security group + recompute): median {:.1} ms, p90 {:.1} ms, max {:.1} ms over {}",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() * 9 / 10].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        times.len()
    );
    // A new member of an admitted group.
    let mut joins: Vec<Duration> = Vec::new();
    for k in 0..40 {
        let mut r = resource(&format!("i-new-{k}"), ResourceType::Ec2Instance);
        r.security_groups = vec![format!("sg-{:08x}", cde_groups + (k * 131) % (groups - cde_groups))];
        r.private_ips = vec![format!("172.16.0.{k}")];
        let t = Instant::now();
        engine.upsert_resource(&r);
        black_box(engine.recompute());
        joins.push(t.elapsed());
    }
    joins.sort();
    println!(
        "one new system in a group: median {:.2} ms, max {:.2} ms",
        joins[joins.len() / 2].as_secs_f64() * 1e3,
        joins[joins.len() - 1].as_secs_f64() * 1e3
    );
}
