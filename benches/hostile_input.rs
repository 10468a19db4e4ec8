//! Hostile input through the ingest processor, each case in a fresh child
//! process: `cargo bench --bench hostile_input` prints, per case, the input
//! size, what came out (flow records or resources / dead letters), the wall
//! time of `Processor::process` and the child's peak resident memory while
//! processing (VmHWM, reset once the input is built, so it is the input
//! plus everything processing added), next to a baseline of a normal 10 MB
//! AWS message. `cargo bench --bench hostile_input -- CASE` runs one case.
//!
//! The cases are those of `services/ingest/tests/hostile.rs`, at full size
//! and with the default limits (64 MiB per message, 1 MiB per line).

use std::fmt::Write as _;
use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use psg_config::Config;
use psg_domain::{FlowBatch, Resource};
use psg_ingest::Ingest;
use psg_kafka_runtime::{InMessage, InputKind, Output, Processor};

const MIB: usize = 1 << 20;
const GOOD: &str = "2 123456789010 eni-1 10.0.0.5 10.0.0.9 40000 5432 6 10 840 1418530010 1418530070 ACCEPT OK";

/// (name, topic, what it is)
const CASES: &[(&str, &str, &str)] = &[
    ("baseline-aws-10MB", "flowlogs.raw", "10 MB of good AWS lines (baseline)"),
    ("baseline-aws-60MB", "flowlogs.raw", "60 MB of good AWS lines (near the message limit)"),
    ("oversized-message", "flowlogs.raw", "64 MiB + 1 byte of AWS lines"),
    ("long-line-60MiB", "flowlogs.raw", "a 60 MiB line between two good lines"),
    ("invalid-utf8-lines", "flowlogs.raw", "10 MB of AWS lines, every other one not UTF-8"),
    ("invalid-utf8-json", "flowlogs.raw", "a 10 MB Azure blob with one bad UTF-8 byte"),
    ("gzip-bomb-1GiB", "flowlogs.raw", "1 GiB of zeros, gzip"),
    ("nested-json-flows", "flowlogs.raw", "{\"records\": 100k x ["),
    ("nested-json-inventory", "inventory.raw", "100k x ["),
    ("junk-json-flows-50MB", "flowlogs.raw", "{\"records\": [50 MB of numbers]}"),
    ("junk-json-inventory-50MB", "inventory.raw", "[50 MB of numbers]"),
    ("json-values-inventory-50MB", "inventory.raw", "{\"data\": [25M zeros]}"),
    ("azure-1M-tuples", "flowlogs.raw", "NSG v2 blob, 1,000,000 valid tuples"),
    ("azure-empty-tuples", "flowlogs.raw", "NSG blob, 20M empty tuples"),
    ("azure-empty-records", "flowlogs.raw", "blob of 20M empty records"),
    ("junk-lines-30M", "flowlogs.raw", "30M lines of 'x' (60 MB)"),
    ("absurd-numbers-10MB", "flowlogs.raw", "10 MB of AWS lines, each with one absurd number"),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if std::env::args().any(|a| a == "--list") {
        println!("hostile_input: bench");
        return;
    }
    if let Some(pos) = std::env::args().position(|a| a == "--child") {
        let name = std::env::args().nth(pos + 1).unwrap_or_default();
        return child(&name);
    }
    let exe = std::env::current_exe().expect("current exe");
    println!(
        "{:<28} {:>10} {:>9} {:>6} {:>8} {:>10} {:>10} {:>10} {:>10}  reason of the first dead letter",
        "case", "input", "records", "dead", "time", "output", "largest", "rss input", "peak rss"
    );
    for (name, _, what) in CASES {
        if !args.is_empty() && !args.iter().any(|a| a == name) {
            continue;
        }
        let out = Command::new(&exe).args(["--child", name]).output().expect("child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        match stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) {
            Some(r) => println!("{r}"),
            None => println!(
                "{name:<28} FAILED ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default()
            ),
        }
        let _ = what;
    }
    println!("\ncases:");
    for (name, _, what) in CASES {
        println!("  {name:<28} {what}");
    }
    println!(
        "time: Processor::process of the one message; output: bytes of every record and dead letter produced, largest: \
         the largest of them; rss input: VmRSS once the input is built; peak rss: VmHWM of the child while processing \
         (reset once the input is built, so it counts the input too)"
    );
}

/// Runs one case and prints its `RESULT` line.
fn child(name: &str) {
    let Some((_, topic, _)) = CASES.iter().find(|(n, _, _)| *n == name) else {
        eprintln!("unknown case {name}");
        std::process::exit(2);
    };
    let payload = input(name);
    let size = payload.len();
    let m = InMessage {
        kind: InputKind::Stream,
        topic: Arc::from(*topic),
        partition: 0,
        offset: 1,
        key: Some(b"k".to_vec()),
        payload: Some(payload),
        headers: Vec::new(),
        timestamp_ms: None,
    };
    let mut ingest = Ingest::new(&Config::default(), None).expect("ingest");
    ingest.set_output_partitions(6);
    let rss_input = status_kib("VmRSS:");
    // Reset the peak: from here on VmHWM is the peak of processing.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    let out = block_on(ingest.process(std::slice::from_ref(&m))).expect("process");
    let elapsed = started.elapsed();
    let peak = status_kib("VmHWM:");
    drop(m);

    let (records, reason) = summary(&out);
    let sizes = out.records.iter().map(|r| r.payload.len()).chain(out.dead_letters.iter().map(|d| d.payload.len()));
    let (output, largest) = sizes.fold((0u64, 0usize), |(sum, max), n| (sum + n as u64, max.max(n)));
    let mut line = String::new();
    let _ = write!(
        line,
        "{name:<28} {:>10} {:>9} {:>6} {:>6.0}ms {:>10} {:>10} {:>10} {:>10}  {}",
        human(size as u64),
        records,
        out.dead_letters.len(),
        elapsed.as_secs_f64() * 1e3,
        human(output),
        human(largest as u64),
        human(rss_input * 1024),
        human(peak * 1024),
        reason.chars().take(100).collect::<String>()
    );
    println!("RESULT {line}");
}

fn summary(out: &Output) -> (u64, String) {
    let mut records = 0u64;
    for r in &out.records {
        if r.topic == "flows.normalized" {
            records += psg_avro_codec::decode::<FlowBatch>(&r.payload).map_or(0, |b| b.records.len() as u64);
        } else if psg_avro_codec::decode::<Resource>(&r.payload).is_ok() {
            records += 1;
        }
    }
    let reason = out.dead_letters.first().map(|d| d.reason.clone()).unwrap_or_default();
    (records, reason)
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// The input of a case, built straight into the payload buffer.
fn input(name: &str) -> Vec<u8> {
    match name {
        "baseline-aws-10MB" => aws_lines(10_000_000),
        "baseline-aws-60MB" => aws_lines(60_000_000),
        "oversized-message" => {
            let mut p = aws_lines(64 * MIB + 200);
            p.truncate(64 * MIB + 1);
            p
        }
        "long-line-60MiB" => {
            let mut p = Vec::with_capacity(61 * MIB);
            p.extend_from_slice(GOOD.as_bytes());
            p.push(b'\n');
            p.resize(p.len() + 60 * MIB, b'7');
            p.push(b'\n');
            p.extend_from_slice(GOOD.as_bytes());
            p
        }
        "invalid-utf8-lines" => {
            let mut p = aws_lines(10_000_000);
            let mut odd = false;
            for b in &mut p {
                if *b == b'\n' {
                    odd = !odd;
                } else if odd && *b == b'e' {
                    *b = 0xff; // "eni-" → "\xffni-"
                }
            }
            p
        }
        "invalid-utf8-json" => {
            let mut p = nsg_blob(140_000);
            let at = p.len() - 10;
            p.insert(at, 0xc3);
            p
        }
        "gzip-bomb-1GiB" => {
            check_gzip_zeros();
            gzip_zeros(1 << 30)
        }
        "nested-json-flows" => {
            let mut p = b"{\"records\":".to_vec();
            p.resize(p.len() + 100_000, b'[');
            p
        }
        "nested-json-inventory" => vec![b'['; 100_000],
        "junk-json-flows-50MB" => numbers(b"{\"records\":[", b"]}", 50_000_000, b"123456789,"),
        "junk-json-inventory-50MB" => numbers(b"[", b"]", 50_000_000, b"1,"),
        "json-values-inventory-50MB" => numbers(b"{\"data\":[", b"]}", 50_000_000, b"0,"),
        "azure-1M-tuples" => nsg_blob(1_000_000),
        "azure-empty-tuples" => {
            let blob = String::from_utf8(nsg_blob(0)).expect("utf-8");
            let (open, close) = blob.split_at(blob.find("[]").expect("tuples") + 1);
            numbers(open.as_bytes(), close.as_bytes(), 60_000_000, b"\"\",")
        }
        "azure-empty-records" => numbers(b"{\"records\":[", b"]}", 60_000_000, b"{},"),
        "junk-lines-30M" => b"x\n".repeat(30_000_000),
        "absurd-numbers-10MB" => {
            let absurd = [
                (5, "-1"),
                (6, "65536"),
                (7, "256"),
                (8, "-10"),
                (9, "99999999999999999999999"),
                (11, "253402300799000"),
                (10, "-62167219200"),
                (0, "-2"),
            ];
            let mut p = Vec::with_capacity(10_100_000);
            let mut i = 0;
            while p.len() < 10_000_000 {
                let (field, value) = absurd[i % absurd.len()];
                let mut v: Vec<&str> = GOOD.split(' ').collect();
                v[field] = value;
                p.extend_from_slice(v.join(" ").as_bytes());
                p.push(b'\n');
                i += 1;
            }
            p
        }
        other => panic!("unknown case {other}"),
    }
}

/// Distinct good AWS lines up to `bytes`.
fn aws_lines(bytes: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(bytes + 200);
    let mut s = String::with_capacity(160);
    let mut i = 0u32;
    while p.len() < bytes {
        s.clear();
        let _ = writeln!(
            s,
            "2 123456789010 eni-{:017x} 10.{}.{}.{} 10.9.{}.1 {} 443 6 10 840 1418530010 1418530070 ACCEPT OK",
            i % 512,
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255,
            i % 7,
            1024 + i % 60_000
        );
        p.extend_from_slice(s.as_bytes());
        i += 1;
    }
    p
}

/// `open`, then `item` repeated up to `bytes`, a last `0`, then `close`.
fn numbers(open: &[u8], close: &[u8], bytes: usize, item: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(bytes + open.len() + close.len() + item.len());
    p.extend_from_slice(open);
    while p.len() < bytes {
        p.extend_from_slice(item);
    }
    // End on a value of the same kind as the items.
    let last = &item[..item.len() - 1];
    p.extend_from_slice(if last.is_empty() { b"0" } else { last });
    p.extend_from_slice(close);
    p
}

/// An NSG v2 blob of `n` valid, distinct tuples.
fn nsg_blob(n: usize) -> Vec<u8> {
    let mut s = String::with_capacity(n * 60 + 600);
    s.push_str(r#"{"records":[{"time":"2018-11-13T12:00:35.3899262Z","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000001/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/NSG","properties":{"Version":2,"flows":[{"rule":"DefaultRule_AllowVnetInBound","flows":[{"mac":"000D3AF87856","flowTuples":["#);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            r#""{},10.1.{}.{},10.2.0.4,{},443,T,I,A,E,3,300,2,200""#,
            1_542_110_000 + i % 3600,
            (i >> 8) & 0xff,
            i & 0xff,
            1024 + i % 60_000
        );
    }
    s.push_str("]}]}]}}]}");
    s.into_bytes()
}

// --- a gzip bomb without a compressor -----------------------------------------

/// gzip of `size` zero bytes: one fixed-Huffman deflate block of a literal
/// zero and then matches of length 258 at distance 1 (13 bits per 258
/// bytes), with the right CRC-32 and size in the trailer.
fn gzip_zeros(size: u64) -> Vec<u8> {
    let mut w = Bits { out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff], acc: 0, n: 0 };
    w.put(1, 1); // BFINAL
    w.put(1, 2); // BTYPE 01: fixed Huffman
    w.code(0x30, 8); // literal 0
    let mut left = size - 1;
    while left > 0 {
        let len = left.min(258);
        // Fixed codes: lengths 3..=10 are symbols 257..=264 (7 bits from 0000001),
        // 258 is symbol 285 (8 bits 11000101); lengths between would need extra bits.
        let len = if len == 258 || len <= 10 { len } else { 10 };
        if len == 258 {
            w.code(0xc5, 8);
        } else if len >= 3 {
            w.code((len - 2) as u32, 7);
        } else {
            // 1 or 2 zeros left: literals.
            for _ in 0..len {
                w.code(0x30, 8);
            }
            left -= len;
            continue;
        }
        w.code(0, 5); // distance code 0: distance 1
        left -= len;
    }
    w.code(0, 7); // end of block
    if w.n > 0 {
        w.out.push(w.acc as u8);
    }
    let mut out = w.out;
    out.extend_from_slice(&crc32_of_zeros(size).to_le_bytes());
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out
}

struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    /// `len` bits of `v`, least significant first (deflate's header fields).
    fn put(&mut self, v: u32, len: u32) {
        self.acc |= u64::from(v) << self.n;
        self.n += len;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// A Huffman code of `len` bits, most significant first.
    fn code(&mut self, code: u32, len: u32) {
        self.put(code.reverse_bits() >> (32 - len), len);
    }
}

const CRC_POLY: u32 = 0xedb8_8320;

/// `a * b` modulo the CRC-32 polynomial (reflected, as zlib's `multmodp`).
fn multmodp(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0u32;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                return p;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ CRC_POLY } else { b >> 1 };
    }
}

/// CRC-32 of `n` zero bytes: the register after `n` zeros is
/// `0xffffffff * x^(8n)` modulo the polynomial.
fn crc32_of_zeros(n: u64) -> u32 {
    let mut x2k = 1u32 << 30; // x^1
    let mut power = 1u32 << 31; // x^0
    let mut e = n * 8;
    while e > 0 {
        if e & 1 != 0 {
            power = multmodp(x2k, power);
        }
        x2k = multmodp(x2k, x2k);
        e >>= 1;
    }
    multmodp(power, 0xffff_ffff) ^ 0xffff_ffff
}

/// The bomb is a valid gzip file: a small one expands (CRC and size checked
/// by the decoder) to exactly its zeros.
fn check_gzip_zeros() {
    let size = 3 * MIB + 5;
    let small = gzip_zeros(size as u64);
    let back = psg_ingest::payload::decode(&small, 4 * MIB).expect("a valid gzip file");
    assert!(back.len() == size && back.iter().all(|b| *b == 0), "{} bytes", back.len());
}
