//! A whole flow-log payload: AWS lines (with header lines), Azure and GCP
//! JSON, CloudWatch Logs subscription data, `{"message"}` documents. The
//! message has a time, so layouts without one are read too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psg_ingest::flowlogs::{AwsLayouts, parse};
use psg_ingest::parsed::{MessageCtx, TransportTime};

fuzz_target!(|data: &[u8]| {
    let time = Some(TransportTime { at: 1_700_000_000_000_000, source: "kafka-timestamp" });
    let ctx = MessageCtx { topic: "flowlogs.raw", partition: 0, offset: 0, time };
    let parsed = parse(data, None, &AwsLayouts::default(), ctx);
    // Every record a parser accepts must encode and decode unchanged.
    for r in &parsed.records {
        let bytes = psg_avro_codec::encode(r).expect("accepted records encode");
        let back: psg_domain::FlowRecord = psg_avro_codec::decode(&bytes).expect("and decode");
        assert_eq!(&back, r);
    }
});
