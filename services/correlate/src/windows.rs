//! Event-time tumbling windows that condense flow observations into edges.
//!
//! - A window `[start, start + size)` collects the observations whose event
//!   time (the record's end time) falls in it, per [`EdgeKey`].
//! - The watermark is the highest event time seen minus the allowed
//!   lateness; a window closes when its end is at or before the watermark,
//!   never on the wall clock, so a replay gives the same edges as the live
//!   stream did.
//! - The first observation of an edge key ever is reported at once
//!   ([`Added::FirstSeen`]) so classify can alert within a second; the
//!   aggregate follows when the window closes.
//! - An observation for a window that has already closed is late: it is
//!   counted, and reported at once if its key was never seen, but does not
//!   reopen the window (its row in `data_flows` keeps the closed counts).
//! - For at-least-once delivery, each open window remembers the lowest
//!   input offset per partition that contributed to it: offsets are not
//!   committed past the oldest open window ([`Windows::held_offsets`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use psg_domain::time::Micros;
use psg_domain::{EdgeDirection, EdgeKind, FlowAction, FlowEdge, ids};

use crate::attribution::Attributed;

/// What makes two observations the same edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgeKey {
    pub src: Attributed,
    pub dst: Attributed,
    pub protocol: i32,
    pub dst_port: i32,
    pub action: FlowAction,
}

/// One attributed flow record.
#[derive(Debug, Clone)]
pub struct Observation {
    pub key: EdgeKey,
    pub src_addr: String,
    pub dst_addr: String,
    pub direction: EdgeDirection,
    pub event_time: Micros,
    pub packets: i64,
    pub bytes: i64,
    /// Input position, for offset holding.
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Clone)]
struct Agg {
    src_addr: String,
    dst_addr: String,
    direction: EdgeDirection,
    packets: i64,
    bytes: i64,
    flows: i64,
    first_seen: Micros,
    last_seen: Micros,
}

/// What [`Windows::add`] did with an observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Added {
    /// Never seen before: emit this edge now.
    FirstSeen(FlowEdge),
    /// Added to its open window.
    Aggregated,
    /// Its window had closed; if the key is new, the edge to emit now.
    Late(Option<FlowEdge>),
}

/// The open windows and what has been seen.
#[derive(Debug)]
pub struct Windows {
    size: Micros,
    lateness: Micros,
    max_event_time: Option<Micros>,
    open: BTreeMap<Micros, HashMap<EdgeKey, Agg>>,
    held: BTreeMap<Micros, HashMap<(Arc<str>, i32), i64>>,
    seen: HashSet<EdgeKey>,
    touched: HashSet<(Micros, EdgeKey)>,
}

impl Windows {
    pub fn new(size: Micros, lateness: Micros) -> Self {
        assert!(size > 0, "window size must be positive");
        Self {
            size,
            lateness: lateness.max(0),
            max_event_time: None,
            open: BTreeMap::new(),
            held: BTreeMap::new(),
            seen: HashSet::new(),
            touched: HashSet::new(),
        }
    }

    /// Highest event time seen minus the allowed lateness.
    pub fn watermark(&self) -> Option<Micros> {
        self.max_event_time.map(|t| t.saturating_sub(self.lateness))
    }

    fn window_start(&self, t: Micros) -> Micros {
        t.div_euclid(self.size) * self.size
    }

    fn is_closed(&self, start: Micros) -> bool {
        self.watermark().is_some_and(|w| start + self.size <= w)
    }

    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// Adds one observation.
    pub fn add(&mut self, o: Observation) -> Added {
        let start = self.window_start(o.event_time);
        if self.is_closed(start) {
            let new = self.seen.insert(o.key.clone());
            return Added::Late(new.then(|| self.single(start, &o)));
        }
        self.max_event_time = Some(self.max_event_time.map_or(o.event_time, |m| m.max(o.event_time)));
        let held = self.held.entry(start).or_default();
        let h = held.entry((Arc::clone(&o.topic), o.partition)).or_insert(o.offset);
        *h = (*h).min(o.offset);
        let window = self.open.entry(start).or_default();
        let agg = window.entry(o.key.clone()).or_insert_with(|| Agg {
            src_addr: o.src_addr.clone(),
            dst_addr: o.dst_addr.clone(),
            direction: o.direction,
            packets: 0,
            bytes: 0,
            flows: 0,
            first_seen: o.event_time,
            last_seen: o.event_time,
        });
        agg.packets = agg.packets.saturating_add(o.packets);
        agg.bytes = agg.bytes.saturating_add(o.bytes);
        agg.flows += 1;
        agg.first_seen = agg.first_seen.min(o.event_time);
        agg.last_seen = agg.last_seen.max(o.event_time);
        self.touched.insert((start, o.key.clone()));
        if self.seen.insert(o.key.clone()) {
            let edge = edge(self.size, start, &o.key, &window[&o.key], EdgeKind::FirstSeen);
            Added::FirstSeen(edge)
        } else {
            Added::Aggregated
        }
    }

    /// Closes every window the watermark has passed; returns their edges.
    pub fn close_ready(&mut self) -> Vec<FlowEdge> {
        let Some(w) = self.watermark() else { return Vec::new() };
        let mut out = Vec::new();
        while let Some((&start, _)) = self.open.first_key_value() {
            if start + self.size > w {
                break;
            }
            if let Some(window) = self.open.remove(&start) {
                self.held.remove(&start);
                let mut edges: Vec<FlowEdge> =
                    window.iter().map(|(k, a)| self.edge(start, k, a, EdgeKind::Window)).collect();
                edges.sort_by(|a, b| a.edge_id.cmp(&b.edge_id));
                out.extend(edges);
            }
        }
        out
    }

    /// The current aggregate of every (window, edge) changed since the last
    /// call, closed or not (for `data_flows`: absolute counts, so writing a
    /// window twice keeps the latest).
    pub fn drain_touched(&mut self, closed: &[FlowEdge]) -> Vec<FlowEdge> {
        let mut out: Vec<FlowEdge> = Vec::with_capacity(self.touched.len());
        let closed_ids: HashSet<&str> = closed.iter().map(|e| e.edge_id.as_str()).collect();
        for (start, key) in self.touched.drain() {
            if let Some(agg) = self.open.get(&start).and_then(|w| w.get(&key)) {
                out.push(edge(self.size, start, &key, agg, EdgeKind::Window));
            }
        }
        out.retain(|e| !closed_ids.contains(e.edge_id.as_str()));
        out.extend(closed.iter().cloned());
        out
    }

    /// Per input partition, the lowest offset that contributed to a window
    /// still open.
    pub fn held_offsets(&self) -> Vec<(String, i32, i64)> {
        let mut min: HashMap<(&Arc<str>, i32), i64> = HashMap::new();
        for offsets in self.held.values() {
            for ((t, p), o) in offsets {
                let e = min.entry((t, *p)).or_insert(*o);
                *e = (*e).min(*o);
            }
        }
        min.into_iter().map(|((t, p), o)| (t.to_string(), p, o)).collect()
    }

    fn edge(&self, start: Micros, key: &EdgeKey, agg: &Agg, kind: EdgeKind) -> FlowEdge {
        edge(self.size, start, key, agg, kind)
    }

    fn single(&self, start: Micros, o: &Observation) -> FlowEdge {
        let agg = Agg {
            src_addr: o.src_addr.clone(),
            dst_addr: o.dst_addr.clone(),
            direction: o.direction,
            packets: o.packets,
            bytes: o.bytes,
            flows: 1,
            first_seen: o.event_time,
            last_seen: o.event_time,
        };
        self.edge(start, &o.key, &agg, EdgeKind::FirstSeen)
    }
}

/// The id of an edge in a window: also its `data_flows.id`.
pub fn edge_id(key: &EdgeKey, window_start: Micros) -> String {
    ids::stable_id(
        "edge",
        &[
            &key.src.resource_id,
            &key.dst.resource_id,
            &key.protocol.to_string(),
            &key.dst_port.to_string(),
            key.action.as_str(),
            &window_start.to_string(),
        ],
    )
    .to_string()
}

fn edge(size: Micros, start: Micros, key: &EdgeKey, agg: &Agg, kind: EdgeKind) -> FlowEdge {
    FlowEdge {
        edge_id: edge_id(key, start),
        kind,
        src: key.src.endpoint(&agg.src_addr),
        dst: key.dst.endpoint(&agg.dst_addr),
        protocol: key.protocol,
        dst_port: key.dst_port,
        action: key.action,
        direction: agg.direction,
        window_start: start,
        window_end: start + size,
        first_seen: agg.first_seen,
        last_seen: agg.last_seen,
        packets: agg.packets,
        bytes: agg.bytes,
        flows: agg.flows,
    }
}

#[cfg(test)]
mod tests {
    use psg_domain::EndpointKind;
    use psg_domain::time::SECOND;

    use super::*;

    fn at(id: &str) -> Attributed {
        Attributed { resource_id: id.into(), kind: EndpointKind::Resource, vpc_id: None }
    }

    fn obs(src: &str, dst: &str, t: i64, offset: i64) -> Observation {
        Observation {
            key: EdgeKey { src: at(src), dst: at(dst), protocol: 6, dst_port: 5432, action: FlowAction::Accept },
            src_addr: "10.0.0.1".into(),
            dst_addr: "10.0.0.2".into(),
            direction: EdgeDirection::IntraVpc,
            event_time: t * SECOND,
            packets: 10,
            bytes: 1000,
            topic: Arc::from("flows.normalized"),
            partition: 0,
            offset,
        }
    }

    #[test]
    fn first_seen_at_once_aggregate_at_close() {
        let mut w = Windows::new(60 * SECOND, 30 * SECOND);
        assert!(
            matches!(w.add(obs("a", "b", 61, 1)), Added::FirstSeen(ref e) if e.flows == 1 && e.window_start == 60 * SECOND)
        );
        assert_eq!(w.add(obs("a", "b", 90, 2)), Added::Aggregated);
        assert!(w.close_ready().is_empty(), "watermark 60 has not passed 120");
        assert_eq!(w.held_offsets(), vec![("flows.normalized".to_owned(), 0, 1)]);
        w.add(obs("c", "d", 151, 3)); // watermark 121: window [60,120) closes
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
        w.add(obs("a", "b", 59, 1));
        w.add(obs("a", "b", 60, 2));
        w.add(obs("x", "y", 120, 3));
        let closed = w.close_ready();
        assert_eq!(closed.len(), 2);
        assert!(closed.iter().all(|e| e.flows == 1));
    }

    #[test]
    fn late_records_do_not_reopen_a_window() {
        let mut w = Windows::new(60 * SECOND, 10 * SECOND);
        w.add(obs("a", "b", 10, 1));
        w.add(obs("a", "b", 200, 2));
        assert_eq!(w.close_ready().len(), 1);
        assert_eq!(w.add(obs("a", "b", 20, 3)), Added::Late(None));
        assert!(matches!(w.add(obs("n", "m", 20, 4)), Added::Late(Some(ref e)) if e.kind == EdgeKind::FirstSeen));
        assert!(w.close_ready().is_empty());
    }

    #[test]
    fn touched_rows_carry_absolute_counts() {
        let mut w = Windows::new(60 * SECOND, 0);
        w.add(obs("a", "b", 1, 1));
        w.add(obs("a", "b", 2, 2));
        let rows = w.drain_touched(&[]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].flows, 2);
        assert!(w.drain_touched(&[]).is_empty());
        w.add(obs("a", "b", 3, 3));
        assert_eq!(w.drain_touched(&[])[0].flows, 3);
    }
}
