//! Flow edges for tests and benches.

use psg_domain::time::{Micros, SECOND};
use psg_domain::{EdgeDirection, EdgeKind, Endpoint, EndpointKind, FlowAction, FlowEdge};

/// A resource endpoint named `id`, without address or network.
pub fn resource(id: &str) -> Endpoint {
    Endpoint { resource_id: id.into(), kind: EndpointKind::Resource, address: None, vpc_id: None }
}

/// The smallest edge: one TCP flow (one packet, one byte) from `src` to
/// `dst` on `dst_port`, seen at `t`, in the minute-long window that begins
/// at `t`, its action logged. Tests change the fields they are about with
/// `FlowEdge { kind: EdgeKind::FirstSeen, ..one_flow(…) }`.
pub fn one_flow(src: Endpoint, dst: Endpoint, dst_port: i32, action: FlowAction, t: Micros) -> FlowEdge {
    FlowEdge {
        edge_id: String::new(),
        kind: EdgeKind::Window,
        src,
        dst,
        protocol: 6,
        dst_port,
        action,
        direction: EdgeDirection::IntraVpc,
        window_start: t,
        window_end: t + 60 * SECOND,
        first_seen: t,
        last_seen: t,
        packets: 1,
        bytes: 1,
        flows: 1,
        encrypted_flows: 0,
        unencrypted_flows: 0,
        action_logged: true,
    }
}
