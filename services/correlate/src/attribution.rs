//! Time-aware attribution: address → resource and interface → resource,
//! each mapping valid from the observation that claimed it until the
//! resource released it (a later observation without it, or deletion).
//!
//! When several resources claim an address at time `t` (a reassignment whose
//! release was not observed), the most recent claim wins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use psg_domain::rows::ResourceRow;
use psg_domain::time::Micros;
use psg_domain::{Endpoint, EndpointKind, Resource};

/// What attribution needs to know about a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    pub resource_id: String,
    pub vpc_id: Option<String>,
    /// The row to insert if the database does not have it yet.
    pub row: ResourceRow,
}

#[derive(Debug, Clone)]
struct Claim {
    from: Micros,
    to: Option<Micros>,
    resource: Arc<ResourceInfo>,
}

/// The resource (or unknown host, or external endpoint) at one end of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributed {
    pub resource_id: String,
    pub kind: EndpointKind,
    pub vpc_id: Option<String>,
}

impl Attributed {
    /// This end as an edge endpoint, with the address seen in the flow.
    pub fn endpoint(&self, address: &str) -> Endpoint {
        Endpoint {
            resource_id: self.resource_id.clone(),
            kind: self.kind,
            address: Some(address.to_owned()),
            vpc_id: self.vpc_id.clone(),
        }
    }
}

/// The attribution index.
#[derive(Debug, Default)]
pub struct Index {
    by_address: HashMap<IpAddr, Vec<Claim>>,
    by_interface: HashMap<String, Vec<Claim>>,
    /// Latest observation of each resource.
    current: HashMap<String, Latest>,
}

/// The latest observation of a resource: its time and what it claimed.
#[derive(Debug)]
struct Latest {
    at: Micros,
    addresses: Vec<IpAddr>,
    interfaces: Vec<String>,
    info: Arc<ResourceInfo>,
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of resources known.
    pub fn resources(&self) -> usize {
        self.current.len()
    }

    /// Number of addresses with at least one claim.
    pub fn addresses(&self) -> usize {
        self.by_address.len()
    }

    /// The latest known description of a resource.
    pub fn resource(&self, resource_id: &str) -> Option<&Arc<ResourceInfo>> {
        self.current.get(resource_id).map(|l| &l.info)
    }

    /// Applies an inventory observation. Observations older than the
    /// latest one of the same resource are ignored.
    pub fn apply(&mut self, r: &Resource) {
        let at = r.observed_at;
        if let Some(latest) = self.current.get(&r.resource_id)
            && latest.at > at
        {
            return;
        }
        let info = Arc::new(ResourceInfo {
            resource_id: r.resource_id.clone(),
            vpc_id: r.vpc_id.clone(),
            row: ResourceRow::from_message(r),
        });
        let (addresses, interfaces): (Vec<IpAddr>, Vec<String>) = if r.deleted {
            (Vec::new(), Vec::new())
        } else {
            (
                r.private_ips.iter().chain(&r.public_ips).filter_map(|a| a.parse().ok()).collect(),
                r.interface_ids.clone(),
            )
        };
        // Release what the previous observation claimed and this one does not.
        if let Some(old) = self.current.get(&r.resource_id) {
            for a in old.addresses.iter().filter(|a| !addresses.contains(a)) {
                release(self.by_address.get_mut(a), &r.resource_id, at);
            }
            for i in old.interfaces.iter().filter(|i| !interfaces.contains(i)) {
                release(self.by_interface.get_mut(i), &r.resource_id, at);
            }
        }
        for a in &addresses {
            claim(self.by_address.entry(*a).or_default(), &info, at);
        }
        for i in &interfaces {
            claim(self.by_interface.entry(i.clone()).or_default(), &info, at);
        }
        self.current.insert(r.resource_id.clone(), Latest { at, addresses, interfaces, info });
    }

    /// The resource holding `addr` at time `t`.
    pub fn by_address(&self, addr: &IpAddr, t: Micros) -> Option<&Arc<ResourceInfo>> {
        holder(self.by_address.get(addr)?, t)
    }

    /// The resource owning interface `id` at time `t`.
    pub fn by_interface(&self, id: &str, t: Micros) -> Option<&Arc<ResourceInfo>> {
        holder(self.by_interface.get(id)?, t)
    }

    /// Attributes one end of a flow seen at `t` with address `addr`.
    pub fn attribute(&self, addr: IpAddr, t: Micros) -> Attributed {
        match self.by_address(&addr, t) {
            Some(info) => Attributed {
                resource_id: info.resource_id.clone(),
                kind: EndpointKind::Resource,
                vpc_id: info.vpc_id.clone(),
            },
            None => Attributed {
                resource_id: psg_domain::ids::address_resource_id(&addr.to_string()),
                kind: if is_internal(&addr) { EndpointKind::UnknownHost } else { EndpointKind::External },
                vpc_id: None,
            },
        }
    }
}

fn claim(claims: &mut Vec<Claim>, info: &Arc<ResourceInfo>, at: Micros) {
    // Still claimed by this resource: keep the original start, refresh the info.
    if let Some(c) = claims.iter_mut().find(|c| c.resource.resource_id == info.resource_id && c.to.is_none()) {
        c.resource = Arc::clone(info);
        return;
    }
    claims.push(Claim { from: at, to: None, resource: Arc::clone(info) });
    claims.sort_by_key(|c| c.from);
}

fn release(claims: Option<&mut Vec<Claim>>, resource_id: &str, at: Micros) {
    if let Some(claims) = claims {
        for c in claims.iter_mut().filter(|c| c.resource.resource_id == resource_id && c.to.is_none()) {
            c.to = Some(at);
        }
    }
}

fn holder(claims: &[Claim], t: Micros) -> Option<&Arc<ResourceInfo>> {
    claims
        .iter()
        .rev() // latest claim first
        .find(|c| c.from <= t && c.to.is_none_or(|to| t < to))
        .map(|c| &c.resource)
}

/// Private, shared, link-local, loopback and unique-local addresses: an
/// address there that maps to no resource is an unknown host of ours, not
/// the internet.
pub fn is_internal(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private() || a.is_loopback() || a.is_link_local() || (o[0] == 100 && (o[1] & 0xC0) == 64)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            a.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use psg_domain::time::SECOND;
    use psg_domain::{CloudProvider, ResourceType, SourceRef};

    use super::*;

    fn res(id: &str, ips: &[&str], at: Micros, deleted: bool) -> Resource {
        Resource {
            id: psg_domain::ids::resource_uuid(id).to_string(),
            resource_id: id.into(),
            provider: CloudProvider::Aws,
            resource_type: ResourceType::Ec2Instance,
            resource_arn: None,
            resource_name: None,
            account_id: None,
            region: None,
            availability_zone: None,
            vpc_id: Some("vpc-1".into()),
            subnet_id: None,
            private_ips: ips.iter().map(|s| s.to_string()).collect(),
            public_ips: vec![],
            interface_ids: vec![format!("eni-{id}")],
            security_groups: vec![],
            tags: HashMap::new(),
            observed_at: at,
            deleted,
            metadata_json: None,
            source: SourceRef { topic: "resources".into(), partition: 0, offset: 0, line: 0 },
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_reused_address_belongs_to_its_holder_at_the_time() {
        let mut idx = Index::new();
        idx.apply(&res("a", &["10.0.0.5"], 100 * SECOND, false));
        idx.apply(&res("a", &["10.0.0.5"], 200 * SECOND, true)); // a deleted at 200
        idx.apply(&res("b", &["10.0.0.5"], 300 * SECOND, false)); // b gets it at 300
        let who = |t| idx.attribute(ip("10.0.0.5"), t * SECOND).resource_id;
        assert_eq!(who(50), "ip:10.0.0.5", "before anyone held it");
        assert_eq!(who(150), "a");
        assert_eq!(who(250), "ip:10.0.0.5", "released, not yet reassigned");
        assert_eq!(who(350), "b");
        assert_eq!(idx.by_interface("eni-a", 150 * SECOND).map(|r| r.resource_id.as_str()), Some("a"));
        assert!(idx.by_interface("eni-a", 250 * SECOND).is_none());
    }

    #[test]
    fn an_unobserved_release_is_overridden_by_the_newer_claim() {
        let mut idx = Index::new();
        idx.apply(&res("a", &["10.0.0.5"], 100 * SECOND, false));
        idx.apply(&res("b", &["10.0.0.5"], 300 * SECOND, false));
        assert_eq!(idx.attribute(ip("10.0.0.5"), 200 * SECOND).resource_id, "a");
        assert_eq!(idx.attribute(ip("10.0.0.5"), 400 * SECOND).resource_id, "b");
    }

    #[test]
    fn stale_observations_are_ignored() {
        let mut idx = Index::new();
        idx.apply(&res("a", &["10.0.0.6"], 300 * SECOND, false));
        idx.apply(&res("a", &["10.0.0.5"], 100 * SECOND, false));
        assert_eq!(idx.attribute(ip("10.0.0.6"), 400 * SECOND).resource_id, "a");
        assert_eq!(idx.attribute(ip("10.0.0.5"), 400 * SECOND).kind, EndpointKind::UnknownHost);
    }

    #[test]
    fn internal_and_external_addresses() {
        for a in ["10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::1", "fe80::1"] {
            assert!(is_internal(&ip(a)), "{a}");
        }
        for a in ["8.8.8.8", "52.95.128.179", "100.128.0.1", "2001:db8::1"] {
            assert!(!is_internal(&ip(a)), "{a}");
        }
        let idx = Index::new();
        assert_eq!(idx.attribute(ip("52.95.128.179"), 0).kind, EndpointKind::External);
        assert_eq!(idx.attribute(ip("fd00::7"), 0).resource_id, "ip:fd00::7");
    }
}
