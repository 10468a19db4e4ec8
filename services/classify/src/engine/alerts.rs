//! Alert rules: the alert conditions a node is in, compared with those
//! last reported, and each put into words.

use super::*;

impl Engine {
    /// Compares the alert conditions `ix` is in now with those last
    /// reported: raises the new ones, rewords the changed ones, resolves
    /// the ones gone. Only those are put into words.
    pub(super) fn reconcile(&mut self, ix: NodeIndex, keys: SmallVec<[AlertKey; 1]>, alerts: &mut Vec<AlertCandidate>) {
        let old = self.active.remove(&ix).unwrap_or_default();
        for key in &keys {
            match old.iter().find(|o| o.same_cause(key)) {
                Some(o) if o == key => {}
                Some(_) => alerts.push(self.format_alert(*key, AlertEvent::Updated)),
                None => alerts.push(self.format_alert(*key, AlertEvent::Raised)),
            }
        }
        for o in old.iter().filter(|o| !keys.iter().any(|k| k.same_cause(o))) {
            alerts.push(self.resolution(*o));
        }
        if !keys.is_empty() {
            self.active.insert(ix, keys);
        }
    }

    /// The alert of a condition that ended, saying what holds now.
    pub(super) fn resolution(&self, key: AlertKey) -> AlertCandidate {
        let mut a = self.format_alert(key, AlertEvent::Resolved);
        let Some(&ix) = self.nodes.get(&a.resource_id) else { return a };
        let now = match (self.graph[ix].classifiable, self.last.get(&a.resource_id)) {
            (false, _) => format!("{} is no longer in the inventory.", self.full(ix)),
            (true, Some(o)) => format!("{} now computes as {}: {}", self.full(ix), o.scope, o.justification),
            (true, None) => format!("{} has no decision.", self.full(ix)),
        };
        a.description = format!("Resolved by the classifier: the condition no longer holds. {now}");
        a.context.insert("resolution".into(), "condition no longer holds".into());
        a
    }

    /// The alert conditions a node is in.
    pub(super) fn alert_keys(&self, ix: NodeIndex, scope: PciScope, near_cde: bool) -> Vec<AlertKey> {
        let n = &self.graph[ix];
        let mut keys = Vec::new();
        if n.kind == EndpointKind::Resource && !n.tags.contains_key(&self.settings.scope_tag_key) && n.manual.is_none()
        {
            keys.push(AlertKey::Untagged(ix));
        }
        // Pending review against a declared scope: only for want of flow-log
        // coverage, which `coverage_gap` names.
        // Declared out-of-scope but reachable by configuration, no flow
        // seen: a latent violation per CDE system, not a drift.
        let latent = n.declared == Some(PciScope::OutOfScope) && n.manual.is_none() && !near_cde;
        if latent && let Some(peers) = self.reachable(ix) {
            keys.extend(peers.keys().map(|c| AlertKey::Latent(ix, *c)));
        }
        if let Some(d) = n.declared
            && d != scope
            && scope != PciScope::PendingReview
            && !(latent && self.reachable(ix).is_some())
        {
            keys.push(AlertKey::Declared(ix, d, scope));
        }
        // A CDE system whose known security groups do not admit flows it
        // accepted: the inventory is stale, or a flow was attributed wrongly.
        if n.cde {
            for e in self.graph.edges_directed(ix, Direction::Incoming) {
                if e.source() == ix {
                    continue;
                }
                for (svc, _) in e.weight().iter().filter(|(s, _)| s.2 == FlowAction::Accept) {
                    if self.graph[e.source()].kind == EndpointKind::Resource
                        && self.admitted(e.source(), ix, svc.0, svc.1) == Some(false)
                    {
                        keys.push(AlertKey::NotAllowed(ix, e.source(), *svc));
                    }
                }
            }
        }
        // Configuration that lets a system reach a CDE system on a service
        // the segmentation policy forbids: the firewall does not enforce it.
        if let Some(policy) = &self.settings.policy
            && let Some(peers) = self.reachable(ix)
        {
            for (c, allowed) in peers {
                let forbidden = allowed.iter().any(|a| {
                    let r = &a.rule;
                    policy
                        .first_forbidden(&self.subject(ix), &self.subject(*c), r.protocol, r.from_port, r.to_port)
                        .is_some()
                });
                if forbidden {
                    keys.push(AlertKey::Unenforced(ix, *c));
                }
            }
        }
        // The remaining conditions need a CDE end, and a node that can be in
        // one: a CDE system, an unknown host, a declared out-of-scope one, or
        // any node under a policy.
        let can = n.cde
            || n.kind == EndpointKind::UnknownHost
            || (n.declared == Some(PciScope::OutOfScope) && n.manual.is_none())
            || self.settings.policy.is_some();
        if !(n.cde || near_cde) || !can {
            return keys;
        }
        for dir in [Direction::Outgoing, Direction::Incoming] {
            for e in self.graph.edges_directed(ix, dir) {
                let peer = if dir == Direction::Outgoing { e.target() } else { e.source() };
                if peer == ix || !e.weight().iter().any(|(s, _)| s.2 == FlowAction::Accept) {
                    continue;
                }
                let peer_cde = self.is_cde(peer);
                if peer_cde && n.declared == Some(PciScope::OutOfScope) && n.manual.is_none() {
                    keys.push(AlertKey::OutOfScopePeer(ix, peer));
                }
                if n.kind == EndpointKind::UnknownHost && peer_cde {
                    keys.push(AlertKey::Unknown(ix, peer));
                }
                if n.cde && self.graph[peer].kind == EndpointKind::External {
                    keys.push(AlertKey::Internet(ix, peer));
                }
            }
        }
        if let Some(policy) = &self.settings.policy {
            for dir in [Direction::Outgoing, Direction::Incoming] {
                for e in self.graph.edges_directed(ix, dir) {
                    let (src, dst) = (e.source(), e.target());
                    // The alert is the CDE end's (the source's when both are).
                    let owner = if self.graph[src].cde { src } else { dst };
                    if src == dst || owner != ix || !(self.is_cde(src) || self.is_cde(dst)) {
                        continue;
                    }
                    for (service, _) in e.weight() {
                        if service.2 == FlowAction::Accept
                            && policy.allows(&self.subject(src), &self.subject(dst), service.0, service.1).is_none()
                        {
                            keys.push(AlertKey::Policy(src, dst, *service));
                        }
                    }
                }
            }
        }
        keys
    }

    /// The services between two nodes (`to` / `from` the first).
    pub(super) fn services_between(&self, ix: NodeIndex, peer: NodeIndex) -> PeerServices {
        let mut out = PeerServices::new();
        for (a, b, label) in [(ix, peer, "to"), (peer, ix, "from")] {
            if let Some(e) = self.graph.find_edge(a, b) {
                for (svc, seen) in &self.graph[e] {
                    if svc.2 == FlowAction::Accept {
                        out.push((*svc, *seen, label));
                    }
                }
            }
        }
        out
    }

    /// How a title names a node: its inventory name, else its id.
    pub(super) fn short(&self, ix: NodeIndex) -> &str {
        let n = &self.graph[ix];
        n.name.as_deref().unwrap_or(&n.resource_id)
    }

    /// How a description names a node: `name (id)`, or the id.
    pub(super) fn full(&self, ix: NodeIndex) -> String {
        let n = &self.graph[ix];
        match &n.name {
            Some(name) => format!("{name} ({})", n.resource_id),
            None => n.resource_id.clone(),
        }
    }

    /// An alert condition put into words.
    pub(super) fn format_alert(&self, key: AlertKey, event: AlertEvent) -> AlertCandidate {
        let tag = &self.settings.scope_tag_key;
        let ctx = |services: &PeerServices, rid: &str, peer: &str| {
            let mut c =
                BTreeMap::from([("resource_id".to_owned(), rid.to_owned()), ("peer".to_owned(), peer.to_owned())]);
            if let Some((svc, seen, dir)) = services.first() {
                c.insert("protocol".into(), psg_domain::protocol_name(svc.0));
                c.insert("port".into(), svc.1.to_string());
                c.insert("direction".into(), (*dir).to_owned());
                c.insert("first_seen".into(), rfc3339(seen.first));
                c.insert("last_seen".into(), rfc3339(seen.last));
                if !seen.action_logged {
                    c.insert("action_logged".into(), "false".into());
                }
            }
            c
        };
        match key {
            AlertKey::Untagged(ix) => {
                let rid = &self.graph[ix].resource_id;
                AlertCandidate {
                    event,
                    alert_type: AlertType::UntaggedResource,
                    resource_id: rid.clone(),
                    cause: "untagged".into(),
                    title: format!("{} has no {tag} tag", self.short(ix)),
                    description: format!(
                        "Resource {} has no {tag} tag. Tag it cde, connected-cde or out-of-scope so its scope is declared, not inferred.",
                        self.full(ix)
                    ),
                    pci_requirement: "12.5.2",
                    context: BTreeMap::from([("resource_id".to_owned(), rid.clone())]),
                }
            }
            AlertKey::Declared(ix, d, scope) => {
                let rid = &self.graph[ix].resource_id;
                AlertCandidate {
                    event,
                    alert_type: AlertType::ScopeDrift,
                    resource_id: rid.clone(),
                    // One alert per resource: a further drift rewords it.
                    cause: "declared".to_owned(),
                    title: format!("{} is declared {d} but computes as {scope}", self.short(ix)),
                    description: format!(
                        "{} is tagged {tag}={d}, but its computed scope is {scope}: {}",
                        self.full(ix),
                        self.outcome(ix).justification
                    ),
                    pci_requirement: "12.5.2",
                    context: BTreeMap::from([
                        ("declared".to_owned(), d.to_string()),
                        ("computed".to_owned(), scope.to_string()),
                    ]),
                }
            }
            AlertKey::Changed(ix, from, to) => {
                let rid = &self.graph[ix].resource_id;
                let why = self.last.get(rid).map(|o| format!(": {}", o.justification)).unwrap_or_default();
                AlertCandidate {
                    event,
                    alert_type: AlertType::ScopeDrift,
                    resource_id: rid.clone(),
                    // One alert per resource: a further change rewords it,
                    // a return to `from` resolves it.
                    cause: "changed".to_owned(),
                    title: format!("{} moved from {from} to {to}", self.short(ix)),
                    description: format!("The computed scope of {} changed from {from} to {to}{why}", self.full(ix)),
                    pci_requirement: "12.5.2",
                    context: BTreeMap::from([("from".to_owned(), from.to_string()), ("to".to_owned(), to.to_string())]),
                }
            }
            AlertKey::OutOfScopePeer(ix, peer) => {
                let (rid, p) = (&self.graph[ix].resource_id, &self.graph[peer].resource_id);
                let services = self.services_between(ix, peer);
                AlertCandidate {
                    event,
                    alert_type: AlertType::SegmentationViolation,
                    resource_id: rid.clone(),
                    cause: format!("out-of-scope:{p}"),
                    title: format!("Out-of-scope {} talks to CDE system {}", self.short(ix), self.short(peer)),
                    description: format!(
                        "{} is declared out-of-scope but has ACCEPTed flows with CDE system {}: {}. Segmentation between the CDE and out-of-scope systems is broken.",
                        self.full(ix),
                        self.full(peer),
                        describe(&services)
                    ),
                    pci_requirement: "1.3.1",
                    context: ctx(&services, rid, p),
                }
            }
            AlertKey::Unknown(ix, peer) => {
                let (n, p) = (&self.graph[ix], &self.graph[peer].resource_id);
                let services = self.services_between(ix, peer);
                let addr = n.address.as_deref().unwrap_or(&n.resource_id);
                AlertCandidate {
                    event,
                    alert_type: AlertType::UnknownSystem,
                    resource_id: n.resource_id.clone(),
                    cause: format!("cde-peer:{p}"),
                    title: format!("Unknown host {addr} talks to CDE system {}", self.short(peer)),
                    description: format!(
                        "Address {addr} is in an internal range but maps to no inventory resource, and has ACCEPTed flows with CDE system {}: {}.",
                        self.full(peer),
                        describe(&services)
                    ),
                    pci_requirement: "12.5.2",
                    context: ctx(&services, &n.resource_id, p),
                }
            }
            AlertKey::Internet(ix, peer) => {
                let (rid, pn) = (&self.graph[ix].resource_id, &self.graph[peer]);
                let services = self.services_between(ix, peer);
                let addr = pn.address.clone().unwrap_or_else(|| pn.resource_id.clone());
                let mut context = ctx(&services, rid, &pn.resource_id);
                context.insert("address".into(), addr.clone());
                AlertCandidate {
                    event,
                    alert_type: AlertType::CdeInternet,
                    resource_id: rid.clone(),
                    cause: format!("external:{addr}"),
                    title: format!("CDE system {} talks to public address {addr}", self.short(ix)),
                    description: format!(
                        "CDE system {} has ACCEPTed flows with public address {addr}: {}.",
                        self.full(ix),
                        describe(&services)
                    ),
                    pci_requirement: "1.3.2",
                    context,
                }
            }
            AlertKey::Latent(ix, cde) => {
                let (rid, c) = (&self.graph[ix].resource_id, &self.graph[cde].resource_id);
                let rules = self.reachable(ix).and_then(|p| p.get(&cde)).map(|a| {
                    let mut why: Vec<String> = a.iter().map(psg_reach::Allowed::describe).collect();
                    why.sort();
                    why.dedup();
                    why.join("; ")
                });
                let rules = rules.unwrap_or_default();
                AlertCandidate {
                    event,
                    alert_type: AlertType::LatentViolation,
                    resource_id: rid.clone(),
                    cause: format!("reachable:{c}"),
                    title: format!("Out-of-scope {} can reach CDE system {}", self.short(ix), self.short(cde)),
                    description: format!(
                        "{} is declared out-of-scope, and no flow with CDE system {} was seen, but the configuration lets it connect: {rules}. PCI DSS counts systems that can connect to the CDE as in scope: restrict the rule or take the system into scope.",
                        self.full(ix),
                        self.full(cde)
                    ),
                    pci_requirement: "1.3.1",
                    context: BTreeMap::from([
                        ("resource_id".to_owned(), rid.clone()),
                        ("peer".to_owned(), c.clone()),
                        ("allowed_by".to_owned(), rules),
                    ]),
                }
            }
            AlertKey::Unenforced(ix, cde) => {
                let (rid, c) = (&self.graph[ix].resource_id, &self.graph[cde].resource_id);
                let policy = self.settings.policy.as_deref();
                // The rules that let through what the policy forbids, and one
                // such service each.
                let mut why: Vec<String> = self
                    .reachable(ix)
                    .and_then(|p| p.get(&cde))
                    .into_iter()
                    .flatten()
                    .filter_map(|a| {
                        let r = &a.rule;
                        let (proto, port) = policy?.first_forbidden(
                            &self.subject(ix),
                            &self.subject(cde),
                            r.protocol,
                            r.from_port,
                            r.to_port,
                        )?;
                        let service = if matches!(proto, 6 | 17 | 132) {
                            format!("{}/{port}", psg_domain::protocol_name(proto))
                        } else {
                            psg_domain::protocol_name(proto)
                        };
                        Some(format!("{} (e.g. {service})", a.describe()))
                    })
                    .collect();
                why.sort();
                why.dedup();
                let why = why.join("; ");
                AlertCandidate {
                    event,
                    alert_type: AlertType::PolicyNotEnforced,
                    resource_id: c.clone(),
                    cause: format!("unenforced:{rid}"),
                    title: format!(
                        "Configuration lets {} reach CDE system {} against the policy",
                        self.short(ix),
                        self.short(cde)
                    ),
                    description: format!(
                        "{} (segments: {}) can connect to CDE system {} (segments: {}) on services no allow rule of the segmentation policy permits: {why}. The firewall rules do not enforce the policy: restrict them to what the policy allows.",
                        self.full(ix),
                        self.policy_segments(ix),
                        self.full(cde),
                        self.policy_segments(cde)
                    ),
                    pci_requirement: "1.2.1",
                    context: BTreeMap::from([
                        ("resource_id".to_owned(), c.clone()),
                        ("peer".to_owned(), rid.clone()),
                        ("allowed_by".to_owned(), why),
                    ]),
                }
            }
            AlertKey::NotAllowed(cde, src, (proto, port, _)) => {
                let (c, s) = (&self.graph[cde].resource_id, &self.graph[src].resource_id);
                let service = format!("{}/{port}", psg_domain::protocol_name(proto));
                AlertCandidate {
                    event,
                    alert_type: AlertType::ObservedNotAllowed,
                    resource_id: c.clone(),
                    cause: format!("not-allowed:{s}:{service}"),
                    title: format!(
                        "{} accepted {service} from {} that its security groups do not admit",
                        self.short(cde),
                        self.short(src)
                    ),
                    description: format!(
                        "CDE system {} accepted flows on {service} from {}, but none of its security groups ({}) admits that source on that service: the inventory is out of date, or the flow was attributed to the wrong system.",
                        self.full(cde),
                        self.full(src),
                        self.graph[cde].groups.join(", ")
                    ),
                    pci_requirement: "1.2.7",
                    context: BTreeMap::from([
                        ("resource_id".to_owned(), c.clone()),
                        ("peer".to_owned(), s.clone()),
                        ("protocol".to_owned(), psg_domain::protocol_name(proto)),
                        ("port".to_owned(), port.to_string()),
                    ]),
                }
            }
            AlertKey::Policy(src, dst, (proto, port, _)) => {
                let (s, d) = (&self.graph[src].resource_id, &self.graph[dst].resource_id);
                let owner = if self.graph[src].cde { s } else { d };
                let service = format!("{}/{port}", psg_domain::protocol_name(proto));
                let seen = self.graph.find_edge(src, dst).and_then(|e| {
                    self.graph[e].iter().find(|(svc, _)| svc.0 == proto && svc.1 == port).map(|(_, seen)| *seen)
                });
                let (first, last) = seen.map_or((0, 0), |s| (s.first, s.last));
                let segments = |ix| self.policy_segments(ix);
                AlertCandidate {
                    event,
                    alert_type: AlertType::SegmentationViolation,
                    resource_id: owner.clone(),
                    cause: format!("policy:{s}->{d}:{service}"),
                    title: format!("Flow not allowed by policy: {} → {} {service}", self.short(src), self.short(dst)),
                    description: format!(
                        "{} (segments: {}) → {} (segments: {}) on {service} was ACCEPTed from {} to {}, and no allow rule of the segmentation policy matches it. All traffic to and from the CDE that no rule allows must be denied.",
                        self.full(src),
                        segments(src),
                        self.full(dst),
                        segments(dst),
                        rfc3339(first),
                        rfc3339(last)
                    ),
                    pci_requirement: "1.3.1",
                    context: BTreeMap::from([
                        ("source".to_owned(), s.clone()),
                        ("destination".to_owned(), d.clone()),
                        ("protocol".to_owned(), psg_domain::protocol_name(proto)),
                        ("port".to_owned(), port.to_string()),
                        ("first_seen".to_owned(), rfc3339(first)),
                        ("last_seen".to_owned(), rfc3339(last)),
                    ]),
                }
            }
        }
    }

    pub(super) fn subject(&self, ix: NodeIndex) -> Subject<'_> {
        let n = &self.graph[ix];
        Subject {
            resource_id: &n.resource_id,
            tags: &n.tags,
            vpc_id: n.vpc_id.as_deref(),
            addresses: &n.addresses,
            external: n.kind == EndpointKind::External,
        }
    }

    pub(super) fn policy_segments(&self, ix: NodeIndex) -> String {
        let Some(policy) = &self.settings.policy else { return "none".to_owned() };
        let segs = policy.segments_of(&self.subject(ix));
        if segs.is_empty() { "none".to_owned() } else { segs.join(", ") }
    }
}

fn describe(services: &[(Service, Seen, &'static str)]) -> String {
    let mut s: Vec<String> = services
        .iter()
        .map(|((proto, port, _), seen, dir)| {
            format!(
                "{dir} {}/{port} from {} to {}{}",
                psg_domain::protocol_name(*proto),
                rfc3339(seen.first),
                rfc3339(seen.last),
                seen.action_note()
            )
        })
        .collect();
    s.sort();
    s.join("; ")
}
