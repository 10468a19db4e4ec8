//! The estate the load runs against and the flow-log lines it sends.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use psg_testkit::Rng;

pub(crate) struct Host {
    pub(crate) id: String,
    pub(crate) ip: String,
    pub(crate) eni: String,
}

pub(crate) struct Conn {
    pub(crate) client_ip: String,
    pub(crate) client_eni: Option<String>,
    pub(crate) server_ip: String,
    pub(crate) server_eni: String,
    pub(crate) port: u16,
    pub(crate) accept: bool,
}

pub(crate) struct Estate {
    pub(crate) inventory: Vec<String>,
    pub(crate) dbs: Vec<Host>,
    /// (weight in percent, connections)
    pub(crate) classes: Vec<(u64, Vec<Conn>)>,
    pub(crate) probes: Vec<Host>,
}

pub(crate) fn host(prefix: &str, net: u8, i: usize) -> Host {
    Host {
        id: format!("{prefix}-{i}"),
        ip: format!("10.{net}.{}.{}", i / 250, i % 250 + 1),
        eni: format!("eni-{prefix}-{i:05}"),
    }
}

pub(crate) fn resource_json(h: &Host, kind: &str, vpc: &str, tags: &str, observed_at: &str) -> String {
    format!(
        r#"{{"provider":"aws","resource_type":"{kind}","resource_id":"{id}","resource_name":"{id}","region":"us-east-1","vpc_id":"{vpc}","subnet_id":"subnet-{vpc}","private_ips":["{ip}"],"interface_ids":["{eni}"],"security_groups":["sg-{vpc}"],"tags":{{{tags}}},"observed_at":"{observed_at}","deleted":false}}"#,
        id = h.id,
        ip = h.ip,
        eni = h.eni
    )
}

pub(crate) fn estate(resources: usize, probes: usize) -> Estate {
    let observed_at =
        (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let n_db = (resources / 10).max(1);
    let n_web = (resources * 3 / 10).max(1);
    let n_other = resources.saturating_sub(n_db + n_web).max(1);
    let dbs: Vec<Host> = (0..n_db).map(|i| host("db", 0, i)).collect();
    let webs: Vec<Host> = (0..n_web).map(|i| host("web", 1, i)).collect();
    let others: Vec<Host> = (0..n_other).map(|i| host("sys", 2, i)).collect();
    let probes: Vec<Host> = (0..probes).map(|i| host("probe", 9, i)).collect();
    let mut inventory = Vec::new();
    for h in &dbs {
        inventory.push(resource_json(h, "rds_instance", "vpc-pay", r#""pci-scope":"cde""#, &observed_at));
    }
    for h in &webs {
        inventory.push(resource_json(h, "ec2_instance", "vpc-pay", r#""pci-scope":"connected-cde""#, &observed_at));
    }
    for (i, h) in others.iter().enumerate() {
        let tags = if i % 10 == 9 { "" } else { r#""pci-scope":"out-of-scope""# };
        inventory.push(resource_json(h, "ec2_instance", "vpc-corp", tags, &observed_at));
    }
    for h in &probes {
        inventory.push(resource_json(h, "ec2_instance", "vpc-corp", r#""pci-scope":"out-of-scope""#, &observed_at));
    }
    let conn = |c: &Host, s: &Host, port: u16, accept: bool| Conn {
        client_ip: c.ip.clone(),
        client_eni: Some(c.eni.clone()),
        server_ip: s.ip.clone(),
        server_eni: s.eni.clone(),
        port,
        accept,
    };
    // Every system talks to a few fixed peers: the edge set is bounded, as in
    // a real estate.
    let mut web_db = Vec::new();
    for (i, w) in webs.iter().enumerate() {
        web_db.push(conn(w, &dbs[i % n_db], 5432, true));
        web_db.push(conn(w, &dbs[(i * 7 + 3) % n_db], 5432, true));
    }
    let (mut sys_web, mut sys_sys, mut rejected) = (Vec::new(), Vec::new(), Vec::new());
    for (i, o) in others.iter().enumerate() {
        sys_web.push(conn(o, &webs[i % n_web], 443, true));
        sys_web.push(conn(o, &webs[(i * 13 + 5) % n_web], 443, true));
        sys_sys.push(conn(o, &others[(i + 1) % n_other], if i % 2 == 0 { 8080 } else { 22 }, true));
        rejected.push(conn(o, &dbs[i % n_db], 5432, false));
    }
    let mut internet = Vec::new();
    for c in 1..=254 {
        let w = &webs[c % webs.len().min(5)];
        internet.push(Conn {
            client_ip: format!("203.0.113.{c}"),
            client_eni: None,
            server_ip: w.ip.clone(),
            server_eni: w.eni.clone(),
            port: 443,
            accept: true,
        });
    }
    Estate {
        inventory,
        dbs,
        classes: vec![(30, web_db), (30, sys_web), (20, sys_sys), (12, internet), (8, rejected)],
        probes,
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One AWS VPC flow-log v2 line: a request or its response, reported by
/// either end's interface, ending up to 3 s ago.
pub(crate) fn flow_line(out: &mut String, rng: &mut Rng, c: &Conn, now: u64) {
    let eph = 32_768 + rng.below(28_000);
    let end = now - rng.below(4);
    let start = end - rng.below(60);
    let packets = 1 + rng.below(200);
    let bytes = packets * (60 + rng.below(1400));
    let response = c.accept && rng.below(2) == 0;
    let (src, dst, sport, dport) = if response {
        (&c.server_ip, &c.client_ip, u64::from(c.port), eph)
    } else {
        (&c.client_ip, &c.server_ip, eph, u64::from(c.port))
    };
    let eni = match &c.client_eni {
        Some(e) if rng.below(2) == 0 => e,
        _ => &c.server_eni,
    };
    let action = if c.accept { "ACCEPT" } else { "REJECT" };
    let _ =
        writeln!(out, "2 123456789012 {eni} {src} {dst} {sport} {dport} 6 {packets} {bytes} {start} {end} {action} OK");
}

pub(crate) fn flow_message(rng: &mut Rng, estate: &Estate, lines: usize) -> String {
    let now = unix_now();
    let total: u64 = estate.classes.iter().map(|(w, _)| w).sum();
    let mut out = String::with_capacity(lines * 110);
    for _ in 0..lines {
        let mut pick = rng.below(total);
        let class = estate
            .classes
            .iter()
            .find(|(w, _)| {
                let hit = pick < *w;
                pick = pick.saturating_sub(*w);
                hit
            })
            .map_or(&estate.classes[0].1, |(_, c)| c);
        let c = &class[rng.below(class.len() as u64) as usize];
        flow_line(&mut out, rng, c, now);
    }
    out
}
