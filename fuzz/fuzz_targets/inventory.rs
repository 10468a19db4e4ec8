//! A whole inventory payload: native JSON, AWS Config, GCP assets, Azure.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psg_ingest::inventory::parse;
use psg_ingest::parsed::MessageCtx;

fuzz_target!(|data: &[u8]| {
    let ctx = MessageCtx { topic: "inventory.raw", partition: 0, offset: 0, time: None };
    for r in parse(data, ctx).records {
        let bytes = psg_avro_codec::encode(&r).expect("accepted resources encode");
        let back: psg_domain::Resource = psg_avro_codec::decode(&bytes).expect("and decode");
        assert_eq!(back, r);
    }
});
