//! Detection latency: `cargo bench --bench detection_latency` starts a tansu
//! broker, PostgreSQL database and the four services as four processes of
//! the real binary, then sends flows one at a time from out-of-scope
//! resources to a CDE database and measures, for each, the time from
//! producing the flow-log line to `flowlogs.raw` until its
//! `segmentation_violation` alert arrives on `scope.alerts`. Prints the
//! distribution. `DETECTION_SAMPLES` sets the number of flows (default 200).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use psg_domain::{Alert, AlertType};
use psg_testkit::kafka::produce;
use psg_testkit::{Tansu, TestDb};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;

const BIN: &str = env!("CARGO_BIN_EXE_pci-scope-guard");

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("detection_latency: bench");
        return;
    }
    let samples: usize = std::env::var("DETECTION_SAMPLES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let db = TestDb::create().await;
        let tansu = Tansu::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let brokers = tansu.bootstrap.clone();
        let status = Command::new(BIN).args(["migrate", "--database-url", &db.url]).stdout(Stdio::null()).status().expect("migrate");
        assert!(status.success());
        let keys = dir.path().join("keys");
        let status = Command::new(BIN).args(["keygen", "--out-dir"]).arg(&keys).stdout(Stdio::null()).status().expect("keygen");
        assert!(status.success());
        let mut procs = Procs(Vec::new());
        for name in ["ingest", "correlate", "classify", "evidence"] {
            let mut cmd = Command::new(BIN);
            cmd.args([name, "--brokers", &brokers, "--database-url", &db.url, "--metrics-addr", "127.0.0.1:0", "--log-level", "warn"]);
            if name == "evidence" {
                cmd.arg("--signing-key").arg(keys.join("signing.key")).arg("--evidence-store").arg(dir.path().join("store"));
            }
            procs.0.push(cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("service"));
        }

        // Inventory: one CDE database and one out-of-scope host per sample.
        let mut inventory = String::from(r#"{"provider":"aws","resource_type":"rds_instance","resource_id":"db","private_ips":["10.0.0.10"],"tags":{"pci-scope":"cde"},"observed_at":"2026-01-01T00:00:00Z"}"#);
        for i in 0..samples {
            inventory.push_str(&format!(
                "\n{{\"provider\":\"aws\",\"resource_type\":\"ec2_instance\",\"resource_id\":\"host-{i}\",\"private_ips\":[\"10.1.{}.{}\"],\"tags\":{{\"pci-scope\":\"out-of-scope\"}},\"observed_at\":\"2026-01-01T00:00:00Z\"}}",
                i / 250,
                i % 250 + 1
            ));
        }
        let alerts: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "detection-latency")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("consumer");
        // Wait for the services to create their topics.
        let deadline = Instant::now() + Duration::from_secs(60);
        while alerts.fetch_metadata(Some("scope.alerts"), Duration::from_secs(2)).map_or(true, |m| m.topics().first().is_none_or(|t| t.partitions().is_empty())) {
            assert!(Instant::now() < deadline, "services did not create scope.alerts");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        alerts.subscribe(&["scope.alerts"]).expect("subscribe");
        produce(&brokers, "inventory.raw", "inventory", inventory.as_bytes(), &[]).await;
        // Let the inventory reach correlate and classify, and the consumer join.
        tokio::time::sleep(Duration::from_secs(8)).await;

        let mut sent: HashMap<String, Instant> = HashMap::new();
        let mut latencies = Vec::with_capacity(samples);
        let base = 1_767_225_600i64;
        for i in 0..samples {
            let t = base + i as i64;
            let line = format!("2 123456789012 eni-{i} 10.1.{}.{} 10.0.0.10 40000 5432 6 1 100 {t} {} ACCEPT OK", i / 250, i % 250 + 1, t + 1);
            sent.insert(format!("host-{i}"), Instant::now());
            produce(&brokers, "flowlogs.raw", "latency", line.as_bytes(), &[]).await;
            // Collect the alert of this flow (other alerts are skipped).
            let wait = Instant::now() + Duration::from_secs(30);
            loop {
                let left = wait.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "no alert for host-{i} within 30 s");
                let Ok(Ok(m)) = tokio::time::timeout(left, alerts.recv()).await else { continue };
                let Ok(a) = psg_avro_codec::decode::<Alert>(m.payload().unwrap_or_default()) else { continue };
                if a.alert_type != AlertType::SegmentationViolation {
                    continue;
                }
                let Some(rid) = a.resource_id.as_deref() else { continue };
                if let Some(at) = sent.remove(rid) {
                    latencies.push(at.elapsed());
                }
                if rid == format!("host-{i}") {
                    break;
                }
            }
        }
        latencies.sort();
        let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
        println!(
            "detection latency, flow produced → segmentation_violation received, {} flows through 4 processes on tansu + PostgreSQL: min {:.0} ms, p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            latencies.len(), pct(0.0), pct(0.5), pct(0.9), pct(0.99), pct(1.0)
        );
        drop(procs);
    });
}
