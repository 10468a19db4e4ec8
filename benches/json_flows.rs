//! Benchmarks of the JSON flow-log parsers: `cargo bench --bench json_flows`.
//!
//! Each measures one message through [`parse_json`] (format detection
//! included) and reports the time per record (`Throughput::Elements`):
//!
//! - `azure_nsg_v2`: an NSG flow-log (version 2) blob of 1,000 tuples;
//! - `azure_vnet`: a VNet flow-log blob of 1,000 tuples;
//! - `gcp_ndjson`: 1,000 GCP VPC flow-log entries, one per line (whole
//!   Cloud Logging entries, as a log sink writes them).
//!
//! The target is at least 500,000 records per second on one core.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use psg_ingest::flowlogs::parse_json;
use psg_ingest::parsed::MessageCtx;

/// The allocator the binary runs with (`src/main.rs`), so that the figures
/// are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N: usize = 1_000;

const CTX: MessageCtx<'static> = MessageCtx { topic: "flowlogs.raw", partition: 0, offset: 0, time: None };

/// Ten rule groups of 100 tuples each, as Azure groups them.
fn nsg_v2_blob(n: usize) -> String {
    let groups: Vec<String> = (0..10)
        .map(|g| {
            let tuples: Vec<String> = (0..n / 10)
                .map(|i| {
                    let k = g * (n / 10) + i;
                    format!(
                        "\"{},10.5.{}.{},198.51.100.{},{},443,T,O,A,{},{},{},{},{}\"",
                        1_542_110_400 + k,
                        (k >> 8) & 255,
                        k & 255,
                        k % 250,
                        30_000 + k,
                        ["B", "C", "E"][k % 3],
                        k % 50,
                        k * 97,
                        k % 40,
                        k * 53,
                    )
                })
                .collect();
            format!(
                r#"{{"rule":"UserRule_allow-https-{g}","flows":[{{"mac":"000D3AF8{g:04X}","flowTuples":[{}]}}]}}"#,
                tuples.join(",")
            )
        })
        .collect();
    format!(
        r#"{{"records":[{{"time":"2018-11-13T12:00:35.3899262Z","systemId":"a0fca5ce-022c-47b1-9735-89943b42f2fa","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/FABRIKAMRG/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/FABRIAKMVM1-NSG","operationName":"NetworkSecurityGroupFlowEvents","properties":{{"Version":2,"flows":[{}]}}}}]}}"#,
        groups.join(",")
    )
}

fn vnet_blob(n: usize) -> String {
    let tuples: Vec<String> = (0..n)
        .map(|k| {
            format!(
                "\"{},10.0.{}.{},52.239.184.{},{},443,6,O,{},NX,{},{},{},{}\"",
                1_663_146_003_000_u64 + k as u64 * 7,
                (k >> 8) & 255,
                k & 255,
                k % 250,
                20_000 + k,
                ["B", "C", "E", "D"][k % 4],
                k % 50,
                k * 97,
                k % 40,
                k * 53,
            )
        })
        .collect();
    format!(
        r#"{{"records":[{{"time":"2022-09-14T09:00:52.5625085Z","flowLogVersion":4,"flowLogGUID":"66aa66aa-bb77-cc88-dd99-00ee00ee00ee","macAddress":"00224871C205","category":"FlowLogFlowEvent","flowLogResourceID":"/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/NETWORKWATCHERRG/PROVIDERS/MICROSOFT.NETWORK/NETWORKWATCHERS/NETWORKWATCHER_EASTUS2EUAP/FLOWLOGS/VNETFLOWLOG","targetResourceID":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/myRG/providers/Microsoft.Network/virtualNetworks/myVNet","operationName":"FlowLogFlowEvent","flowRecords":{{"flows":[{{"aclID":"00aa00aa-bb11-cc22-dd33-44ee44ee44ee","flowGroups":[{{"rule":"DefaultRule_AllowInternetOutBound","flowTuples":[{}]}}]}}]}}}}]}}"#,
        tuples.join(",")
    )
}

fn gcp_ndjson(n: usize) -> String {
    let mut out = String::new();
    for k in 0..n {
        out.push_str(&format!(
            r#"{{"insertId":"1kx4e2nf{k:06}","jsonPayload":{{"bytes_sent":"{}","connection":{{"dest_ip":"203.0.113.{}","dest_port":443,"protocol":6,"src_ip":"10.87.{}.{}","src_port":{}}},"end_time":"2024-03-01T10:00:05.301953198Z","packets_sent":"{}","reporter":"SRC","rtt_msec":"36","src_instance":{{"project_id":"my-sample-project","region":"us-east1","vm_name":"app-{}","zone":"us-east1-b"}},"src_vpc":{{"project_id":"my-sample-project","subnetwork_name":"default","vpc_name":"default"}},"dest_location":{{"asn":64496,"continent":"America","country":"usa","region":"California"}},"start_time":"2024-03-01T10:00:00.186193305Z"}},"logName":"projects/my-sample-project/logs/compute.googleapis.com%2Fvpc_flows","receiveTimestamp":"2024-03-01T10:00:09.482838017Z","resource":{{"labels":{{"location":"us-east1-b","project_id":"my-sample-project","subnetwork_id":"1234567890","subnetwork_name":"default"}},"type":"gce_subnetwork"}},"timestamp":"2024-03-01T10:00:09.482838017Z"}}"#,
            k * 97,
            k % 250,
            (k >> 8) & 255,
            k & 255,
            30_000 + k,
            k % 50,
            k % 20,
        ));
        out.push('\n');
    }
    out
}

fn bench_json_flows(c: &mut Criterion) {
    let inputs = [("azure_nsg_v2", nsg_v2_blob(N)), ("azure_vnet", vnet_blob(N)), ("gcp_ndjson", gcp_ndjson(N))];
    let mut g = c.benchmark_group("json_flows");
    g.throughput(Throughput::Elements(N as u64));
    for (name, text) in &inputs {
        let parsed = parse_json(text.as_bytes(), CTX);
        assert!(parsed.rejected.is_empty(), "{name}: {:?}", parsed.rejected.first());
        assert_eq!(parsed.records.len(), N, "{name}");
        g.bench_function(*name, |b| b.iter(|| parse_json(black_box(text.as_bytes()), CTX)));
    }
    g.finish();
}

criterion_group!(benches, bench_json_flows);
criterion_main!(benches);
