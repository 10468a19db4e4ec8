//! Event-time tumbling windows that condense flow observations into edges.
//!
//! - A window `[start, start + size)` collects the observations whose event
//!   time (the record's end time) falls in it, per [`EdgeKey`].
//! - Per input partition, the watermark is the highest event time seen minus
//!   the allowed lateness; a window closes when its end is at or before it,
//!   never on the wall clock, so a replay gives the same edges as the live
//!   stream did.
//! - The first observation of an edge key ever is reported at once
//!   ([`Added::FirstSeen`]) so classify can alert within a second; the
//!   aggregate follows when the window closes.
//! - The same flow reported at both ends (AWS logs it at each interface, GCP
//!   at both VMs, Azure at both NICs) counts once: inside a window, each
//!   connection (addresses and ports) keeps its counts per reporter, and the
//!   edge counts the largest reporter's.
//! - An observation for a window that has already closed is late: it is
//!   counted, and reported at once as its own edge ([`Added::Late`]) so the
//!   graph and `data_flows` still see it; the closed window is not reopened.
//! - For at-least-once delivery, each open window remembers the lowest
//!   input offset per partition that contributed to it: offsets are not
//!   committed past the oldest open window ([`Windows::held_offsets`]).
//! - A connection is established only if every report of it accepted it.
//!   The two ends capture independently, so their reports of one flow can
//!   be up to an aggregation interval apart (the match tolerance) and come
//!   in either order: a `REJECT` blocks the same connection (addresses,
//!   ports, protocol) reported `ACCEPT` within the tolerance, before or
//!   after it. Rejections are remembered, and accepted connections (as
//!   hashes), for the retention: the lateness plus the tolerance, or the
//!   whole of a bounded input. A later `ACCEPT` of a rejected connection
//!   counts as blocked; a later `REJECT` moves the accepted counts of its
//!   connection in open windows to the edge's blocked (`REJECT`) twin, and
//!   an edge key with no accepted connection left is withdrawn
//!   ([`Windows::take_withdrawn`]), its windows open or closed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

use psg_domain::time::Micros;
use psg_domain::{EdgeDirection, EdgeKind, FlowAction};

use crate::attribution::EndpointId;

/// Fast hash maps with a random seed (foldhash).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// Whether a flow record is the response half of a connection: TCP, UDP or
/// SCTP from a service port to a client's ephemeral port. Flow logs record
/// each direction of a connection as its own record; a response is counted
/// with the connection it answers (client → server, the service's port), so
/// that edges carry services, not ephemeral ports.
///
/// A port below 1024 is a service port facing a port of 1024 or more;
/// between two unprivileged ports, one below 32768 (registered range) facing
/// one of 32768 or more (the ephemeral ranges of Linux, Windows and the
/// IANA) is the service.
pub fn is_response(protocol: i32, src_port: i32, dst_port: i32) -> bool {
    if !matches!(protocol, 6 | 17 | 132) || src_port <= 0 || dst_port <= 0 {
        return false;
    }
    (src_port < 1024 && dst_port >= 1024) || ((1024..32_768).contains(&src_port) && dst_port >= 32_768)
}

/// What makes two observations the same edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey {
    pub src: EndpointId,
    pub dst: EndpointId,
    pub protocol: i32,
    pub dst_port: i32,
    pub action: FlowAction,
}

/// One connection: what both ends report alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Connection {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: i32,
    pub dst_port: i32,
}

/// Whether a record's traffic was seen encrypted in transit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encryption {
    #[default]
    Unknown,
    Encrypted,
    Unencrypted,
}

/// What the records of a connection or an edge said besides their counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Facts {
    /// Records seen encrypted, and unencrypted (the rest: unknown).
    encrypted: i64,
    unencrypted: i64,
    /// Records whose format logged the action (the others were counted
    /// as accepted).
    action_logged: i64,
}

impl Facts {
    /// One record's.
    fn of(o: &Observation) -> Self {
        let (encrypted, unencrypted) = match o.encryption {
            Encryption::Unknown => (0, 0),
            Encryption::Encrypted => (1, 0),
            Encryption::Unencrypted => (0, 1),
        };
        Self { encrypted, unencrypted, action_logged: i64::from(o.action_logged) }
    }

    fn add(&mut self, other: Self) {
        self.encrypted += other.encrypted;
        self.unencrypted += other.unencrypted;
        self.action_logged += other.action_logged;
    }

    fn sub(&mut self, other: Self) {
        self.encrypted -= other.encrypted;
        self.unencrypted -= other.unencrypted;
        self.action_logged -= other.action_logged;
    }
}

/// One attributed flow record.
#[derive(Debug, Clone)]
pub struct Observation {
    pub key: EdgeKey,
    pub connection: Connection,
    /// Who reported it (interface, reporting VM, ...), hashed.
    pub reporter: u64,
    pub direction: EdgeDirection,
    pub event_time: Micros,
    pub packets: i64,
    pub bytes: i64,
    pub encryption: Encryption,
    /// Whether the record's format logged its action (`false`: a layout
    /// without `action`, counted as accepted).
    pub action_logged: bool,
    /// Input position, for offset holding and the ids of late edges.
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub line: i32,
}

/// The counts of one connection in a window, per reporter, and when it
/// was seen.
#[derive(Debug, Clone)]
struct Reports {
    first: (u64, i64, i64),
    more: Vec<(u64, i64, i64)>,
    seen: (Micros, Micros),
    facts: Facts,
}

impl Reports {
    fn new(reporter: u64, t: Micros) -> Self {
        Self { first: (reporter, 0, 0), more: Vec::new(), seen: (t, t), facts: Facts::default() }
    }

    fn reporters(&self) -> impl Iterator<Item = &(u64, i64, i64)> {
        std::iter::once(&self.first).chain(self.more.iter())
    }

    fn max(&self) -> (i64, i64) {
        let mut best = (self.first.1, self.first.2);
        for r in &self.more {
            if (r.1, r.2) > best {
                best = (r.1, r.2);
            }
        }
        best
    }

    fn add(&mut self, reporter: u64, packets: i64, bytes: i64) {
        let slot = if self.first.0 == reporter {
            &mut self.first
        } else if let Some(r) = self.more.iter_mut().find(|r| r.0 == reporter) {
            r
        } else {
            self.more.push((reporter, 0, 0));
            let last = self.more.len() - 1;
            &mut self.more[last]
        };
        slot.1 = slot.1.saturating_add(packets);
        slot.2 = slot.2.saturating_add(bytes);
    }
}

impl Agg {
    /// Counts `reports` of `connection` in (merging per reporter); keeps the
    /// totals equal to the sum over connections of the largest reporter's.
    fn merge(&mut self, connection: Connection, reports: &Reports) {
        let into = self.connections.entry(connection).or_insert_with(|| Reports::new(reports.first.0, reports.seen.0));
        let (p0, b0) = into.max();
        for &(reporter, packets, bytes) in reports.reporters() {
            into.add(reporter, packets, bytes);
        }
        into.seen = (into.seen.0.min(reports.seen.0), into.seen.1.max(reports.seen.1));
        into.facts.add(reports.facts);
        self.facts.add(reports.facts);
        let (p1, b1) = into.max();
        self.packets = self.packets.saturating_add(p1 - p0);
        self.bytes = self.bytes.saturating_add(b1 - b0);
        self.first_seen = self.first_seen.min(reports.seen.0);
        self.last_seen = self.last_seen.max(reports.seen.1);
    }

    /// Takes `connection` out; the times are those of what remains.
    fn remove(&mut self, connection: &Connection) -> Option<Reports> {
        let reports = self.connections.remove(connection)?;
        self.facts.sub(reports.facts);
        let (p, b) = reports.max();
        self.packets = self.packets.saturating_sub(p);
        self.bytes = self.bytes.saturating_sub(b);
        if let Some(first) = self.connections.values().map(|r| r.seen.0).min() {
            self.first_seen = first;
            self.last_seen = self.connections.values().map(|r| r.seen.1).max().unwrap_or(first);
        }
        Some(reports)
    }
}

#[derive(Debug, Clone)]
struct Agg {
    src_addr: IpAddr,
    dst_addr: IpAddr,
    direction: EdgeDirection,
    packets: i64,
    bytes: i64,
    first_seen: Micros,
    last_seen: Micros,
    facts: Facts,
    connections: FastMap<Connection, Reports>,
}

/// An edge in a window, as the windows see it (ids not yet resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowEdge {
    pub kind: EdgeKind,
    pub key: EdgeKey,
    pub src_addr: IpAddr,
    pub dst_addr: IpAddr,
    pub direction: EdgeDirection,
    pub window_start: Micros,
    pub window_end: Micros,
    pub first_seen: Micros,
    pub last_seen: Micros,
    /// The input partition whose records this edge counts: each instance of
    /// a consumer group counts its own partitions, so one edge in one window
    /// may come from several partitions (a resource with several addresses)
    /// as separate partial edges, never as two different totals of one id.
    pub partition: i32,
    pub packets: i64,
    pub bytes: i64,
    /// Distinct connections condensed into this edge.
    pub flows: i64,
    /// Records seen encrypted, and unencrypted (the rest: unknown).
    pub encrypted: i64,
    pub unencrypted: i64,
    /// Whether any record of it logged its action: `false` when every one
    /// came from a format without `action` and was counted as accepted.
    pub action_logged: bool,
    /// For late edges: the input record they come from (their own id).
    pub late_source: Option<(Arc<str>, i32, i64, i32)>,
}

/// What [`Windows::add`] did with an observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Added {
    /// Never seen before: emit this edge now.
    FirstSeen(WindowEdge),
    /// Added to its open window.
    Aggregated,
    /// Its window had closed: emit this one-record edge now.
    Late(WindowEdge),
}

/// (partition, connection, protocol): one connection as both ends report it.
type ConnKey = (i32, Connection, i32);

/// One open window of one input partition.
#[derive(Debug)]
struct Open {
    topic: Arc<str>,
    /// Lowest input offset that contributed (offsets are held below it).
    min_offset: i64,
    edges: FastMap<EdgeKey, Agg>,
}

/// The open windows and what has been seen.
///
/// Event time is kept per input partition: each partition has its own
/// watermark, windows and held offsets. A partition's records always come in
/// the same order, so reading it again from its committed offset (after a
/// restart or a rebalance) puts every record in the same window, or makes it
/// late, exactly as the first time; with one watermark over all partitions,
/// the order in which a backlog of several partitions is fetched would decide
/// that, and a record could be counted in a window and again as late. A
/// partition that receives nothing keeps its windows open (their offsets
/// uncommitted) until it does.
#[derive(Debug)]
pub struct Windows {
    size: Micros,
    lateness: Micros,
    /// Highest event time seen per input partition.
    max_event: BTreeMap<i32, Micros>,
    open: BTreeMap<(i32, Micros), Open>,
    seen: FastSet<EdgeKey>,
    /// The (window, edge) pairs changed since the last drain; `None` when
    /// nobody writes rows of open windows (no database).
    touched: Option<FastSet<(Micros, i32, EdgeKey)>>,
    late: u64,
    /// How far apart two reports of one connection may be (and how long a
    /// window stays open past its end).
    tolerance: Micros,
    /// Connections some report rejected: earliest and latest such report.
    blocked: FastMap<ConnKey, (Micros, Micros)>,
    /// Per accepted edge key, its distinct accepted connections (at zero,
    /// every one was blocked, and the key is withdrawn), and the earliest
    /// event time one was reported.
    accepted: FastMap<EdgeKey, (u64, Micros)>,
    /// The accepted connections counted in `accepted`, as hashes of their
    /// [`ConnKey`], remembered for `retention` of event time (then a block
    /// cannot reach them): [current generation, previous one].
    /// Each with the first and last second (Unix time) it was reported.
    accepted_conns: [FastMap<u64, (u32, u32)>; 2],
    conn_hasher: foldhash::fast::RandomState,
    /// The watermark when the current generation began.
    generation_at: Micros,
    retention: Micros,
    /// Accepted edge keys withdrawn since the last take.
    withdrawn: Vec<WindowEdge>,
    /// Open (window, edge) rows emptied since the last drain (their rows,
    /// if written, are deleted).
    vacated: Vec<WindowEdge>,
    /// Accepted reports counted as blocked.
    blocked_reports: u64,
}

impl Windows {
    pub fn new(size: Micros, lateness: Micros) -> Self {
        assert!(size > 0, "window size must be positive");
        Self {
            size,
            lateness: lateness.max(0),
            max_event: BTreeMap::new(),
            open: BTreeMap::new(),
            seen: FastSet::default(),
            touched: Some(FastSet::default()),
            late: 0,
            tolerance: 0,
            blocked: FastMap::default(),
            accepted: FastMap::default(),
            accepted_conns: [FastMap::default(), FastMap::default()],
            conn_hasher: foldhash::fast::RandomState::default(),
            generation_at: Micros::MIN,
            retention: Micros::MAX,
            withdrawn: Vec::new(),
            vacated: Vec::new(),
            blocked_reports: 0,
        }
    }

    /// Sets the match tolerance: how far apart (event time) two reports of
    /// one connection may be and still decide it together.
    pub fn with_tolerance(mut self, tolerance: Micros) -> Self {
        self.tolerance = tolerance.max(0);
        self
    }

    /// How long (event time, behind the watermark) an accepted connection
    /// is remembered, so that a rejecting report arriving later, even after
    /// its window closed, withdraws it. Unbounded by default (a bounded
    /// input); a service sets its lateness and tolerance.
    pub fn with_retention(mut self, retention: Micros) -> Self {
        self.set_retention(retention);
        self
    }

    /// As [`Windows::with_retention`], `Micros::MAX` for unbounded.
    pub fn set_retention(&mut self, retention: Micros) {
        self.retention = retention.max(self.size);
    }

    /// Counts an accepted connection under its key, once.
    fn count_accepted(&mut self, o: &Observation) {
        let h = self.conn_hasher.hash_one((o.partition, o.connection, o.key.protocol));
        let s = seconds(o.event_time);
        let [current, previous] = &mut self.accepted_conns;
        let slot = match previous.get_mut(&h) {
            Some(slot) => slot,
            None => match current.entry(h) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let n = self.accepted.entry(o.key).or_insert((0, o.event_time));
                    *n = (n.0 + 1, n.1.min(o.event_time));
                    e.insert((s, s))
                }
            },
        };
        *slot = (slot.0.min(s), slot.1.max(s));
    }

    /// Accepted reports counted as blocked because the other end rejected
    /// the connection.
    pub fn blocked_reports(&self) -> u64 {
        self.blocked_reports
    }

    /// The accepted edge keys that have no accepted connection left (every
    /// accepted report of them was blocked), since the last call.
    pub fn take_withdrawn(&mut self) -> Vec<WindowEdge> {
        std::mem::take(&mut self.withdrawn)
    }

    /// Open (window, edge) rows emptied since the last call: a row written
    /// for them is no longer true.
    pub fn take_vacated(&mut self) -> Vec<WindowEdge> {
        std::mem::take(&mut self.vacated)
    }

    /// Whether a window starting at `start` has closed at watermark `w`.
    fn closed_at(&self, start: Micros, w: Micros) -> bool {
        start.saturating_add(self.size) <= w
    }

    /// Stops keeping which windows changed ([`Windows::drain_touched`]
    /// returns nothing then): without a database only closed windows count.
    pub fn without_touched(mut self) -> Self {
        self.touched = None;
        self
    }

    /// The lowest partition watermark (highest event time of the partition
    /// minus the allowed lateness): every window before it is closed.
    pub fn watermark(&self) -> Option<Micros> {
        self.max_event.values().min().map(|t| t.saturating_sub(self.lateness))
    }

    fn partition_watermark(&self, partition: i32) -> Option<Micros> {
        self.max_event.get(&partition).map(|t| t.saturating_sub(self.lateness))
    }

    /// Highest event time seen in any partition.
    pub fn max_event_time(&self) -> Option<Micros> {
        self.max_event.values().max().copied()
    }

    /// Highest event time seen in `partition`.
    pub fn partition_max_event(&self, partition: i32) -> Option<Micros> {
        self.max_event.get(&partition).copied()
    }

    /// Moves `partition`'s event time on to `t` (never back): restoring a
    /// checkpoint, or an idle partition advancing with processing time.
    /// Windows it passes close at the next [`Windows::close_ready`].
    pub fn advance(&mut self, partition: i32, t: Micros) {
        let m = self.max_event.entry(partition).or_insert(t);
        *m = (*m).max(t);
    }

    /// Whether the window of event time `t` in `partition` has closed (an
    /// observation of it would be late).
    pub fn is_closed(&self, partition: i32, t: Micros) -> bool {
        self.partition_watermark(partition).is_some_and(|w| self.closed_at(self.window_start(t), w))
    }

    /// Whether `partition` has windows open.
    pub fn has_open(&self, partition: i32) -> bool {
        self.open.range((partition, Micros::MIN)..=(partition, Micros::MAX)).next().is_some()
    }

    /// Late observations so far.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// The start of the window holding event time `t`.
    pub fn window_start(&self, t: Micros) -> Micros {
        t.div_euclid(self.size) * self.size
    }

    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// Adds one observation.
    pub fn add(&mut self, mut o: Observation) -> Added {
        let start = self.window_start(o.event_time);
        match o.key.action {
            FlowAction::Reject => self.block(&o),
            FlowAction::Accept if !self.blocked.is_empty() => {
                let ck = (o.partition, o.connection, o.key.protocol);
                if self.blocked.get(&ck).is_some_and(|&(lo, hi)| {
                    o.event_time >= lo.saturating_sub(self.tolerance)
                        && o.event_time <= hi.saturating_add(self.tolerance)
                }) {
                    o.key.action = FlowAction::Reject;
                    self.blocked_reports += 1;
                }
            }
            FlowAction::Accept => {}
        }
        if o.key.action == FlowAction::Accept {
            self.count_accepted(&o);
        }
        if self.partition_watermark(o.partition).is_some_and(|w| self.closed_at(start, w)) {
            self.late += 1;
            self.seen.insert(o.key);
            let (a, z) = (o.connection.src, o.connection.dst);
            return Added::Late(WindowEdge {
                kind: EdgeKind::Window,
                key: o.key,
                src_addr: a,
                dst_addr: z,
                direction: o.direction,
                window_start: start,
                window_end: start + self.size,
                first_seen: o.event_time,
                last_seen: o.event_time,
                partition: o.partition,
                packets: o.packets,
                bytes: o.bytes,
                flows: 1,
                encrypted: Facts::of(&o).encrypted,
                unencrypted: Facts::of(&o).unencrypted,
                action_logged: o.action_logged,
                late_source: Some((o.topic, o.partition, o.offset, o.line)),
            });
        }
        let m = self.max_event.entry(o.partition).or_insert(o.event_time);
        *m = (*m).max(o.event_time);
        let window = self.open.entry((o.partition, start)).or_insert_with(|| Open {
            topic: Arc::clone(&o.topic),
            min_offset: o.offset,
            edges: FastMap::default(),
        });
        window.min_offset = window.min_offset.min(o.offset);
        let agg = window.edges.entry(o.key).or_insert_with(|| Agg {
            src_addr: o.connection.src,
            dst_addr: o.connection.dst,
            direction: o.direction,
            packets: 0,
            bytes: 0,
            first_seen: o.event_time,
            last_seen: o.event_time,
            facts: Facts::default(),
            connections: FastMap::default(),
        });
        let reports = agg.connections.entry(o.connection).or_insert_with(|| Reports::new(o.reporter, o.event_time));
        reports.seen = (reports.seen.0.min(o.event_time), reports.seen.1.max(o.event_time));
        let facts = Facts::of(&o);
        reports.facts.add(facts);
        agg.facts.add(facts);
        let (p0, b0) = reports.max();
        reports.add(o.reporter, o.packets, o.bytes);
        let (p1, b1) = reports.max();
        agg.packets = agg.packets.saturating_add(p1 - p0);
        agg.bytes = agg.bytes.saturating_add(b1 - b0);
        agg.first_seen = agg.first_seen.min(o.event_time);
        agg.last_seen = agg.last_seen.max(o.event_time);
        if let Some(touched) = &mut self.touched {
            touched.insert((start, o.partition, o.key));
        }
        if self.seen.insert(o.key) {
            Added::FirstSeen(edge(self.size, start, o.partition, &o.key, agg, EdgeKind::FirstSeen))
        } else {
            Added::Aggregated
        }
    }

    /// A report rejected `o`'s connection: remembers it, moves the
    /// accepted reports of the connection within the tolerance, in open
    /// windows, to the blocked edge, and withdraws the accepted edge key if
    /// this was its last accepted connection.
    fn block(&mut self, o: &Observation) {
        let ck = (o.partition, o.connection, o.key.protocol);
        let t = o.event_time;
        let e = self.blocked.entry(ck).or_insert((t, t));
        *e = (e.0.min(t), e.1.max(t));
        let accept_key = EdgeKey { action: FlowAction::Accept, ..o.key };
        if !self.accepted.contains_key(&accept_key) {
            return;
        }
        let lo = self.window_start(t.saturating_sub(self.tolerance));
        let hi = self.window_start(t.saturating_add(self.tolerance));
        let mut moved = false;
        let mut last_vacated = None;
        for (&(partition, start), window) in self.open.range_mut((o.partition, lo)..=(o.partition, hi)) {
            let Some(agg) = window.edges.get_mut(&accept_key) else { continue };
            let Some(reports) = agg.remove(&o.connection) else { continue };
            moved = true;
            let emptied = agg
                .connections
                .is_empty()
                .then(|| edge(self.size, start, partition, &accept_key, agg, EdgeKind::Withdrawn));
            let (src_addr, dst_addr, direction) = (agg.src_addr, agg.dst_addr, agg.direction);
            let blocked = window.edges.entry(o.key).or_insert_with(|| Agg {
                src_addr,
                dst_addr,
                direction,
                packets: 0,
                bytes: 0,
                first_seen: reports.seen.0,
                last_seen: reports.seen.1,
                facts: Facts::default(),
                connections: FastMap::default(),
            });
            blocked.merge(o.connection, &reports);
            if let Some(touched) = &mut self.touched {
                touched.insert((start, partition, o.key));
                touched.insert((start, partition, accept_key));
            }
            if let Some(gone) = emptied {
                window.edges.remove(&accept_key);
                if self.touched.is_some() {
                    self.vacated.push(gone.clone());
                }
                last_vacated = Some(gone);
            }
        }
        // The connection, if counted as accepted (in a window open or
        // closed), no longer is.
        let h = self.conn_hasher.hash_one(ck);
        let (s, tol) = (seconds(t), seconds(self.tolerance));
        let near = |&(lo, hi): &(u32, u32)| s >= lo.saturating_sub(tol) && s <= hi.saturating_add(tol);
        let counted = self.accepted_conns.iter_mut().any(|g| g.get(&h).is_some_and(near) && g.remove(&h).is_some());
        if counted || moved {
            self.blocked_reports += 1;
        }
        if !counted {
            return;
        }
        let Some(n) = self.accepted.get_mut(&accept_key) else { return };
        n.0 = n.0.saturating_sub(1);
        if n.0 == 0 {
            let first = n.1;
            self.accepted.remove(&accept_key);
            let start = self.window_start(t);
            let mut gone = last_vacated.unwrap_or_else(|| WindowEdge {
                kind: EdgeKind::Withdrawn,
                key: accept_key,
                src_addr: o.connection.src,
                dst_addr: o.connection.dst,
                direction: o.direction,
                window_start: start,
                window_end: start + self.size,
                first_seen: t,
                last_seen: t,
                partition: o.partition,
                packets: 0,
                bytes: 0,
                flows: 0,
                encrypted: 0,
                unencrypted: 0,
                action_logged: true,
                late_source: None,
            });
            // Since when its rows (of this run) are withdrawn.
            gone.first_seen = first;
            self.withdrawn.push(gone);
        }
    }

    /// Once per retention of watermark: forgets what is older.
    fn prune_blocked(&mut self) {
        let Some(w) = self.watermark() else { return };
        if self.retention == Micros::MAX || w.saturating_sub(self.generation_at) < self.retention {
            return;
        }
        // Accepted connections older than the retention are forgotten
        // (they stay counted: a block can no longer withdraw them), and so
        // are rejections no report can still be matched with.
        self.accepted_conns.swap(0, 1);
        self.accepted_conns[0].clear();
        self.generation_at = w;
        let cut = w.saturating_sub(self.retention);
        self.blocked.retain(|_, (_, hi)| *hi >= cut);
    }

    /// Closes every window its partition's watermark has passed; returns
    /// their edges (ordered by window, then key, then partition: deterministic).
    pub fn close_ready(&mut self) -> Vec<WindowEdge> {
        self.prune_blocked();
        let ready: Vec<(i32, Micros)> = self
            .open
            .keys()
            .filter(|(p, start)| self.partition_watermark(*p).is_some_and(|w| self.closed_at(*start, w)))
            .copied()
            .collect();
        let mut out = Vec::new();
        for k in ready {
            if let Some(window) = self.open.remove(&k) {
                out.extend(window.edges.iter().map(|(key, a)| edge(self.size, k.1, k.0, key, a, EdgeKind::Window)));
            }
        }
        out.sort_by_key(|e| (e.window_start, e.key, e.partition));
        out
    }

    /// The current aggregate of every (window, edge) changed since the last
    /// call that is still open (for `data_flows`: absolute counts, so writing
    /// a window twice keeps the latest).
    pub fn drain_touched(&mut self) -> Vec<WindowEdge> {
        let Some(touched) = &mut self.touched else { return Vec::new() };
        let mut out = Vec::with_capacity(touched.len());
        for (start, partition, key) in touched.drain() {
            if let Some(agg) = self.open.get(&(partition, start)).and_then(|w| w.edges.get(&key)) {
                out.push(edge(self.size, start, partition, &key, agg, EdgeKind::Window));
            }
        }
        out
    }

    /// Forgets every open window and every watermark, as after a restart:
    /// the consumer group revoked this instance's partitions, and they are
    /// read again from their committed offsets, which no open window's record
    /// precedes. Returns how many partial edges were dropped. First sightings
    /// are remembered (a second first-seen edge would only repeat one).
    pub fn reset(&mut self) -> usize {
        let dropped = self.open.values().map(|w| w.edges.len()).sum();
        // Accepted connections stay counted (by hash): read again, they are
        // recognised.
        self.open.clear();
        self.withdrawn.clear();
        self.vacated.clear();
        if let Some(touched) = &mut self.touched {
            touched.clear();
        }
        self.max_event.clear();
        dropped
    }

    /// Per input partition, the lowest offset that contributed to a window
    /// still open.
    pub fn held_offsets(&self) -> Vec<(String, i32, i64)> {
        let mut min: BTreeMap<(i32, &Arc<str>), i64> = BTreeMap::new();
        for ((p, _), w) in &self.open {
            let e = min.entry((*p, &w.topic)).or_insert(w.min_offset);
            *e = (*e).min(w.min_offset);
        }
        min.into_iter().map(|((p, t), o)| (t.to_string(), p, o)).collect()
    }
}

/// Event time in whole seconds of Unix time, saturating into `u32`.
fn seconds(t: Micros) -> u32 {
    u32::try_from(t.div_euclid(psg_domain::time::SECOND).max(0)).unwrap_or(u32::MAX)
}

fn edge(size: Micros, start: Micros, partition: i32, key: &EdgeKey, agg: &Agg, kind: EdgeKind) -> WindowEdge {
    WindowEdge {
        kind,
        key: *key,
        src_addr: agg.src_addr,
        dst_addr: agg.dst_addr,
        direction: agg.direction,
        window_start: start,
        window_end: start + size,
        first_seen: agg.first_seen,
        last_seen: agg.last_seen,
        partition,
        packets: agg.packets,
        bytes: agg.bytes,
        flows: agg.connections.len() as i64,
        encrypted: agg.facts.encrypted,
        unencrypted: agg.facts.unencrypted,
        action_logged: agg.facts.action_logged > 0 || agg.connections.is_empty(),
        late_source: None,
    }
}

#[cfg(test)]
mod response_tests {
    use super::is_response;

    #[test]
    fn responses_are_recognised_by_their_ports() {
        assert!(is_response(6, 443, 51234), "HTTPS answer to an ephemeral port");
        assert!(is_response(6, 5432, 44377), "PostgreSQL answer");
        assert!(is_response(17, 53, 3000), "DNS answer to a registered client port");
        assert!(!is_response(6, 51234, 443), "the request");
        assert!(!is_response(6, 44377, 5432));
        assert!(!is_response(6, 40000, 50000), "two ephemeral ports: keep as recorded");
        assert!(!is_response(6, 80, 443), "two service ports: keep as recorded");
        assert!(!is_response(1, 0, 0), "ICMP has no ports");
        assert!(!is_response(6, 0, 51234), "a missing port decides nothing");
    }
}

#[cfg(test)]
mod tests {
    use psg_domain::time::SECOND;

    use super::*;

    fn obs(src: EndpointId, dst: EndpointId, t: i64, offset: i64) -> Observation {
        Observation {
            key: EdgeKey { src, dst, protocol: 6, dst_port: 5432, action: FlowAction::Accept },
            connection: Connection {
                src: "10.0.0.1".parse().unwrap(),
                dst: "10.0.0.2".parse().unwrap(),
                src_port: 40000 + offset as i32,
                dst_port: 5432,
            },
            reporter: 1,
            direction: EdgeDirection::IntraVpc,
            event_time: t * SECOND,
            packets: 10,
            bytes: 1000,
            encryption: Encryption::Unknown,
            action_logged: true,
            topic: Arc::from("flows.normalized"),
            partition: 0,
            offset,
            line: 1,
        }
    }

    #[test]
    fn first_seen_at_once_aggregate_at_close() {
        let mut w = Windows::new(60 * SECOND, 30 * SECOND);
        assert!(
            matches!(w.add(obs(1, 2, 61, 1)), Added::FirstSeen(ref e) if e.flows == 1 && e.window_start == 60 * SECOND)
        );
        assert_eq!(w.add(obs(1, 2, 90, 2)), Added::Aggregated);
        assert!(w.close_ready().is_empty(), "watermark 60 has not passed 120");
        assert_eq!(w.held_offsets(), vec![("flows.normalized".to_owned(), 0, 1)]);
        w.add(obs(3, 4, 151, 3)); // watermark 121: window [60,120) closes
        let closed = w.close_ready();
        assert_eq!(closed.len(), 1);
        let e = &closed[0];
        assert_eq!((e.kind, e.flows, e.packets, e.bytes), (EdgeKind::Window, 2, 20, 2000));
        assert_eq!((e.first_seen, e.last_seen), (61 * SECOND, 90 * SECOND));
        assert_eq!(w.held_offsets(), vec![("flows.normalized".to_owned(), 0, 3)]);
    }

    #[test]
    fn window_boundaries_are_half_open() {
        let mut w = Windows::new(60 * SECOND, 0);
        w.add(obs(1, 2, 59, 1));
        w.add(obs(1, 2, 60, 2));
        w.add(obs(5, 6, 120, 3));
        let closed = w.close_ready();
        assert_eq!(closed.len(), 2);
        assert!(closed.iter().all(|e| e.flows == 1));
    }

    #[test]
    fn late_records_do_not_reopen_a_window() {
        let mut w = Windows::new(60 * SECOND, 10 * SECOND);
        w.add(obs(1, 2, 10, 1));
        w.add(obs(1, 2, 200, 2));
        assert_eq!(w.close_ready().len(), 1);
        let Added::Late(e) = w.add(obs(1, 2, 20, 3)) else { panic!("late") };
        assert_eq!((e.window_start, e.flows, e.packets), (0, 1, 10));
        assert_eq!(e.late_source.as_ref().map(|s| s.2), Some(3));
        assert_eq!(w.late(), 1);
        assert!(w.close_ready().is_empty());
    }

    #[test]
    fn the_same_flow_from_both_ends_counts_once() {
        let mut w = Windows::new(60 * SECOND, 0);
        let mut a = obs(1, 2, 10, 1);
        a.reporter = 100; // the source's interface
        let mut b = a.clone();
        b.reporter = 200; // the destination's interface
        b.packets = 9; // it saw one packet fewer
        b.offset = 2;
        w.add(a.clone());
        w.add(b);
        // a second capture interval of the same connection at the source adds up
        let mut a2 = a.clone();
        a2.event_time = 20 * SECOND;
        a2.offset = 3;
        w.add(a2);
        w.add(obs(9, 9, 200, 4));
        let e = &w.close_ready()[0];
        assert_eq!((e.flows, e.packets, e.bytes), (1, 20, 2000), "max over reporters of each reporter's sum");
    }

    /// One connection reported by the source (accepted by its egress rule)
    /// and by the destination, whose ingress rule `accept`s it or not.
    fn ends(t_src: i64, t_dst: i64, accept: bool) -> (Observation, Observation) {
        let mut src = obs(1, 2, t_src, 1);
        src.reporter = 100;
        let mut dst = src.clone();
        dst.reporter = 200;
        dst.event_time = t_dst * SECOND;
        dst.offset = 2;
        if !accept {
            dst.key.action = FlowAction::Reject;
        }
        (src, dst)
    }

    fn closed_by_action(w: &mut Windows) -> Vec<(FlowAction, i64, i64)> {
        w.add(obs(9, 9, 100_000, 99));
        w.close_ready().into_iter().filter(|e| e.key.src == 1).map(|e| (e.key.action, e.flows, e.packets)).collect()
    }

    #[test]
    fn accepted_at_one_end_and_rejected_at_the_other_is_blocked_in_either_order() {
        // Same window, accept first: the first-seen edge is withdrawn.
        let mut w = Windows::new(60 * SECOND, 0).with_tolerance(600 * SECOND);
        let (a, r) = ends(10, 20, false);
        assert!(matches!(w.add(a.clone()), Added::FirstSeen(ref e) if e.key.action == FlowAction::Accept));
        assert!(matches!(w.add(r.clone()), Added::FirstSeen(ref e) if e.key.action == FlowAction::Reject));
        let withdrawn = w.take_withdrawn();
        assert_eq!(withdrawn.len(), 1);
        assert_eq!(
            (withdrawn[0].kind, withdrawn[0].key.action, withdrawn[0].flows),
            (EdgeKind::Withdrawn, FlowAction::Accept, 0)
        );
        assert_eq!(w.blocked_reports(), 1);
        assert_eq!(closed_by_action(&mut w), vec![(FlowAction::Reject, 1, 10)], "one blocked connection");

        // Reject first: the accepted report is counted blocked at once.
        let mut w = Windows::new(60 * SECOND, 0).with_tolerance(600 * SECOND);
        assert!(matches!(w.add(r), Added::FirstSeen(ref e) if e.key.action == FlowAction::Reject));
        assert_eq!(w.add(a), Added::Aggregated, "no accepted edge is announced");
        assert!(w.take_withdrawn().is_empty());
        assert_eq!(closed_by_action(&mut w), vec![(FlowAction::Reject, 1, 10)]);
    }

    #[test]
    fn the_two_reports_match_across_windows_within_the_tolerance_only() {
        for (t_src, t_dst) in [(10, 500), (500, 10)] {
            for accept_first in [true, false] {
                let mut w = Windows::new(60 * SECOND, 0).with_tolerance(600 * SECOND);
                let (a, r) = ends(t_src, t_dst, false);
                let (first, second) = if accept_first { (a, r) } else { (r, a) };
                // Either way both reports count blocked, each in its own
                // window (the earlier-timed one read second is late, an
                // edge of its own).
                let mut edges = Vec::new();
                for o in [first, second] {
                    if let Added::Late(e) = w.add(o) {
                        edges.push((e.key.action, e.flows, e.packets));
                    }
                    edges.extend(w.close_ready().into_iter().map(|e| (e.key.action, e.flows, e.packets)));
                }
                if accept_first {
                    assert_eq!(w.take_withdrawn().len(), 1, "{t_src} {t_dst}");
                }
                edges.extend(closed_by_action(&mut w));
                let ctx = format!("{t_src} {t_dst} {accept_first}: {edges:?}");
                assert_eq!(edges, vec![(FlowAction::Reject, 1, 10); 2], "{ctx}");
            }
        }
        // 20 minutes apart: two different flows, each with its own verdict.
        let mut w = Windows::new(60 * SECOND, 0).with_tolerance(600 * SECOND);
        let (a, r) = ends(10, 1210, false);
        w.add(a);
        w.add(r);
        assert!(w.take_withdrawn().is_empty());
        let mut closed = closed_by_action(&mut w);
        closed.sort_by_key(|c| c.0 == FlowAction::Reject);
        assert_eq!(closed, vec![(FlowAction::Accept, 1, 10), (FlowAction::Reject, 1, 10)]);
    }

    #[test]
    fn a_rejection_read_long_after_the_acceptance_still_withdraws_it() {
        // A bounded input read file after file: the accepting end's file
        // first (its windows close), the rejecting end's an hour later.
        let mut w = Windows::new(60 * SECOND, 0).with_tolerance(600 * SECOND);
        let (a, r) = ends(10, 20, false);
        w.add(a);
        w.add(obs(9, 9, 4000, 50));
        assert!(w.close_ready().iter().any(|e| e.key.src == 1 && e.key.action == FlowAction::Accept));
        let Added::Late(late) = w.add(r.clone()) else { panic!("late") };
        assert_eq!(late.key.action, FlowAction::Reject);
        let withdrawn = w.take_withdrawn();
        assert_eq!(withdrawn.len(), 1, "the accepted edge is withdrawn after its window closed");
        assert_eq!((withdrawn[0].key.action, withdrawn[0].kind), (FlowAction::Accept, EdgeKind::Withdrawn));

        // A service remembers accepted connections for its retention only:
        // beyond it, the acceptance stands.
        let mut w = Windows::new(60 * SECOND, 0).with_tolerance(600 * SECOND).with_retention(1_000 * SECOND);
        w.add(ends(10, 20, false).0);
        w.add(obs(9, 9, 4000, 50));
        w.close_ready();
        w.add(obs(9, 9, 6000, 51));
        w.close_ready();
        w.add(r);
        assert!(w.take_withdrawn().is_empty());
    }

    #[test]
    fn accepted_at_both_ends_is_established() {
        let mut w = Windows::new(60 * SECOND, 0).with_tolerance(600 * SECOND);
        let (a, b) = ends(10, 20, true);
        w.add(a);
        w.add(b);
        assert!(w.take_withdrawn().is_empty());
        assert_eq!(closed_by_action(&mut w), vec![(FlowAction::Accept, 1, 10)]);
    }

    #[test]
    fn an_edge_keeps_its_other_accepted_connections() {
        let mut w = Windows::new(60 * SECOND, 0).with_tolerance(600 * SECOND);
        let (a, r) = ends(10, 20, false);
        let other = obs(1, 2, 30, 7); // another source port, never rejected
        w.add(a);
        w.add(other);
        w.add(r);
        assert!(w.take_withdrawn().is_empty(), "one accepted connection is left");
        let mut closed = closed_by_action(&mut w);
        closed.sort_by_key(|c| c.0 == FlowAction::Reject);
        assert_eq!(closed, vec![(FlowAction::Accept, 1, 10), (FlowAction::Reject, 1, 10)]);
    }

    #[test]
    fn a_window_row_emptied_by_a_block_is_written_with_zero_counts() {
        let mut w = Windows::new(60 * SECOND, 0).with_tolerance(600 * SECOND);
        let (a, r) = ends(10, 20, false);
        w.add(a);
        assert_eq!(w.drain_touched().len(), 1, "the accepted row was written");
        w.add(r);
        let vacated = w.take_vacated();
        assert_eq!(vacated.len(), 1);
        assert_eq!((vacated[0].key.action, vacated[0].flows, vacated[0].packets), (FlowAction::Accept, 0, 0));
        let rows = w.drain_touched();
        assert_eq!(rows.len(), 1, "only the blocked row is still open: {rows:?}");
        assert_eq!(rows[0].key.action, FlowAction::Reject);
    }

    #[test]
    fn touched_rows_carry_absolute_counts() {
        let mut w = Windows::new(60 * SECOND, 0);
        w.add(obs(1, 2, 1, 1));
        w.add(obs(1, 2, 2, 2));
        let rows = w.drain_touched();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].flows, 2);
        assert!(w.drain_touched().is_empty());
        w.add(obs(1, 2, 3, 3));
        assert_eq!(w.drain_touched()[0].flows, 3);
    }
}
