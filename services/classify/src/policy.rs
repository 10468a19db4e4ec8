//! Segmentation policy: named segments and the flows allowed between them.
//!
//! With a policy loaded, every ACCEPTed flow touching the CDE that no allow
//! rule matches is a `segmentation_violation` (PCI DSS 1.3.1 / 1.3.2: all
//! other traffic is denied). The file is YAML:
//!
//! ```yaml
//! segments:
//!   cde:                         # a segment: a resource matching any selector is in it
//!     - tag: {pci-scope: cde}
//!   payments-api:
//!     - resource: [i-0abc, i-0def]
//!   monitoring:
//!     - tag: {role: monitoring}
//!     - cidr: [10.20.0.0/16]
//!     - vpc: [vpc-mon]
//!   internet:
//!     - external: true           # public addresses
//! allow:
//!   - name: web tier to the payments API
//!     from: web
//!     to: payments-api
//!     protocol: tcp              # tcp, udp, icmp, any, or an IANA number
//!     ports: [443]               # numbers or ranges "9100-9110"; empty or absent: any
//! ```
//!
//! A rule allows a flow when its source is in `from`, its destination in
//! `to`, and protocol and destination port match. Unknown segment names,
//! bad CIDRs, ports and protocols are refused when the file is loaded.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;

/// Why a policy file is refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {file}: {source}")]
    Unreadable {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("policy {file}: {source}")]
    Invalid {
        file: String,
        #[source]
        source: PolicyProblem,
    },
}

/// What is wrong with a policy's text.
#[derive(Debug, thiserror::Error)]
pub enum PolicyProblem {
    /// Not YAML of the policy's shape (unknown keys included).
    #[error(transparent)]
    Yaml(#[from] serde_yaml_ng::Error),
    /// A value that does not fit where it is (`at`: its path, e.g. `allow[2]`).
    #[error("{at}: {problem}")]
    Value { at: String, problem: String },
}

fn problem(at: &str, problem: impl Into<String>) -> PolicyProblem {
    PolicyProblem::Value { at: at.to_owned(), problem: problem.into() }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    segments: BTreeMap<String, Vec<SelectorFile>>,
    #[serde(default)]
    allow: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectorFile {
    #[serde(default)]
    tag: Option<BTreeMap<String, String>>,
    #[serde(default)]
    resource: Option<Vec<String>>,
    #[serde(default)]
    cidr: Option<Vec<String>>,
    #[serde(default)]
    vpc: Option<Vec<String>>,
    #[serde(default)]
    external: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    name: Option<String>,
    from: String,
    to: String,
    #[serde(default)]
    protocol: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    ports: Vec<serde_yaml_ng::Value>,
}

/// What a selector looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    /// Every listed tag has the listed value.
    Tags(Vec<(String, String)>),
    Resources(Vec<String>),
    Cidrs(Vec<IpNet>),
    Vpcs(Vec<String>),
    External,
}

/// A resource (or endpoint) as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub resource_id: &'a str,
    pub tags: &'a HashMap<String, String>,
    pub vpc_id: Option<&'a str>,
    pub addresses: &'a [IpAddr],
    pub external: bool,
}

impl Selector {
    fn matches(&self, s: &Subject<'_>) -> bool {
        match self {
            Self::Tags(kv) => kv.iter().all(|(k, v)| s.tags.get(k) == Some(v)),
            Self::Resources(ids) => ids.iter().any(|i| i == s.resource_id),
            Self::Cidrs(nets) => s.addresses.iter().any(|a| nets.iter().any(|n| n.contains(a))),
            Self::Vpcs(v) => s.vpc_id.is_some_and(|id| v.iter().any(|x| x == id)),
            Self::External => s.external,
        }
    }
}

/// A rule of the `allow` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    from: usize,
    to: usize,
    /// `None`: any protocol.
    protocol: Option<i32>,
    /// Inclusive port ranges; empty: any port.
    ports: Vec<(i32, i32)>,
}

/// A loaded policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    names: Vec<String>,
    segments: Vec<Vec<Selector>>,
    rules: Vec<Rule>,
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let file = || path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Unreadable { file: file(), source })?;
        Self::parse(&text).map_err(|source| PolicyError::Invalid { file: file(), source })
    }

    /// Parses policy YAML.
    pub fn parse(text: &str) -> Result<Self, PolicyProblem> {
        let file: File = serde_yaml_ng::from_str(text)?;
        let mut names = Vec::new();
        let mut segments = Vec::new();
        for (name, selectors) in file.segments {
            let mut parsed = Vec::new();
            for (i, s) in selectors.into_iter().enumerate() {
                let at = format!("segments.{name}[{i}]");
                let mut kinds = Vec::new();
                if let Some(t) = s.tag {
                    kinds.push(Selector::Tags(t.into_iter().collect()));
                }
                if let Some(r) = s.resource {
                    kinds.push(Selector::Resources(r));
                }
                if let Some(c) = s.cidr {
                    let nets = c
                        .iter()
                        .map(|n| {
                            n.parse::<IpNet>()
                                .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                                .map_err(|_| problem(&at, format!("'{n}' is not a CIDR")))
                        })
                        .collect::<Result<_, _>>()?;
                    kinds.push(Selector::Cidrs(nets));
                }
                if let Some(v) = s.vpc {
                    kinds.push(Selector::Vpcs(v));
                }
                if s.external == Some(true) {
                    kinds.push(Selector::External);
                }
                match kinds.len() {
                    1 => parsed.extend(kinds),
                    0 => return Err(problem(&at, "a selector needs one of tag, resource, cidr, vpc, external: true")),
                    _ => {
                        return Err(problem(&at, "one selector per list item (tag, resource, cidr, vpc or external)"));
                    }
                }
            }
            names.push(name);
            segments.push(parsed);
        }
        let segment = |n: &str, at: &str| {
            names
                .iter()
                .position(|x| x == n)
                .ok_or_else(|| problem(at, format!("unknown segment '{n}' (segments: {})", names.join(", "))))
        };
        let mut rules = Vec::new();
        for (i, r) in file.allow.into_iter().enumerate() {
            let at = format!("allow[{i}]");
            rules.push(Rule {
                name: r.name.unwrap_or_else(|| format!("{} to {}", r.from, r.to)),
                from: segment(&r.from, &at)?,
                to: segment(&r.to, &at)?,
                protocol: protocol(r.protocol.as_ref(), &at)?,
                ports: r.ports.iter().map(|p| port_range(p, &at)).collect::<Result<_, _>>()?,
            });
        }
        Ok(Self { names, segments, rules })
    }

    /// The segments `s` is in.
    pub fn segments_of(&self, s: &Subject<'_>) -> Vec<&str> {
        self.names
            .iter()
            .zip(&self.segments)
            .filter(|(_, sel)| sel.iter().any(|x| x.matches(s)))
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// The first rule allowing a flow, if any.
    pub fn allows(&self, src: &Subject<'_>, dst: &Subject<'_>, protocol: i32, port: i32) -> Option<&Rule> {
        let within = |seg: usize, s: &Subject<'_>| self.segments[seg].iter().any(|x| x.matches(s));
        self.rules.iter().find(|r| {
            r.protocol.is_none_or(|p| p == protocol)
                && (r.ports.is_empty() || r.ports.iter().any(|(a, b)| (*a..=*b).contains(&port)))
                && within(r.from, src)
                && within(r.to, dst)
        })
    }
}

impl Policy {
    /// The allow rules from `src`'s segments to `dst`'s, described
    /// (`web tier queries the payments database: TCP/5432`).
    pub fn allowed_between(&self, src: &Subject<'_>, dst: &Subject<'_>) -> Vec<String> {
        let within = |seg: usize, s: &Subject<'_>| self.segments[seg].iter().any(|x| x.matches(s));
        self.rules
            .iter()
            .filter(|r| within(r.from, src) && within(r.to, dst))
            .map(|r| {
                let protocol = r.protocol.map_or_else(|| "any protocol".to_owned(), psg_domain::protocol_name);
                let ports: Vec<String> =
                    r.ports.iter().map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
                if ports.is_empty() {
                    format!("{}: {protocol}", r.name)
                } else {
                    format!("{}: {protocol}/{}", r.name, ports.join(","))
                }
            })
            .collect()
    }

    /// A service of `protocol` (`-1`: every protocol) with a port in
    /// `from..=to` that no rule allows from `src` to `dst`, if any: what a
    /// firewall rule of that range lets through against the policy.
    pub fn first_forbidden(
        &self,
        src: &Subject<'_>,
        dst: &Subject<'_>,
        protocol: i32,
        from: i32,
        to: i32,
    ) -> Option<(i32, i32)> {
        // Where an answer can change: the range's start and the edges of
        // the rules' port ranges inside it; every protocol a rule names, and
        // one none does.
        // TCP, UDP and ICMP first: the likeliest example.
        let mut protocols: Vec<i32> = vec![protocol];
        if protocol == -1 {
            protocols = vec![6, 17, 1];
            for p in self.rules.iter().filter_map(|r| r.protocol) {
                if !protocols.contains(&p) {
                    protocols.push(p);
                }
            }
            protocols.extend((0..=255).find(|p| !protocols.contains(p)));
        }
        let mut ports = vec![from];
        for (a, b) in self.rules.iter().flat_map(|r| &r.ports) {
            ports.extend([*a, b.saturating_add(1)].into_iter().filter(|p| (from..=to).contains(p)));
        }
        ports.sort_unstable();
        ports.dedup();
        protocols.into_iter().find_map(|p| {
            let ports: &[i32] = if matches!(p, 6 | 17 | 132) { &ports } else { &[0] };
            ports.iter().find(|port| self.allows(src, dst, p, **port).is_none()).map(|port| (p, *port))
        })
    }
}

fn protocol(v: Option<&serde_yaml_ng::Value>, at: &str) -> Result<Option<i32>, PolicyProblem> {
    let Some(v) = v else { return Ok(None) };
    if let Some(n) = v.as_u64() {
        return i32::try_from(n)
            .ok()
            .filter(|n| *n <= 255)
            .map(Some)
            .ok_or_else(|| problem(at, format!("protocol {n} is not 0-255")));
    }
    match v.as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("any") => Ok(None),
        Some("tcp") => Ok(Some(6)),
        Some("udp") => Ok(Some(17)),
        Some("icmp") => Ok(Some(1)),
        Some("icmpv6") => Ok(Some(58)),
        _ => Err(problem(at, "protocol must be tcp, udp, icmp, icmpv6, any or a number")),
    }
}

fn port_range(v: &serde_yaml_ng::Value, at: &str) -> Result<(i32, i32), PolicyProblem> {
    let bad = || problem(at, "ports are numbers 0-65535 or ranges like \"9100-9110\"");
    let num = |s: &str| s.trim().parse::<u16>().map(i32::from).map_err(|_| bad());
    if let Some(n) = v.as_u64() {
        let p = u16::try_from(n).map_err(|_| bad())?;
        return Ok((i32::from(p), i32::from(p)));
    }
    let s = v.as_str().ok_or_else(bad)?;
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(bad());
            }
            Ok((a, b))
        }
        None => num(s).map(|p| (p, p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../deploy/policy.example.yaml");

    fn subject<'a>(id: &'a str, tags: &'a HashMap<String, String>, addrs: &'a [IpAddr], external: bool) -> Subject<'a> {
        Subject { resource_id: id, tags, vpc_id: Some("vpc-1"), addresses: addrs, external }
    }

    #[test]
    fn the_shipped_example_loads_and_allows_what_it_says() {
        let p = Policy::parse(EXAMPLE).unwrap();
        let cde: HashMap<String, String> = [("pci-scope".to_owned(), "cde".to_owned())].into();
        let web: HashMap<String, String> = [("tier".to_owned(), "web".to_owned())].into();
        let none = HashMap::new();
        let db_ip = ["10.0.2.10".parse().unwrap()];
        let web_ip = ["10.0.1.20".parse().unwrap()];
        let (db, w) = (subject("db-payments", &cde, &db_ip, false), subject("i-web", &web, &web_ip, false));
        assert!(p.allows(&w, &db, 6, 5432).is_some(), "web → cde on 5432 is allowed");
        assert!(p.allows(&w, &db, 6, 22).is_none(), "ssh is not");
        assert!(p.allows(&w, &db, 17, 5432).is_none(), "nor udp");
        let other = subject("i-other", &none, &web_ip, false);
        assert!(p.allows(&other, &db, 6, 5432).is_none(), "an untagged host is in no allowed segment");
        assert_eq!(p.segments_of(&db), vec!["cde"]);
    }

    /// Issue 17: what the policy allows between two systems, and the first
    /// service of a firewall rule's range it does not.
    #[test]
    fn allowed_between_and_the_first_forbidden_service() {
        let p = Policy::parse(EXAMPLE).unwrap();
        let cde: HashMap<String, String> = [("pci-scope".to_owned(), "cde".to_owned())].into();
        let web: HashMap<String, String> = [("tier".to_owned(), "web".to_owned())].into();
        let db_ip = ["10.0.2.10".parse().unwrap()];
        let web_ip = ["10.0.1.20".parse().unwrap()];
        let (db, w) = (subject("db-payments", &cde, &db_ip, false), subject("i-web", &web, &web_ip, false));
        assert_eq!(p.allowed_between(&w, &db), vec!["web tier queries the payments database: TCP/5432"]);
        assert!(p.allowed_between(&db, &w).is_empty());
        assert_eq!(p.first_forbidden(&w, &db, 6, 5432, 5432), None);
        assert_eq!(p.first_forbidden(&w, &db, 6, 5000, 6000), Some((6, 5000)));
        assert_eq!(p.first_forbidden(&w, &db, 6, 5432, 5433), Some((6, 5433)));
        assert_eq!(p.first_forbidden(&w, &db, -1, 0, 65_535), Some((6, 0)), "TCP first of every protocol");
        assert_eq!(p.first_forbidden(&db, &db, -1, 0, 65_535), None, "CDE systems may talk to each other");
    }

    #[test]
    fn mistakes_are_named() {
        let e = Policy::parse("segments:\n  a:\n    - tag: {x: y}\nallow:\n  - {from: a, to: b}\n").unwrap_err();
        assert!(e.to_string().contains("unknown segment 'b'"), "{e}");
        let e = Policy::parse("segments:\n  a:\n    - cidr: [10.0.0.0/33]\n").unwrap_err();
        assert!(e.to_string().contains("is not a CIDR"), "{e}");
        let e = Policy::parse("segments:\n  a:\n    - tag: {x: y}\nallow:\n  - {from: a, to: a, ports: [\"9-1\"]}\n")
            .unwrap_err();
        assert!(e.to_string().contains("ranges"), "{e}");
        let e = Policy::parse("segmnts: {}\n").unwrap_err();
        assert!(e.to_string().contains("segmnts"), "{e}");
        let e = Policy::parse("segments:\n  a:\n    - {tag: {x: y}, vpc: [v]}\n").unwrap_err();
        assert!(e.to_string().contains("one selector per list item"), "{e}");
    }

    #[test]
    fn cidr_vpc_external_and_port_ranges() {
        let p = Policy::parse(
            "segments:\n  mon:\n    - cidr: [10.20.0.0/16]\n  net:\n    - external: true\n  v:\n    - vpc: [vpc-1]\nallow:\n  - {from: mon, to: v, protocol: tcp, ports: [\"9100-9110\"]}\n  - {from: v, to: net, protocol: any}\n",
        )
        .unwrap();
        let none = HashMap::new();
        let mon_ip = ["10.20.3.4".parse().unwrap()];
        let mon = subject("m", &none, &mon_ip, false);
        let target = subject("t", &none, &[], false);
        assert!(p.allows(&mon, &target, 6, 9105).is_some());
        assert!(p.allows(&mon, &target, 6, 9111).is_none());
        let internet = Subject { resource_id: "ip:8.8.8.8", tags: &none, vpc_id: None, addresses: &[], external: true };
        assert!(p.allows(&target, &internet, 17, 53).is_some());
    }
}
