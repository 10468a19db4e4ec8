//! A realistic, deterministic synthetic multi-cloud estate for demos and
//! tests: inventory and flow logs of AWS, Azure, GCP and an on-premise data
//! centre, written in the formats the ingest service reads.
//!
//! [`generate`] is pure (no I/O): it returns the files (relative paths and
//! bytes) and what the estate is built to show. The same seed gives
//! byte-identical files; another seed changes identifiers, addresses, pool
//! sizes and traffic, never the story:
//!
//! - **CDE**: payment APIs (`pay-api-N` on EC2, `pay-api-eu-N` on Azure,
//!   `checkout-api-N` on GCE), tokenizers (classified by `pci-data` only),
//!   payment databases (RDS `payments-db-primary`/`-replica`,
//!   `tokenvault-db`, SQL Server VMs `sqlvm-payments-N`, Cloud SQL
//!   `payments-ledger`) and on-premise HSMs, tagged `pci-scope=cde` and/or
//!   `pci-data=…`. They talk among themselves and to a payment gateway's
//!   public address on 443.
//! - **Web tiers** (`web-N`, `web-eu-N`, `storefront-N`), without a scope
//!   tag, call the payment APIs on 443: connected to the CDE by their flows.
//! - **Monitoring**: `grafana-mon`, tagged `pci-scope=connected-cde`, scrapes
//!   every CDE server's node exporter (TCP 9100) in all three clouds.
//! - **Corporate systems** (Jenkins, GitLab, LDAP, AD, VDI, analytics, …),
//!   tagged `pci-scope=out-of-scope`, talk among themselves and to the
//!   internet; their attempts at the CDE are REJECTed (connecting nothing),
//!   except for exactly one misconfigured path: `jenkins` → the payments
//!   database on TCP/5432, ACCEPTed.
//! - Exactly one **unknown internal host** (an RFC 1918 address in no
//!   inventory) SSHes into a payment API server.
//! - A few **untagged** resources (pending review).
//!
//! Inventory: an AWS Config snapshot (EC2 instances, RDS instances, ENIs),
//! an Azure Resource Graph result (VMs and NICs, with `observed_at`), a GCP
//! Cloud Asset Inventory export (compute instances), and the native JSON form
//! for Cloud SQL and the on-premise CMDB. Flow logs: AWS VPC Flow Logs as S3
//! objects (custom v5 format with a header line, gzip), Azure NSG flow logs
//! v2 (`{"records": [...]}`), GCP VPC flow logs (Cloud Logging entries, one
//! per line). Every file stays well under 900 KB uncompressed (a file is one
//! Kafka message); large logs are split.
//!
//! The inventory is observed between 2026-10-31T23:00Z and 23:55Z, the flows
//! fall between 2026-11-01T00:00Z and 01:00Z.

mod aws;
mod azure;
pub mod bulk;
mod gcp;
mod model;
pub mod rng;
mod time;

use std::io::Write as _;

use model::{Conn, End, Kind, Plan, Role};

/// What a file holds, i.e. the topic it goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `inventory.raw`.
    Inventory,
    /// `flowlogs.raw`.
    FlowLogs,
}

/// One generated input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EstateFile {
    /// Relative path, `/`-separated, e.g. `aws/config-snapshot.json`. A
    /// `.gz` file is gzip-compressed (ingest expands gzip payloads itself).
    pub path: String,
    pub kind: FileKind,
    pub bytes: Vec<u8>,
}

/// What the estate is built to show. Resources are named by their natural
/// `resource_id`, as ingest keys them (AWS instance / ENI / RDS resource ids,
/// lower-case ARM ids, Cloud Asset names, native ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Every resource tagged `pci-scope=cde` or with a `pci-data` tag, sorted.
    /// (An RDS instance and its ENI are both listed; so are an Azure VM and
    /// its NIC, which carries the same tags.)
    pub cde: Vec<String>,
    /// `grafana-mon`, tagged `pci-scope=connected-cde`, scraping TCP 9100.
    pub connected_monitoring: String,
    /// `jenkins`: tagged out-of-scope, with an ACCEPTed flow to a CDE database.
    pub violator: String,
    /// The ENI of RDS `payments-db-primary` (it holds the database's address
    /// and carries its tags; AWS Config gives the DB instance no address).
    pub violated: String,
    /// The internal address in no inventory with ACCEPTed flows to the CDE.
    pub unknown_host_ip: String,
    /// The payment gateway's public address the CDE talks to on 443.
    pub internet_peer_ip: String,
    /// Resources the inventory files describe (ingest's count).
    pub resources: usize,
    /// Flow records in the flow-log files (ingest's count; AWS NODATA
    /// records included, header lines not).
    pub flow_records: usize,
}

/// A generated estate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estate {
    /// Inventory files first, then flow logs.
    pub files: Vec<EstateFile>,
    pub expected: Expected,
}

/// Generates the estate for `seed`.
pub fn generate(seed: u64) -> Estate {
    let plan = model::plan(seed);
    let mut rng = rng::Rng::new(seed.rotate_left(17) ^ 0xa5a5_5a5a_0f0f_f0f0);
    let mut sink = Sink::default();
    aws::config_snapshot(&plan, &mut rng, &mut sink);
    azure::resource_graph(&plan, &mut rng, &mut sink);
    gcp::asset_export(&plan, &mut rng, &mut sink);
    gcp::native(&plan, &mut sink);
    aws::flow_logs(&plan, &mut sink);
    azure::nsg_flow_logs(&plan, &mut rng, &mut sink);
    gcp::flow_logs(&plan, &mut rng, &mut sink);

    let mut cde = Vec::new();
    for h in plan.hosts.iter().filter(|h| h.role == Role::Cde) {
        cde.push(h.id.clone());
        match &h.kind {
            Kind::RdsEni { db_id, .. } => cde.push(db_id.clone()),
            Kind::AzureVm { nic_id, .. } => cde.push(nic_id.to_lowercase()),
            _ => {}
        }
    }
    cde.sort();
    let expected = Expected {
        cde,
        connected_monitoring: plan.hosts[plan.monitoring].id.clone(),
        violator: plan.hosts[plan.violator].id.clone(),
        violated: plan.hosts[plan.violated].id.clone(),
        unknown_host_ip: model::UNKNOWN_HOST.to_owned(),
        internet_peer_ip: model::PAYMENT_GATEWAY.to_owned(),
        resources: sink.resources,
        flow_records: sink.flow_records,
    };
    Estate { files: sink.files, expected }
}

/// What the writers produce.
#[derive(Debug, Default)]
struct Sink {
    files: Vec<EstateFile>,
    resources: usize,
    flow_records: usize,
}

/// The largest uncompressed flow-log file: well under the 900 KB a Kafka
/// message may hold.
const MAX_FILE_BYTES: usize = 700 * 1024;

/// The sides of a connection that appear in a flow log: both logged ends of
/// an accepted connection; of a refused one, the end whose rule refused it
/// (the source's outbound rule when the source is logged, else the
/// destination's inbound rule). `true` = the source side.
fn logged_sides<'c>(plan: &Plan, c: &'c Conn) -> Vec<(&'c End, bool)> {
    let logged = |e: &End| plan.host(e).is_some_and(model::Host::logged);
    let mut sides = Vec::new();
    if logged(&c.src) {
        sides.push((&c.src, true));
    }
    if logged(&c.dst) && (c.accept || sides.is_empty()) {
        sides.push((&c.dst, false));
    }
    sides
}

/// Lines split into files of at most [`MAX_FILE_BYTES`], each starting with
/// `header` if given; with the number of lines (records) in each.
fn chunk(lines: impl Iterator<Item = String>, header: Option<&str>) -> Vec<(String, usize)> {
    chunk_max(lines, header, MAX_FILE_BYTES)
}

fn chunk_max(lines: impl Iterator<Item = String>, header: Option<&str>, max: usize) -> Vec<(String, usize)> {
    let start = || header.map(|h| format!("{h}\n")).unwrap_or_default();
    let mut out = Vec::new();
    let (mut text, mut n) = (start(), 0);
    for line in lines {
        if n > 0 && text.len() + line.len() + 1 > max {
            out.push((std::mem::replace(&mut text, start()), n));
            n = 0;
        }
        text.push_str(&line);
        text.push('\n');
        n += 1;
    }
    if n > 0 {
        out.push((text, n));
    }
    out
}

/// `{"records": [...]}` blobs of at most [`MAX_FILE_BYTES`] from records
/// (JSON text, and the flow tuples each holds).
fn chunk_json_records(records: Vec<(String, usize)>) -> Vec<(String, usize)> {
    chunk_json_records_max(records, MAX_FILE_BYTES)
}

fn chunk_json_records_max(records: Vec<(String, usize)>, max: usize) -> Vec<(String, usize)> {
    const OPEN: &str = "{\"records\":[";
    let mut out = Vec::new();
    let (mut text, mut n, mut empty) = (OPEN.to_owned(), 0, true);
    for (record, count) in records {
        if !empty && text.len() + record.len() + 3 > max {
            text.push_str("]}");
            out.push((std::mem::replace(&mut text, OPEN.to_owned()), n));
            (n, empty) = (0, true);
        }
        if !empty {
            text.push(',');
        }
        text.push_str(&record);
        n += count;
        empty = false;
    }
    if !empty {
        text.push_str("]}");
        out.push((text, n));
    }
    out
}

/// Gzip with a fixed header (no name, mtime 0): the same input gives the
/// same bytes.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::new(6));
    // Writing to a Vec cannot fail.
    e.write_all(data).expect("gzip into memory");
    e.finish().expect("gzip into memory")
}

#[cfg(test)]
mod tests;
