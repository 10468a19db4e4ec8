//! Bounded decompression: gzip input never expands past the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = psg_ingest::payload::decode(data, 1 << 20) {
        assert!(text.len() <= 1 << 20);
        let _ = psg_ingest::payload::lines(&text).count();
    }
});
