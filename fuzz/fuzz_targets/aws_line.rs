//! One AWS VPC flow-log line with the default layout and with a custom one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use psg_domain::SourceRef;
use psg_ingest::aws::{Layout, parse_line};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    let src = SourceRef { topic: "fuzz".into(), partition: 0, offset: 0, line: 1 };
    let _ = parse_line(&Layout::default_v2(), line, src.clone());
    if let Ok(layout) = Layout::parse(
        "version vpc-id subnet-id instance-id interface-id account-id type srcaddr dstaddr srcport dstport pkt-srcaddr pkt-dstaddr protocol bytes packets start end action tcp-flags log-status",
    ) {
        let _ = parse_line(&layout, line, src);
    }
    let _ = Layout::parse(line);
});
