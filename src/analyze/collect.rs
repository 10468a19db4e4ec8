//! What a batch run produced: the services' outputs as a SIEM would read
//! them (decisions, alerts, edges, evidence, dead letters), the count of
//! every record read, and the [`Analysis`] built from them.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use psg_domain::time::rfc3339;
use psg_domain::{Alert, EdgeKind, EndpointKind, FlowAction, FlowCoverage, FlowEdge, Resource, ScopeDecision};
use psg_kafka_runtime::InMessage;
use psg_kafka_runtime::dead_letter;
use psg_report::{AlertEntry, Analysis, CoverageEntry, EdgeEntry, Parts, ResourceEntry, Summary};

use crate::error::CliError;

/// Where a message of an input topic came from.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The file (or `-`).
    pub file: String,
    /// Its first line in the file.
    pub first_line: u64,
    /// Records it holds, when known (lines of flow logs).
    pub records: Option<u64>,
}

/// Input messages by (topic, partition, offset), filled by the feeder.
pub(crate) type Origins = Arc<Mutex<HashMap<(String, i32, i64), Origin>>>;

/// What came out of one input message.
#[derive(Debug, Clone, Copy, Default)]
struct Fate {
    normalized: u64,
    dead_lettered: u64,
    /// Refused whole: every record not normalized is dead-lettered.
    whole: bool,
}

/// The outputs of a run, taken as they are published.
pub(crate) struct Collector {
    topics: psg_config::Topics,
    origins: Origins,
    pub resources: Vec<Resource>,
    pub decisions: Vec<ScopeDecision>,
    pub alerts: Vec<Alert>,
    /// Flow-log coverage per unit and partition, as last published.
    pub coverage: Vec<FlowCoverage>,
    pub edges: EdgeTotals,
    /// Window edges as published, when asked for (tests).
    pub window_edges: Option<Vec<FlowEdge>>,
    pub evidence: Vec<psg_domain::Evidence>,
    /// The evidence log's newest checkpoint.
    pub checkpoint: Option<psg_domain::EvidenceCheckpoint>,
    fates: HashMap<(String, i32, i64), Fate>,
    dead_lettered: u64,
    dead_letter_file: Option<std::io::BufWriter<std::fs::File>>,
}

impl Collector {
    /// `dead_letters`: where to write every dead letter as a JSON line.
    pub(crate) fn new(
        topics: psg_config::Topics,
        origins: Origins,
        dead_letters: Option<&std::path::Path>,
        keep_window_edges: bool,
    ) -> Result<Self, CliError> {
        let dead_letter_file = match dead_letters {
            Some(p) => {
                let f = std::fs::File::create(p).map_err(|e| CliError::Runtime(format!("{}: {e}", p.display())))?;
                Some(std::io::BufWriter::new(f))
            }
            None => None,
        };
        Ok(Self {
            topics,
            origins,
            resources: Vec::new(),
            decisions: Vec::new(),
            alerts: Vec::new(),
            coverage: Vec::new(),
            edges: EdgeTotals::closed_only(),
            window_edges: keep_window_edges.then(Vec::new),
            evidence: Vec::new(),
            checkpoint: None,
            fates: HashMap::new(),
            dead_lettered: 0,
            dead_letter_file,
        })
    }

    /// The topics a collector reads.
    pub(crate) fn inputs(t: &psg_config::Topics) -> Vec<String> {
        vec![
            t.resources.clone(),
            t.flows_normalized.clone(),
            t.flows_edges.clone(),
            t.flows_coverage.clone(),
            t.scope_decisions.clone(),
            t.scope_alerts.clone(),
            t.evidence_records.clone(),
            t.evidence_checkpoints.clone(),
            t.ingest_dlq.clone(),
            t.correlate_dlq.clone(),
            t.classify_dlq.clone(),
            t.evidence_dlq.clone(),
        ]
    }

    /// Takes one published message.
    pub(crate) fn take(&mut self, m: &InMessage) -> Result<(), CliError> {
        let t = &self.topics;
        let topic = &*m.topic;
        let decode_err = |e: psg_avro_codec::Error| CliError::Runtime(format!("reading {topic}: {e}"));
        if topic == t.flows_normalized {
            let n = flow_batch_len(m.payload())
                .ok_or_else(|| CliError::Runtime(format!("reading {topic}: not a FlowBatch")))?;
            if let Some(source) = m.key.as_deref().and_then(source_of) {
                self.fates.entry(source).or_default().normalized += n;
            }
        } else if topic == t.resources {
            if m.payload.is_some() {
                self.resources.push(psg_avro_codec::decode(m.payload()).map_err(decode_err)?);
            }
        } else if topic == t.flows_edges {
            let e: FlowEdge = psg_avro_codec::decode(m.payload()).map_err(decode_err)?;
            self.edges.add(&e);
            if let Some(kept) = &mut self.window_edges
                && e.kind == EdgeKind::Window
            {
                kept.push(e);
            }
        } else if topic == t.flows_coverage {
            if m.payload.is_some() {
                self.coverage.push(psg_avro_codec::decode(m.payload()).map_err(decode_err)?);
            }
        } else if topic == t.scope_decisions {
            self.decisions.push(psg_avro_codec::decode(m.payload()).map_err(decode_err)?);
        } else if topic == t.scope_alerts {
            self.alerts.push(psg_avro_codec::decode(m.payload()).map_err(decode_err)?);
        } else if topic == t.evidence_records {
            self.evidence.push(psg_avro_codec::decode(m.payload()).map_err(decode_err)?);
        } else if topic == t.evidence_checkpoints {
            let c: psg_domain::EvidenceCheckpoint = psg_avro_codec::decode(m.payload()).map_err(decode_err)?;
            if self.checkpoint.as_ref().is_none_or(|n| n.tree_size < c.tree_size) {
                self.checkpoint = Some(c);
            }
        } else {
            self.dead_letter(m)?;
        }
        Ok(())
    }

    fn dead_letter(&mut self, m: &InMessage) -> Result<(), CliError> {
        let header = |name: &str| m.header(name).map(|v| String::from_utf8_lossy(v).into_owned());
        let source_topic = header(dead_letter::SOURCE_TOPIC).unwrap_or_default();
        let partition: i32 = header(dead_letter::SOURCE_PARTITION).and_then(|v| v.parse().ok()).unwrap_or(-1);
        let offset: i64 = header(dead_letter::SOURCE_OFFSET).and_then(|v| v.parse().ok()).unwrap_or(-1);
        let records: Option<u64> = header(dead_letter::RECORDS).and_then(|v| v.parse().ok());
        let line: Option<u64> = header(dead_letter::LINE).and_then(|v| v.parse().ok());
        let key = (source_topic.clone(), partition, offset);
        let counted = records.unwrap_or(1);
        self.dead_lettered += counted;
        if source_topic == self.topics.flowlogs_raw {
            let fate = self.fates.entry(key.clone()).or_default();
            match records {
                Some(n) => fate.dead_lettered += n,
                None => fate.whole = true,
            }
        }
        if let Some(out) = &mut self.dead_letter_file {
            let origin = self.origins.lock().ok().and_then(|o| o.get(&key).cloned());
            let file_line = match (&origin, line) {
                (Some(o), Some(l)) => Some(o.first_line + l.saturating_sub(1)),
                (Some(o), None) => Some(o.first_line),
                _ => None,
            };
            let text = String::from_utf8_lossy(m.payload());
            let text: String = text.chars().take(4096).collect();
            let entry = serde_json::json!({
                "file": origin.as_ref().map(|o| o.file.clone()),
                "line": file_line,
                "records": counted,
                "service": header(dead_letter::SERVICE),
                "kind": header(dead_letter::KIND),
                "reason": header(dead_letter::REASON),
                "source": {"topic": source_topic, "partition": partition, "offset": offset, "line": line},
                "text": text,
            });
            writeln!(out, "{entry}").map_err(|e| CliError::Runtime(format!("writing dead letters: {e}")))?;
        }
        Ok(())
    }

    /// Checks that every flow record read was normalized or dead-lettered;
    /// returns (records read, records normalized), or what does not add up.
    pub(crate) fn account(&mut self) -> Result<(u64, u64), CliError> {
        if let Some(out) = &mut self.dead_letter_file {
            out.flush().map_err(|e| CliError::Runtime(format!("writing dead letters: {e}")))?;
        }
        let origins = self.origins.lock().map_err(|_| CliError::Runtime("input bookkeeping poisoned".into()))?;
        let (mut read, mut normalized) = (0u64, 0u64);
        let mut missing = Vec::new();
        for (key, origin) in origins.iter().filter(|(k, _)| k.0 == self.topics.flowlogs_raw) {
            let fate = self.fates.get(key).copied().unwrap_or_default();
            normalized += fate.normalized;
            match origin.records {
                Some(lines) => {
                    read += lines;
                    let refused = if fate.whole { lines.saturating_sub(fate.normalized) } else { fate.dead_lettered };
                    if fate.normalized + refused != lines {
                        missing.push(format!(
                            "{} from line {}: {lines} records read, {} processed, {refused} dead-lettered",
                            origin.file, origin.first_line, fate.normalized
                        ));
                    }
                }
                None => read += fate.normalized + if fate.whole { 1 } else { fate.dead_lettered },
            }
        }
        if !missing.is_empty() {
            missing.sort();
            let n = missing.len();
            missing.truncate(10);
            return Err(CliError::Runtime(format!(
                "the counts do not add up for {n} input messages (records neither processed nor dead-lettered, \
                 or counted twice): {}",
                missing.join("; ")
            )));
        }
        Ok((read, normalized))
    }

    /// Records dead-lettered by any service (a message refused whole whose
    /// records cannot be counted counts once).
    pub(crate) fn dead_lettered(&self) -> u64 {
        self.dead_lettered
    }
}

/// The number of records of an encoded `FlowBatch`, read from its array
/// header without decoding the records (ingest writes one block).
pub(crate) fn flow_batch_len(payload: &[u8]) -> Option<u64> {
    let mut rest = payload.get(psg_avro_codec::HEADER_LEN..)?;
    let mut z: u64 = 0;
    let mut shift = 0;
    loop {
        let (&b, tail) = rest.split_first()?;
        rest = tail;
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    let n = ((z >> 1) as i64) ^ -((z & 1) as i64);
    u64::try_from(n.abs()).ok()
}

/// The source message a FlowBatch's key names (`topic/partition/offset`).
fn source_of(key: &[u8]) -> Option<(String, i32, i64)> {
    let key = std::str::from_utf8(key).ok()?;
    let mut parts = key.rsplitn(3, '/');
    let offset = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    let topic = parts.next()?.to_owned();
    Some((topic, partition, offset))
}

/// (source, destination, protocol, port, action) of an edge; external
/// endpoints as `ext:<address>`.
type Service = (String, String, i32, i32, FlowAction);

fn service(e: &FlowEdge) -> Service {
    let name = |e: &psg_domain::Endpoint| match e.kind {
        EndpointKind::External => format!("ext:{}", e.address.as_deref().unwrap_or(&e.resource_id)),
        _ => e.resource_id.clone(),
    };
    (name(&e.src), name(&e.dst), e.protocol, e.dst_port, e.action)
}

/// Flows per service, summed as edges arrive (memory: one entry per
/// service, not per edge).
#[derive(Debug, Default)]
pub(crate) struct EdgeTotals {
    /// Every window closes (the in-process run ends its input): only window
    /// edges count. Otherwise a window still open counts with what its
    /// first-seen edge said.
    closed_only: bool,
    /// Newest event time seen.
    pub as_of: i64,
    totals: BTreeMap<Service, i64>,
    /// Per service: first and last event time, and the records of its
    /// window edges seen encrypted and unencrypted.
    facts: HashMap<Service, Facts>,
    /// Not `closed_only`: per service and window, the first-seen flows and
    /// the window edges by id (a redelivered copy counts once).
    windows: BTreeMap<(Service, i64), (i64, HashMap<String, i64>)>,
}

/// What the report says of a service besides its flows.
#[derive(Debug, Clone, Copy)]
struct Facts {
    first: i64,
    last: i64,
    encrypted: i64,
    unencrypted: i64,
}

impl EdgeTotals {
    /// For a run whose every window closes.
    pub(crate) fn closed_only() -> Self {
        Self { closed_only: true, as_of: i64::MIN, ..Self::default() }
    }

    /// For a run whose last windows may still be open.
    #[cfg(test)]
    pub(crate) fn with_open_windows() -> Self {
        Self { closed_only: false, as_of: i64::MIN, ..Self::default() }
    }

    pub(crate) fn add(&mut self, e: &FlowEdge) {
        if e.kind == EdgeKind::Withdrawn {
            // Every accepted connection of it so far was blocked by the
            // other end: none of its flows counts as accepted.
            let s = service(e);
            self.totals.remove(&s);
            if let Some(f) = self.facts.get_mut(&s) {
                (f.encrypted, f.unencrypted) = (0, 0);
            }
            self.windows.retain(|(sv, _), _| *sv != s);
            return;
        }
        self.as_of = self.as_of.max(e.last_seen);
        let s = service(e);
        let closed = e.kind == EdgeKind::Window;
        let f = self.facts.entry(s.clone()).or_insert(Facts {
            first: e.first_seen,
            last: e.last_seen,
            encrypted: 0,
            unencrypted: 0,
        });
        (f.first, f.last) = (f.first.min(e.first_seen), f.last.max(e.last_seen));
        if closed {
            (f.encrypted, f.unencrypted) = (f.encrypted + e.encrypted_flows, f.unencrypted + e.unencrypted_flows);
        }
        if self.closed_only {
            if closed {
                *self.totals.entry(s).or_default() += e.flows;
            }
            return;
        }
        let slot = self.windows.entry((s, e.window_start)).or_insert((0, HashMap::new()));
        if closed {
            slot.1.insert(e.edge_id.clone(), e.flows);
        } else {
            slot.0 = slot.0.max(e.flows);
        }
    }

    /// Flows per service.
    fn totals(&self) -> BTreeMap<Service, i64> {
        let mut totals = self.totals.clone();
        for ((service, _), (first_seen, closed)) in &self.windows {
            let flows = if closed.is_empty() { *first_seen } else { closed.values().sum() };
            *totals.entry(service.clone()).or_default() += flows;
        }
        totals
    }
}

fn protocol(n: i32) -> String {
    psg_domain::protocol_name(n)
}

/// The analysis of what a run published; `counts`: the input figures of
/// the summary (scope counts are added here).
pub(crate) fn build_analysis(
    resources: &[Resource],
    coverage: &[FlowCoverage],
    decisions: &[ScopeDecision],
    alerts: &[Alert],
    edges: &EdgeTotals,
    counts: &Summary,
) -> Analysis {
    let mut by_id: HashMap<&str, &Resource> = HashMap::new();
    for r in resources {
        by_id.insert(r.resource_id.as_str(), r);
    }
    let mut current: BTreeMap<&str, &ScopeDecision> = BTreeMap::new();
    for d in decisions {
        let newer = current.get(d.resource_id.as_str()).is_none_or(|c| c.decided_at <= d.decided_at);
        if newer {
            current.insert(d.resource_id.as_str(), d);
        }
    }
    let mut as_of = i64::MIN;
    let mut entries = Vec::with_capacity(current.len());
    for (rid, d) in &current {
        as_of = as_of.max(d.as_of);
        let r = by_id.get(rid);
        entries.push(ResourceEntry {
            resource_id: (*rid).to_owned(),
            provider: r.map_or("unknown".to_owned(), |r| r.provider.as_str().to_owned()),
            resource_type: r.map_or("unknown_host".to_owned(), |r| r.resource_type.as_str().to_owned()),
            resource_name: r.and_then(|r| r.resource_name.clone()).unwrap_or_else(|| (*rid).to_owned()),
            scope: d.scope.as_str().to_owned(),
            data_classification: d.data_classification.map(|c| c.as_str().to_owned()),
            justification: d.justification.clone(),
            dependency_resource_ids: d.dependency_resource_ids.clone(),
            rule: d.rule.as_str().to_owned(),
            segment: r.and_then(|r| r.vpc_id.clone()).unwrap_or_default(),
            tags: r.map(|r| r.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
            interfaces: Vec::new(),
        });
    }
    // Systems, not interfaces: an interface its system's inventory lists
    // is shown under the system and not counted on its own.
    let interface_owners = psg_report::interface_owners(
        by_id.values().filter(|r| !r.deleted).map(|r| (r.resource_id.as_str(), r.interface_ids.as_slice())),
    );

    // An alert's messages (raised, reworded, resolved) share its id: the
    // last one says where it stands.
    let mut latest: HashMap<&str, &Alert> = HashMap::new();
    let mut order = Vec::new();
    for a in alerts {
        if latest.insert(a.alert_id.as_str(), a).is_none() {
            order.push(a.alert_id.as_str());
        }
    }
    let alert_entries = order
        .iter()
        .map(|id| latest[id])
        .map(|a| AlertEntry {
            alert_type: a.alert_type.as_str().to_owned(),
            severity: a.severity.as_str().to_owned(),
            resource_id: a.resource_id.clone().unwrap_or_default(),
            title: a.title.clone(),
            description: a.description.clone(),
            alert_id: a.alert_id.clone(),
            pci_requirement: a.pci_requirement.clone().unwrap_or_default(),
            status: a.status.as_str().to_owned(),
            peer: a.context.get("peer").cloned(),
        })
        .collect();

    as_of = as_of.max(edges.as_of);
    let edge_entries = edges
        .totals()
        .into_iter()
        .map(|(service, flows)| {
            let Facts { first, last, encrypted, unencrypted } = edges.facts.get(&service).copied().unwrap_or(Facts {
                first: i64::MIN,
                last: i64::MIN,
                encrypted: 0,
                unencrypted: 0,
            });
            let (source, destination, p, port, action) = service;
            EdgeEntry {
                source,
                destination,
                protocol: protocol(p),
                port,
                action: action.as_str().to_owned(),
                flows,
                violation: false,
                encrypted_flows: encrypted,
                unencrypted_flows: unencrypted,
                first_seen: if first == i64::MIN { String::new() } else { rfc3339(first) },
                last_seen: if last == i64::MIN { String::new() } else { rfc3339(last) },
            }
        })
        .collect();

    let parts = Parts {
        as_of: if as_of == i64::MIN { rfc3339(psg_domain::time::now_micros()) } else { rfc3339(as_of) },
        counts: counts.clone(),
        resources: entries,
        interface_owners,
        alerts: alert_entries,
        edges: edge_entries,
        coverage: coverage_entries(resources, coverage),
    };
    Analysis::build(parts, |cde| reachable_pairs(resources, cde))
}

/// (system, CDE system) → the security-group rules that let the system
/// connect to the CDE system, from the inventory's groups and prefix lists
/// (the same test as classify's rule `reachable`).
fn reachable_pairs(
    resources: &[Resource],
    cde: &std::collections::HashSet<&str>,
) -> BTreeMap<(String, String), Vec<String>> {
    let live: Vec<&Resource> = resources.iter().filter(|r| !r.deleted).collect();
    let mut rules = psg_reach::Rules::default();
    for r in &live {
        if let Some(kind) = psg_classify::engine::policy_kind(r) {
            let cfg = r.metadata_json.as_deref().and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok());
            rules.apply(kind, &r.resource_id, cfg.as_ref(), false);
        }
    }
    let mut out = BTreeMap::new();
    if rules.is_empty() {
        return out;
    }
    let by_id: HashMap<&str, &Resource> = live.iter().map(|r| (r.resource_id.as_str(), *r)).collect();
    let owner_of =
        psg_report::interface_owners(live.iter().map(|r| (r.resource_id.as_str(), r.interface_ids.as_slice())));
    // A system's addresses and groups: its own and its interfaces'.
    let ends: Vec<(&str, Vec<std::net::IpAddr>, Vec<String>)> = live
        .iter()
        .filter(|r| !r.resource_type.is_policy() && !owner_of.contains_key(r.resource_id.as_str()))
        .map(|r| {
            let parts =
                std::iter::once(*r).chain(r.interface_ids.iter().filter_map(|i| by_id.get(i.as_str()).copied()));
            let (mut addresses, mut groups) = (Vec::new(), Vec::new());
            for p in parts {
                addresses.extend(
                    p.private_ips.iter().chain(&p.public_ips).filter_map(|a| a.parse::<std::net::IpAddr>().ok()),
                );
                groups.extend(p.security_groups.iter().cloned());
                rules.subnet_layers(p.subnet_id.as_deref(), &mut groups);
            }
            groups.sort();
            groups.dedup();
            (r.resource_id.as_str(), addresses, groups)
        })
        .collect();
    for (c, ca, cg) in ends.iter().filter(|(id, ..)| cde.contains(id)) {
        for (s, sa, sg) in ends.iter().filter(|(id, ..)| !cde.contains(id)) {
            let allowed = psg_reach::allowed(
                psg_reach::End { addresses: sa, groups: sg },
                psg_reach::End { addresses: ca, groups: cg },
                &rules,
            );
            if !allowed.is_empty() {
                let mut why: Vec<String> = allowed.iter().map(psg_reach::Allowed::describe).collect();
                why.sort();
                why.dedup();
                out.insert(((*s).to_owned(), (*c).to_owned()), why);
            }
        }
    }
    out
}

/// The boundary view's third column: per pair, the segmentation policy's
/// allow rules from the system to the CDE system.
pub(crate) fn policy_column(analysis: &mut Analysis, policy: &psg_classify::policy::Policy, resources: &[Resource]) {
    let live: HashMap<&str, &Resource> =
        resources.iter().filter(|r| !r.deleted).map(|r| (r.resource_id.as_str(), r)).collect();
    // A system's addresses: its own and its interfaces'.
    let addresses = |r: &Resource| -> Vec<std::net::IpAddr> {
        std::iter::once(r)
            .chain(r.interface_ids.iter().filter_map(|i| live.get(i.as_str()).copied()))
            .flat_map(|x| x.private_ips.iter().chain(&x.public_ips))
            .filter_map(|a| a.parse().ok())
            .collect()
    };
    for b in &mut analysis.boundary {
        let (Some(s), Some(c)) = (live.get(b.system.as_str()), live.get(b.cde_system.as_str())) else { continue };
        let (sa, ca) = (addresses(s), addresses(c));
        b.allowed_by_policy = Some(policy.allowed_between(&subject(s, &sa), &subject(c, &ca)));
    }
}

fn subject<'a>(r: &'a Resource, addresses: &'a [std::net::IpAddr]) -> psg_classify::policy::Subject<'a> {
    psg_classify::policy::Subject {
        resource_id: &r.resource_id,
        tags: &r.tags,
        vpc_id: r.vpc_id.as_deref(),
        addresses,
        external: false,
    }
}

/// Flow-log coverage per network: the systems the inventory places in it,
/// and what its units' records showed (the units' partitions merged).
fn coverage_entries(resources: &[Resource], coverage: &[FlowCoverage]) -> Vec<CoverageEntry> {
    let live: Vec<&Resource> = resources.iter().filter(|r| !r.deleted).collect();
    let owner_of =
        psg_report::interface_owners(live.iter().map(|r| (r.resource_id.as_str(), r.interface_ids.as_slice())));
    let by_id: HashMap<&str, &Resource> = live.iter().map(|r| (r.resource_id.as_str(), *r)).collect();
    let mut nets: BTreeMap<(String, String), CoverageEntry> = BTreeMap::new();
    fn net<'a>(
        nets: &'a mut BTreeMap<(String, String), CoverageEntry>,
        provider: &str,
        network: &str,
    ) -> &'a mut CoverageEntry {
        nets.entry((provider.to_owned(), network.to_owned())).or_insert_with(|| CoverageEntry {
            provider: provider.to_owned(),
            network: network.to_owned(),
            traffic: "none".to_owned(),
            ..CoverageEntry::default()
        })
    }
    for r in &live {
        if owner_of.contains_key(r.resource_id.as_str()) || r.resource_type.is_policy() {
            continue; // an interface (counted with its system), or firewall rules
        }
        // Its network: its own, else its first interface's (an Azure VM's NIC).
        let vpc = std::iter::once(*r)
            .chain(r.interface_ids.iter().filter_map(|i| by_id.get(i.as_str()).copied()))
            .find_map(|x| x.vpc_id.as_deref().filter(|v| !v.is_empty()));
        if let Some(vpc) = vpc {
            net(&mut nets, r.provider.as_str(), vpc).systems += 1;
        }
    }
    // Flow logs the inventory configures, by the network of what they log.
    for r in live.iter().filter(|r| r.resource_type == psg_domain::ResourceType::FlowLog) {
        let Some(c) = psg_classify::engine::FlowLogConfig::parse(r) else { continue };
        let target = c.target.as_str();
        // Its network: its own, else that of what it logs (an interface, a
        // subnet, an NSG's first NIC).
        let network = r.vpc_id.clone().or_else(|| {
            let logged = by_id.get(target).copied().or_else(|| {
                live.iter()
                    .find(|x| {
                        x.subnet_id.as_deref() == Some(target)
                            || x.security_groups.iter().any(|g| g == target)
                            || x.interface_ids.iter().any(|i| i == target)
                    })
                    .copied()
            })?;
            logged.vpc_id.clone()
        });
        if let Some(network) = network {
            let e = net(&mut nets, r.provider.as_str(), &network);
            e.flow_logs.push(c.describe());
        }
    }
    // One unit: its partitions merged (first and last, counts added, gaps).
    let mut units: BTreeMap<&str, Vec<&FlowCoverage>> = BTreeMap::new();
    for c in coverage {
        units.entry(c.unit.as_str()).or_default().push(c);
    }
    for (unit, views) in units {
        // The latest message per partition holds that partition's totals.
        let mut latest: BTreeMap<i32, &FlowCoverage> = BTreeMap::new();
        for v in views {
            let keep = latest.get(&v.partition).is_none_or(|l| l.records <= v.records);
            if keep {
                latest.insert(v.partition, v);
            }
        }
        let any = latest.values().next().copied().expect("a unit has a message");
        let placed = any.vpc_id.clone().or_else(|| {
            let r = by_id.get(unit).or_else(|| owner_of.get(unit).and_then(|o| by_id.get(o.as_str())))?;
            r.vpc_id.clone()
        });
        let network = placed.unwrap_or_else(|| "unplaced".to_owned());
        let e = net(&mut nets, any.provider.as_str(), &network);
        e.units += 1;
        for v in latest.values() {
            e.records += v.records;
            e.gaps += v.gaps.len();
            e.skipped += v.skipped;
            let first = rfc3339(v.first_seen);
            let last = rfc3339(v.last_seen);
            if e.first_record.is_empty() || first < e.first_record {
                e.first_record = first;
            }
            if last > e.last_record {
                e.last_record = last;
            }
            e.accepted += v.accepted;
            e.rejected += v.rejected;
            e.no_data += v.no_data;
        }
    }
    let mut out: Vec<CoverageEntry> = nets.into_values().collect();
    for e in &mut out {
        e.traffic = match (e.accepted > 0, e.rejected > 0, e.no_data > 0) {
            (true, true, _) => "accepted and rejected",
            (true, false, _) => "accepted only",
            (false, true, _) => "rejected only",
            (false, false, true) => "no traffic (NODATA only)",
            (false, false, false) if e.records > 0 => "records lost (SKIPDATA only)",
            (false, false, false) => "none",
        }
        .to_owned();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_batch_tells_its_length_and_its_source() {
        let record = psg_domain::FlowRecord::new(
            psg_domain::CloudProvider::Aws,
            psg_domain::FlowFormat::AwsVpc,
            psg_domain::SourceRef { topic: "flowlogs.raw".into(), partition: 0, offset: 0, line: 1 },
            0,
            0,
        );
        for n in [0, 1, 63, 64, 5000] {
            let batch = psg_domain::FlowBatch { records: vec![record.clone(); n] };
            let bytes = psg_avro_codec::encode(&batch).expect("encode");
            assert_eq!(flow_batch_len(&bytes), Some(n as u64), "{n} records");
        }
        assert_eq!(source_of(b"flowlogs.raw/2/17"), Some(("flowlogs.raw".into(), 2, 17)));
        assert_eq!(source_of(b"a/b/c"), None);
    }
}
