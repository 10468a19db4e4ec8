//! Decoding hostile bytes as every message type never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psg_avro_codec::{AvroMessage, decode};
use psg_domain::{Alert, Evidence, FlowEdge, FlowRecord, Resource, ScopeDecision};

fn framed<T: AvroMessage>(data: &[u8]) -> Vec<u8> {
    let mut v = T::compiled().header.to_vec();
    v.extend_from_slice(data);
    v
}

fuzz_target!(|data: &[u8]| {
    let _ = decode::<FlowRecord>(&framed::<FlowRecord>(data));
    let _ = decode::<Resource>(&framed::<Resource>(data));
    let _ = decode::<FlowEdge>(&framed::<FlowEdge>(data));
    let _ = decode::<ScopeDecision>(&framed::<ScopeDecision>(data));
    let _ = decode::<Alert>(&framed::<Alert>(data));
    let _ = decode::<Evidence>(&framed::<Evidence>(data));
    let _ = decode::<FlowRecord>(data);
});
