//! Model test: random observations in random order through the windows
//! agree with a plain reference aggregation (group by window and edge; per
//! connection, the largest reporter's sum).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use proptest::prelude::*;
use psg_correlate::windows::{Connection, EdgeKey, Encryption, Observation, Windows};
use psg_domain::time::SECOND;
use psg_domain::{EdgeDirection, FlowAction};

/// (window, key) → (packets, bytes, connections).
type Edges = BTreeMap<(i64, u32, u32, i32), (i64, i64, i64)>;

/// (window, key) → connection → reporter → (packets, bytes).
type Reference = BTreeMap<(i64, u32, u32, i32), HashMap<i32, HashMap<u64, (i64, i64)>>>;

#[derive(Debug, Clone)]
struct Obs {
    src: u32,
    dst: u32,
    port: i32,
    sport: i32,
    reporter: u64,
    t: i64,
    packets: i64,
}

fn arb_obs() -> impl Strategy<Value = Obs> {
    (0u32..3, 0u32..3, prop_oneof![Just(80), Just(443)], 0i32..4, 0u64..3, 0i64..600, 1i64..100)
        .prop_map(|(src, dst, port, sport, reporter, t, packets)| Obs { src, dst, port, sport, reporter, t, packets })
}

fn observation(o: &Obs, offset: i64) -> Observation {
    Observation {
        key: EdgeKey { src: o.src, dst: o.dst, protocol: 6, dst_port: o.port, action: FlowAction::Accept },
        connection: Connection {
            src: "10.0.0.1".parse().expect("ip"),
            dst: "10.0.0.2".parse().expect("ip"),
            src_port: o.sport,
            dst_port: o.port,
        },
        reporter: o.reporter,
        direction: EdgeDirection::IntraVpc,
        event_time: o.t * SECOND,
        packets: o.packets,
        bytes: o.packets * 10,
        encryption: Encryption::Unknown,
        action_logged: true,
        topic: Arc::from("t"),
        partition: 0,
        offset,
        line: 1,
    }
}

proptest! {
    #[test]
    fn windows_agree_with_the_reference(obs in proptest::collection::vec(arb_obs(), 1..200)) {
        let mut w = Windows::new(60 * SECOND, 3600 * SECOND);
        for (i, o) in obs.iter().enumerate() {
            w.add(observation(o, i as i64));
        }
        // Far in the future: every earlier window closes.
        w.add(observation(&Obs { src: 9, dst: 9, port: 1, sport: 0, reporter: 0, t: 100_000, packets: 1 }, 9999));
        let edges = w.close_ready();

        // reference: (window, key) → connection → reporter → (packets, bytes)
        let mut reference = Reference::new();
        for o in &obs {
            let start = o.t.div_euclid(60) * 60 * SECOND;
            let r = reference.entry((start, o.src, o.dst, o.port)).or_default().entry(o.sport).or_default().entry(o.reporter).or_default();
            r.0 += o.packets;
            r.1 += o.packets * 10;
        }
        let expected: Edges = reference
            .into_iter()
            .map(|(k, conns)| {
                let flows = conns.len() as i64;
                let (p, b) = conns.values().map(|reps| reps.values().copied().max().unwrap()).fold((0, 0), |a, x| (a.0 + x.0, a.1 + x.1));
                (k, (p, b, flows))
            })
            .collect();
        let actual: Edges = edges
            .iter()
            .filter(|e| e.key.src != 9)
            .map(|e| ((e.window_start, e.key.src, e.key.dst, e.key.dst_port), (e.packets, e.bytes, e.flows)))
            .collect();
        prop_assert_eq!(actual, expected);
        prop_assert_eq!(w.late(), 0);
    }
}
