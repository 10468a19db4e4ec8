//! Probes: one flow a second from a fresh host to a CDE database, timed
//! until its edge, its decision and its alert come out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use psg_domain::{Alert, AlertType, EdgeKind, FlowEdge, PciScope, ScopeDecision};
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;

#[derive(Default, Clone)]
pub(crate) struct Probe {
    pub(crate) sent: Option<Instant>,
    /// Seconds since the load started.
    pub(crate) at: f64,
    pub(crate) edge: Option<Duration>,
    pub(crate) decision: Option<Duration>,
    pub(crate) alert: Option<Duration>,
}

pub(crate) type Probes = Arc<Mutex<Vec<Probe>>>;

/// One of a probe's measured effects.
pub(crate) type Effect = fn(&Probe) -> Option<Duration>;

pub(crate) fn probe_index(resource_id: &str) -> Option<usize> {
    resource_id.strip_prefix("probe-")?.parse().ok()
}

/// Reads flows.edges, scope.decisions and scope.alerts and times each probe's effects.
pub(crate) async fn watch_probes(consumer: StreamConsumer, probes: Probes) {
    loop {
        let Ok(m) = consumer.recv().await else { continue };
        let (topic, payload) = (m.topic(), m.payload().unwrap_or_default());
        let mut book = probes.lock().expect("probes");
        let mut mark = |id: &str, field: fn(&mut Probe) -> &mut Option<Duration>| {
            if let Some(p) = probe_index(id).and_then(|i| book.get_mut(i)) {
                if let Some(sent) = p.sent {
                    field(p).get_or_insert_with(|| sent.elapsed());
                }
            }
        };
        match topic {
            "flows.edges" => {
                if let Ok(e) = psg_avro_codec::decode::<FlowEdge>(payload) {
                    if e.kind == EdgeKind::FirstSeen {
                        mark(&e.src.resource_id, |p| &mut p.edge);
                        mark(&e.dst.resource_id, |p| &mut p.edge);
                    }
                }
            }
            "scope.decisions" => {
                if let Ok(d) = psg_avro_codec::decode::<ScopeDecision>(payload) {
                    if d.scope == PciScope::ConnectedCde {
                        mark(&d.resource_id, |p| &mut p.decision);
                    }
                }
            }
            "scope.alerts" => {
                if let Ok(a) = psg_avro_codec::decode::<Alert>(payload) {
                    if let (AlertType::SegmentationViolation, Some(id)) = (a.alert_type, a.resource_id.as_deref()) {
                        mark(id, |p| &mut p.alert);
                    }
                }
            }
            _ => {}
        }
    }
}
