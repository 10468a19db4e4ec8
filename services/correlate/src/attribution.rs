//! Time-aware attribution: address → resource and interface → resource,
//! each mapping valid from the observation that claimed it until the
//! resource released it (a later observation without it, or deletion).
//!
//! - Addresses are reused: a flow at time `t` belongs to whoever held the
//!   address at `t`. When several resources claim an address at `t` (a
//!   reassignment whose release was not observed), the most recent claim wins.
//! - Ownership: a resource whose `interface_ids` name another resource (an
//!   EC2 instance naming its ENI `eni-…`, an Azure VM naming its NIC by ARM
//!   id) owns it: what the interface resource holds is attributed to the
//!   owner, where the scope tags live.
//! - An address nobody holds is an unknown host `ip:<address>` when it is
//!   internal (RFC 1918, RFC 6598, IPv6 ULA, link-local, loopback), and an
//!   external endpoint otherwise.
//!
//! Endpoints are interned: an [`EndpointId`] is a small number, so edges and
//! windows hash and copy integers, not strings.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use smallvec::SmallVec;

use psg_domain::rows::ResourceRow;
use psg_domain::time::{Micros, from_micros};
use psg_domain::{CloudProvider, Endpoint, EndpointKind, Resource, ResourceType};

/// An interned endpoint (resource, unknown host or external endpoint).
pub type EndpointId = u32;

/// What is known of an endpoint: no more than attribution and the
/// `resources` row of a referenced endpoint need (the full description is
/// ingest's to store).
#[derive(Debug, Clone)]
pub struct EndpointInfo {
    /// Natural id: the resource id, or `ip:<address>`.
    pub resource_id: Arc<str>,
    pub kind: EndpointKind,
    pub vpc_id: Option<Arc<str>>,
    pub provider: CloudProvider,
    pub resource_type: ResourceType,
    /// When it was (first) seen.
    pub seen_at: Micros,
    /// Deleted at its latest observation.
    pub deleted: bool,
}

impl EndpointInfo {
    /// A `resources` row that makes the endpoint exist in the database (a
    /// referenced inventory resource gets its full row from ingest, which
    /// overwrites this one).
    pub fn row(&self) -> ResourceRow {
        match self.kind {
            EndpointKind::Resource => {
                let mut r = Resource::new(
                    self.resource_id.to_string(),
                    self.provider,
                    self.resource_type,
                    self.seen_at,
                    psg_domain::SourceRef { topic: psg_domain::Text::default(), partition: 0, offset: 0, line: 0 },
                );
                r.vpc_id = self.vpc_id.as_deref().map(str::to_owned);
                r.deleted = self.deleted;
                ResourceRow::from_message(&r)
            }
            kind => {
                let address = self.resource_id.trim_start_matches("ip:");
                ResourceRow::for_address(
                    address,
                    kind == EndpointKind::UnknownHost,
                    self.provider,
                    from_micros(self.seen_at),
                )
            }
        }
    }

    /// This endpoint as an edge end, with the address seen in the flow.
    pub fn endpoint(&self, address: IpAddr) -> Endpoint {
        Endpoint {
            resource_id: self.resource_id.to_string(),
            kind: self.kind,
            address: Some(address.to_string()),
            vpc_id: self.vpc_id.as_deref().map(str::to_owned),
        }
    }
}

/// A claim of an address or interface by an endpoint, valid in `[from, to)`.
#[derive(Debug, Clone, Copy)]
struct Claim {
    from: Micros,
    to: Micros,
    who: EndpointId,
}

const OPEN: Micros = Micros::MAX;

/// The latest observation of a resource: its time and what it claimed.
#[derive(Debug)]
struct Latest {
    at: Micros,
    addresses: SmallVec<[IpAddr; 2]>,
    interfaces: SmallVec<[Arc<str>; 1]>,
}

/// A fast hash map with a random seed (foldhash): flow-log addresses come
/// from the network, so the hash must not be predictable.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// The claims on one address or interface; almost always exactly one, kept inline.
type Claims = SmallVec<[Claim; 1]>;

/// The attribution index.
#[derive(Debug, Default)]
pub struct Index {
    endpoints: Vec<EndpointInfo>,
    /// The owner of each endpoint (the resource that lists it among its interfaces).
    owners: Vec<Option<EndpointId>>,
    /// The latest observation of each inventory resource, by endpoint id.
    latest: Vec<Option<Latest>>,
    resources: usize,
    ids: FastMap<Arc<str>, EndpointId>,
    by_address: FastMap<IpAddr, Claims>,
    by_interface: FastMap<Arc<str>, Claims>,
    /// Interface name (an ENI id, a NIC's ARM id) → the resource listing it.
    owner_of: FastMap<Arc<str>, EndpointId>,
    /// Every name (VPC ids, interface names) once.
    names: FastSet<Arc<str>>,
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inventory resources known.
    pub fn resources(&self) -> usize {
        self.resources
    }

    /// Addresses with at least one claim.
    pub fn addresses(&self) -> usize {
        self.by_address.len()
    }

    /// What is known of `id`.
    pub fn info(&self, id: EndpointId) -> &EndpointInfo {
        &self.endpoints[id as usize]
    }

    /// The id of a known endpoint.
    pub fn id(&self, resource_id: &str) -> Option<EndpointId> {
        self.ids.get(resource_id).copied()
    }

    fn intern(&mut self, info: EndpointInfo) -> EndpointId {
        if let Some(id) = self.ids.get(&*info.resource_id) {
            let id = *id;
            self.endpoints[id as usize] = info;
            return id;
        }
        let id = EndpointId::try_from(self.endpoints.len()).unwrap_or(EndpointId::MAX);
        self.ids.insert(Arc::clone(&info.resource_id), id);
        self.owners.push(self.owner_of.get(&*info.resource_id).copied().filter(|o| *o != id));
        self.latest.push(None);
        self.endpoints.push(info);
        id
    }

    /// `s`, stored once.
    fn name(&mut self, s: &str) -> Arc<str> {
        if let Some(n) = self.names.get(s) {
            return Arc::clone(n);
        }
        let n: Arc<str> = Arc::from(s);
        self.names.insert(Arc::clone(&n));
        n
    }

    /// Applies an inventory observation. Observations older than the
    /// latest one of the same resource are ignored.
    pub fn apply(&mut self, r: &Resource) {
        let at = r.observed_at;
        let existing = self.ids.get(r.resource_id.as_str()).copied();
        if let Some(id) = existing
            && self.latest[id as usize].as_ref().is_some_and(|l| l.at > at)
        {
            return;
        }
        let vpc_id = r.vpc_id.as_deref().map(|v| self.name(v));
        let id = self.intern(EndpointInfo {
            resource_id: Arc::from(r.resource_id.as_str()),
            kind: EndpointKind::Resource,
            vpc_id,
            provider: r.provider,
            resource_type: r.resource_type,
            seen_at: at,
            deleted: r.deleted,
        });
        let (addresses, interfaces): (SmallVec<[IpAddr; 2]>, SmallVec<[Arc<str>; 1]>) = if r.deleted {
            (SmallVec::new(), SmallVec::new())
        } else {
            (
                r.private_ips.iter().chain(&r.public_ips).filter_map(|a| a.parse().ok()).collect(),
                r.interface_ids.iter().map(|i| self.name(i)).collect(),
            )
        };
        let previous = self.latest[id as usize].take();
        if let Some(old) = &previous {
            for a in old.addresses.iter().filter(|a| !addresses.contains(a)) {
                release(self.by_address.get_mut(a), id, at);
            }
            for i in old.interfaces.iter().filter(|i| !interfaces.contains(i)) {
                release(self.by_interface.get_mut(i), id, at);
                if self.owner_of.get(i) == Some(&id) {
                    self.owner_of.remove(i);
                    if let Some(owned) = self.ids.get(i) {
                        self.owners[*owned as usize] = None;
                    }
                }
            }
        } else {
            self.resources += 1;
        }
        for a in &addresses {
            claim(self.by_address.entry(*a).or_default(), id, at);
        }
        for i in &interfaces {
            claim(self.by_interface.entry(Arc::clone(i)).or_default(), id, at);
            if **i != *r.resource_id {
                self.owner_of.insert(Arc::clone(i), id);
                if let Some(owned) = self.ids.get(i) {
                    self.owners[*owned as usize] = Some(id);
                }
            }
        }
        self.latest[id as usize] = Some(Latest { at, addresses, interfaces });
    }

    /// `id`, or the resource that owns it (lists it among its interfaces).
    fn owner(&self, id: EndpointId) -> EndpointId {
        match self.owners[id as usize] {
            Some(o) if o != id && !self.endpoints[o as usize].deleted => o,
            _ => id,
        }
    }

    /// The resource holding `addr` at time `t` (its owner, if it has one).
    pub fn by_address(&self, addr: &IpAddr, t: Micros) -> Option<EndpointId> {
        holder(self.by_address.get(addr)?, t).map(|id| self.owner(id))
    }

    /// The resource holding `addr` at time `t` inside `vpc`, where the
    /// address is known there (address ranges may overlap across VPCs and
    /// accounts), else [`Index::by_address`].
    pub fn by_address_in(&self, addr: &IpAddr, vpc: Option<&str>, t: Micros) -> Option<EndpointId> {
        let claims = self.by_address.get(addr)?;
        if let Some(vpc) = vpc {
            let inside = claims
                .iter()
                .rev()
                .find(|c| c.from <= t && t < c.to && self.endpoints[c.who as usize].vpc_id.as_deref() == Some(vpc));
            if let Some(c) = inside {
                return Some(self.owner(c.who));
            }
        }
        holder(claims, t).map(|id| self.owner(id))
    }

    /// The resource owning interface `name` at time `t`.
    pub fn by_interface(&self, name: &str, t: Micros) -> Option<EndpointId> {
        holder(self.by_interface.get(name)?, t).map(|id| self.owner(id))
    }

    /// Whether `id` (or something it owns) held `addr` at `t`.
    pub fn holds(&self, id: EndpointId, addr: &IpAddr, t: Micros) -> bool {
        self.by_address(addr, t) == Some(id)
    }

    /// Attributes one end of a flow seen at `t` with address `addr`;
    /// unheld addresses become unknown hosts or external endpoints.
    pub fn attribute(&mut self, addr: IpAddr, t: Micros, provider: CloudProvider) -> EndpointId {
        if let Some(id) = self.by_address(&addr, t) {
            return id;
        }
        self.address_endpoint(addr, t, provider)
    }

    /// The endpoint of an address that no resource holds.
    pub fn address_endpoint(&mut self, addr: IpAddr, t: Micros, provider: CloudProvider) -> EndpointId {
        let text = addr.to_string();
        let resource_id = psg_domain::ids::address_resource_id(&text);
        if let Some(id) = self.ids.get(resource_id.as_str()) {
            return *id;
        }
        let internal = is_internal(&addr);
        self.intern(EndpointInfo {
            resource_id: Arc::from(resource_id),
            kind: if internal { EndpointKind::UnknownHost } else { EndpointKind::External },
            vpc_id: None,
            provider,
            resource_type: if internal { ResourceType::UnknownHost } else { ResourceType::ExternalEndpoint },
            seen_at: t,
            deleted: false,
        })
    }
}

fn claim(claims: &mut Claims, who: EndpointId, at: Micros) {
    // Still claimed by this resource: keep the original start.
    if claims.iter().any(|c| c.who == who && c.to == OPEN) {
        return;
    }
    claims.push(Claim { from: at, to: OPEN, who });
    claims.sort_by_key(|c| c.from);
}

fn release(claims: Option<&mut Claims>, who: EndpointId, at: Micros) {
    if let Some(claims) = claims {
        for c in claims.iter_mut().filter(|c| c.who == who && c.to == OPEN) {
            c.to = at;
        }
    }
}

fn holder(claims: &[Claim], t: Micros) -> Option<EndpointId> {
    claims
        .iter()
        .rev() // latest claim first
        .find(|c| c.from <= t && t < c.to)
        .map(|c| c.who)
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
    use psg_domain::SourceRef;
    use psg_domain::time::SECOND;

    use super::*;

    fn res(id: &str, ips: &[&str], interfaces: &[&str], at: Micros, deleted: bool) -> Resource {
        let mut r = Resource::new(
            id,
            CloudProvider::Aws,
            ResourceType::Ec2Instance,
            at,
            SourceRef { topic: "resources".into(), partition: 0, offset: 0, line: 0 },
        );
        r.vpc_id = Some("vpc-1".into());
        r.private_ips = ips.iter().map(|s| s.to_string()).collect();
        r.interface_ids = interfaces.iter().map(|s| s.to_string()).collect();
        r.deleted = deleted;
        r
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn who(idx: &mut Index, addr: &str, t: i64) -> String {
        let id = idx.attribute(ip(addr), t * SECOND, CloudProvider::Aws);
        idx.info(id).resource_id.to_string()
    }

    #[test]
    fn a_reused_address_belongs_to_its_holder_at_the_time() {
        let mut idx = Index::new();
        idx.apply(&res("a", &["10.0.0.5"], &["eni-a"], 100 * SECOND, false));
        idx.apply(&res("a", &["10.0.0.5"], &["eni-a"], 200 * SECOND, true)); // a deleted at 200
        idx.apply(&res("b", &["10.0.0.5"], &[], 300 * SECOND, false)); // b gets it at 300
        assert_eq!(who(&mut idx, "10.0.0.5", 50), "ip:10.0.0.5", "before anyone held it");
        assert_eq!(who(&mut idx, "10.0.0.5", 150), "a");
        assert_eq!(who(&mut idx, "10.0.0.5", 250), "ip:10.0.0.5", "released, not yet reassigned");
        assert_eq!(who(&mut idx, "10.0.0.5", 350), "b");
        let a = idx.id("a").unwrap();
        assert_eq!(idx.by_interface("eni-a", 150 * SECOND), Some(a));
        assert_eq!(idx.by_interface("eni-a", 250 * SECOND), None);
    }

    #[test]
    fn an_unobserved_release_is_overridden_by_the_newer_claim() {
        let mut idx = Index::new();
        idx.apply(&res("a", &["10.0.0.5"], &[], 100 * SECOND, false));
        idx.apply(&res("b", &["10.0.0.5"], &[], 300 * SECOND, false));
        assert_eq!(who(&mut idx, "10.0.0.5", 200), "a");
        assert_eq!(who(&mut idx, "10.0.0.5", 400), "b");
    }

    #[test]
    fn stale_observations_are_ignored() {
        let mut idx = Index::new();
        idx.apply(&res("a", &["10.0.0.6"], &[], 300 * SECOND, false));
        idx.apply(&res("a", &["10.0.0.5"], &[], 100 * SECOND, false));
        assert_eq!(who(&mut idx, "10.0.0.6", 400), "a");
        assert_eq!(who(&mut idx, "10.0.0.5", 400), "ip:10.0.0.5");
    }

    #[test]
    fn an_interface_resource_belongs_to_the_resource_that_lists_it() {
        // Azure: the NIC holds the address; the VM lists the NIC.
        let mut idx = Index::new();
        idx.apply(&res("/subs/s/nics/nic-1", &["10.1.0.4"], &["000D3AF87856"], 100 * SECOND, false));
        assert_eq!(who(&mut idx, "10.1.0.4", 150), "/subs/s/nics/nic-1", "no owner known yet");
        idx.apply(&res("/subs/s/vms/vm-1", &[], &["/subs/s/nics/nic-1"], 100 * SECOND, false));
        assert_eq!(who(&mut idx, "10.1.0.4", 150), "/subs/s/vms/vm-1");
        assert_eq!(idx.by_interface("000D3AF87856", 150 * SECOND), idx.id("/subs/s/vms/vm-1"));
        // the VM is deleted: the NIC is on its own again
        idx.apply(&res("/subs/s/vms/vm-1", &[], &[], 200 * SECOND, true));
        assert_eq!(who(&mut idx, "10.1.0.4", 250), "/subs/s/nics/nic-1");
    }

    #[test]
    fn internal_and_external_addresses() {
        for a in ["10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::1", "fe80::1"] {
            assert!(is_internal(&ip(a)), "{a}");
        }
        for a in ["8.8.8.8", "52.95.128.179", "100.128.0.1", "2001:db8::1"] {
            assert!(!is_internal(&ip(a)), "{a}");
        }
        let mut idx = Index::new();
        let e = idx.attribute(ip("52.95.128.179"), 0, CloudProvider::Aws);
        assert_eq!(idx.info(e).kind, EndpointKind::External);
        let u = idx.attribute(ip("fd00::7"), 0, CloudProvider::Aws);
        assert_eq!(&*idx.info(u).resource_id, "ip:fd00::7");
        assert_eq!(idx.info(u).kind, EndpointKind::UnknownHost);
        assert_eq!(idx.attribute(ip("fd00::7"), 5, CloudProvider::Aws), u, "interned once");
    }
}
