//! `analyze` end to end, as a user runs it: the release binary over AWS v2
//! flow-log files and an inventory of 2,000 instances (`psg_estate::bulk`),
//! wall time from start to exit (reading the files and writing the report
//! included) and peak RSS of the process.
//!
//! `cargo bench --bench analyze` runs 1,000,000 lines; `ANALYZE_LINES`
//! (comma separated, e.g. `1000000,10000000`) and `ANALYZE_RESOURCES` change
//! the sizes, `ANALYZE_GZIP=1` compresses the file. Each size runs twice;
//! both figures are printed. The files go to a temporary directory, or to
//! `ANALYZE_DIR`, where they are kept (to run a profiler on them).

use std::io::Write as _;
use std::process::Command;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_pci-scope-guard");

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it once small.
    let quick = std::env::args().any(|a| a == "--test") || std::env::args().all(|a| a != "--bench");
    let sizes: Vec<u64> = std::env::var("ANALYZE_LINES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![if quick { 20_000 } else { 1_000_000 }]);
    let resources: usize = env_or("ANALYZE_RESOURCES", 2000);
    let gzip = std::env::var("ANALYZE_GZIP").is_ok_and(|v| v == "1");
    // ANALYZE_DIR keeps the generated files (for a profiler); else a
    // temporary directory.
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = std::env::var_os("ANALYZE_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir).expect("ANALYZE_DIR");
    let inventory = dir.join("inventory.jsonl");
    std::fs::write(&inventory, psg_estate::bulk::inventory_jsonl(resources)).expect("inventory");
    println!("analyze bench: {BIN}, {resources} resources{}", if gzip { ", gzip" } else { "" });
    for lines in sizes {
        let path = dir.join(if gzip { "flows.log.gz" } else { "flows.log" });
        {
            let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).expect("flows"));
            if gzip {
                let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
                psg_estate::bulk::write_aws_v2(&mut enc, lines, resources, 42).expect("write");
                enc.finish().expect("gzip").flush().expect("flush");
            } else {
                let mut file = file;
                psg_estate::bulk::write_aws_v2(&mut file, lines, resources, 42).expect("write");
                file.flush().expect("flush");
            }
        }
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let runs = if quick { 1 } else { 2 };
        for run in 1..=runs {
            let started = Instant::now();
            let out = Command::new("/usr/bin/time")
                .args(["-f", "%M %U %S"])
                .arg(BIN)
                .args(["analyze", "--output", "json", "--inventory"])
                .arg(&inventory)
                .arg("--flows")
                .arg(&path)
                .output()
                .or_else(|_| {
                    Command::new(BIN)
                        .args(["analyze", "--output", "json", "--inventory"])
                        .arg(&inventory)
                        .arg("--flows")
                        .arg(&path)
                        .output()
                })
                .expect("run analyze");
            let wall = started.elapsed().as_secs_f64();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "analyze failed:\n{stderr}");
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
            let read = report["summary"]["records_read"].as_u64().unwrap_or(0);
            assert_eq!(read, lines, "every line read");
            let last = stderr.lines().last().unwrap_or("");
            let mut f = last.split_whitespace();
            let (rss, user, sys) = match (f.next(), f.next(), f.next()) {
                (Some(r), Some(u), Some(s)) => (r.parse::<f64>().ok(), u.parse::<f64>().ok(), s.parse::<f64>().ok()),
                _ => (None, None, None),
            };
            println!(
                "{lines} lines ({:.0} MB{}), run {run}: {wall:.2} s wall, {:.0} lines/s; cpu {}; peak rss {}",
                bytes as f64 / 1e6,
                if gzip { " gzipped" } else { "" },
                lines as f64 / wall,
                match (user, sys) {
                    (Some(u), Some(s)) => format!("{:.2} s user + {:.2} s sys", u, s),
                    _ => "n/a (no /usr/bin/time)".into(),
                },
                rss.map_or("n/a".into(), |k| format!("{:.0} MiB", k / 1024.0)),
            );
        }
        if std::env::var_os("ANALYZE_DIR").is_none() {
            let _ = std::fs::remove_file(&path);
        }
    }
}
