//! GCP VPC Flow Logs: Cloud Logging entries (one per message, possibly
//! pretty-printed, or one per line) → one [`FlowRecord`] per entry.
//!
//! The flow is in `jsonPayload`: `connection{src_ip, dest_ip, src_port,
//! dest_port, protocol}`, `bytes_sent`/`packets_sent` (int64 as JSON strings;
//! numbers are accepted too), `start_time`/`end_time` (RFC 3339), `reporter`
//! and the instance and VPC details of both ends. The account, VPC, subnet,
//! region and instance are those of the reporter's side (`SRC`, `DEST`, or a
//! gateway: `SRC_GATEWAY`, `DEST_GATEWAY`). A record is ACCEPT unless its
//! `disposition` is `DROPPED` (denied by a firewall rule: REJECT). Detail
//! objects this parser does not use (`src_gke_details`,
//! `src_google_service`, `internet_routing_details`, `load_balancing`,
//! `psc`, `network_service`, ...) are accepted and skipped.
//!
//! An entry's position is its line in the message (1 for a message of one
//! entry); a bad entry is refused alone, with its text.

use psg_domain::{CloudProvider, FlowAction, FlowDirection, FlowFormat, FlowRecord, SourceRef, Text};
use serde::Deserialize;

use crate::fields::{self, FieldError, Num, Str, bad, nonempty};
use crate::parsed::{MessageCtx, Parsed, Rejected, Sink};

/// A Cloud Logging entry: only what a VPC flow log needs.
#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow, rename = "jsonPayload")]
    json_payload: Option<Payload<'a>>,
    #[serde(borrow, rename = "logName")]
    log_name: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow)]
    connection: Option<Connection<'a>>,
    #[serde(borrow)]
    bytes_sent: Option<Num<'a>>,
    #[serde(borrow)]
    packets_sent: Option<Num<'a>>,
    #[serde(borrow)]
    start_time: Option<Str<'a>>,
    #[serde(borrow)]
    end_time: Option<Str<'a>>,
    #[serde(borrow)]
    reporter: Option<Str<'a>>,
    #[serde(borrow)]
    rtt_msec: Option<Num<'a>>,
    /// `ALLOWED` or `DROPPED` (flow logs of denied traffic).
    #[serde(borrow)]
    disposition: Option<Str<'a>>,
    #[serde(borrow)]
    src_instance: Option<Instance<'a>>,
    #[serde(borrow)]
    dest_instance: Option<Instance<'a>>,
    #[serde(borrow)]
    src_vpc: Option<Vpc<'a>>,
    #[serde(borrow)]
    dest_vpc: Option<Vpc<'a>>,
}

#[derive(Deserialize)]
struct Connection<'a> {
    #[serde(borrow)]
    src_ip: Option<Str<'a>>,
    #[serde(borrow)]
    dest_ip: Option<Str<'a>>,
    #[serde(borrow)]
    src_port: Option<Num<'a>>,
    #[serde(borrow)]
    dest_port: Option<Num<'a>>,
    #[serde(borrow)]
    protocol: Option<Num<'a>>,
}

#[derive(Deserialize)]
struct Instance<'a> {
    #[serde(borrow)]
    project_id: Option<Str<'a>>,
    #[serde(borrow)]
    region: Option<Str<'a>>,
    #[serde(borrow)]
    vm_name: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Vpc<'a> {
    #[serde(borrow)]
    project_id: Option<Str<'a>>,
    #[serde(borrow)]
    vpc_name: Option<Str<'a>>,
    #[serde(borrow)]
    subnetwork_name: Option<Str<'a>>,
}

/// Parses GCP VPC flow-log entries: one JSON object (line 1), or one per
/// line (numbered by line).
pub fn parse_entries(text: &[u8], ctx: MessageCtx<'_>) -> Parsed<FlowRecord> {
    Parsed::collect(|out| parse_entries_into(text, ctx, out))
}

/// [`parse_entries`], into a sink. A line longer than
/// [`crate::payload::MAX_LINE_BYTES`] is refused alone.
pub fn parse_entries_into(text: &[u8], ctx: MessageCtx<'_>, out: &mut dyn Sink<FlowRecord>) {
    if crate::payload::is_ndjson(text) {
        for (line, raw) in crate::payload::lines(text) {
            out.push(crate::payload::check_line(line, raw).and_then(|()| entry(raw, line, ctx)));
        }
    } else {
        out.push(entry(text.trim_ascii(), 1, ctx));
    }
}

/// One entry, `raw`, at position `line`.
fn entry(raw: &[u8], line: u32, ctx: MessageCtx<'_>) -> Result<FlowRecord, Rejected> {
    let reject = |kind: &'static str, reason: String| Rejected::new(line, raw, kind, reason);
    // Checked as UTF-8 once, then parsed as text: serde_json then does not
    // check every string again. Bytes that are not UTF-8 get serde_json's
    // own error, which names where.
    let parsed = match std::str::from_utf8(raw) {
        Ok(text) => serde_json::from_str::<Entry<'_>>(text),
        Err(_) => serde_json::from_slice::<Entry<'_>>(raw),
    };
    let e = parsed.map_err(|e| reject("parse", format!("GCP log entry: {}", fields::json_error(&e))))?;
    if let Some(log) = nonempty(&e.log_name).filter(|l| !l.ends_with("vpc_flows")) {
        return Err(reject(
            "unsupported",
            format!("log entry of '{log}' is not a VPC flow log (logName .../compute.googleapis.com%2Fvpc_flows)"),
        ));
    }
    let Some(p) = e.json_payload else {
        return Err(reject("unsupported", "log entry has no jsonPayload: not a VPC flow-log entry".to_owned()));
    };
    record(&p, ctx.source(line)).map_err(|e| reject("parse", e.to_string()))
}

fn required<'s>(v: &'s Option<Str<'_>>, field: &'static str) -> Result<&'s str, FieldError> {
    nonempty(v).ok_or(FieldError::Missing(field))
}

fn owned(v: Option<&Str<'_>>) -> Option<Text> {
    v.map(Str::as_str).filter(|s| !s.is_empty()).map(Text::new)
}

/// The FlowRecord of one `jsonPayload`.
fn record(p: &Payload<'_>, source: SourceRef) -> Result<FlowRecord, FieldError> {
    let c = p.connection.as_ref().ok_or(FieldError::Missing("connection"))?;
    let start = fields::rfc3339("start_time", required(&p.start_time, "start_time")?)?;
    let end = fields::rfc3339("end_time", required(&p.end_time, "end_time")?)?;
    if end < start {
        return Err(FieldError::EndBeforeStart { start_field: "start_time", end_field: "end_time", start, end });
    }
    let reporter = required(&p.reporter, "reporter")?;
    // The reporting side's details; the direction is the reporter's view.
    let (instance, vpc, direction) = match reporter {
        "SRC" | "SRC_GATEWAY" => (&p.src_instance, &p.src_vpc, FlowDirection::Egress),
        "DEST" | "DEST_GATEWAY" => (&p.dest_instance, &p.dest_vpc, FlowDirection::Ingress),
        other => return Err(bad("reporter", other, "is not SRC, DEST, SRC_GATEWAY or DEST_GATEWAY")),
    };
    let mut rec = FlowRecord::new(CloudProvider::Gcp, FlowFormat::GcpVpc, source, start, end);
    rec.src_addr = Some(fields::addr("connection.src_ip", required(&c.src_ip, "connection.src_ip")?)?);
    rec.dst_addr = Some(fields::addr("connection.dest_ip", required(&c.dest_ip, "connection.dest_ip")?)?);
    rec.src_port = c.src_port.as_ref().map(|v| fields::port("connection.src_port", v)).transpose()?;
    rec.dst_port = c.dest_port.as_ref().map(|v| fields::port("connection.dest_port", v)).transpose()?;
    rec.protocol = c.protocol.as_ref().map(|v| fields::protocol("connection.protocol", v)).transpose()?;
    rec.bytes = p.bytes_sent.as_ref().map(|v| fields::count("bytes_sent", v)).transpose()?;
    rec.packets = p.packets_sent.as_ref().map(|v| fields::count("packets_sent", v)).transpose()?;
    if let Some(rtt) = &p.rtt_msec {
        rec.extra.insert("rtt_msec".to_owned(), fields::count("rtt_msec", rtt)?.to_string());
    }
    // Without a disposition, GCP logged allowed traffic; a DROPPED flow was
    // denied by a firewall rule: an attempt, not a connection.
    rec.action = match p.disposition.as_ref().map(Str::as_str) {
        None | Some("ALLOWED") => Some(FlowAction::Accept),
        Some("DROPPED") => Some(FlowAction::Reject),
        Some(other) => return Err(bad("disposition", other, "is not ALLOWED or DROPPED")),
    };
    if let Some(d) = &p.disposition {
        rec.extra.insert("disposition".to_owned(), d.as_str().to_owned());
    }
    rec.flow_direction = Some(direction);
    rec.reporter = Some(Text::new(reporter));
    let instance = instance.as_ref();
    let vpc = vpc.as_ref();
    rec.account_id =
        owned(instance.and_then(|i| i.project_id.as_ref())).or_else(|| owned(vpc.and_then(|v| v.project_id.as_ref())));
    rec.instance_id = owned(instance.and_then(|i| i.vm_name.as_ref()));
    rec.region = owned(instance.and_then(|i| i.region.as_ref()));
    rec.vpc_id = owned(vpc.and_then(|v| v.vpc_name.as_ref()));
    rec.subnet_id = owned(vpc.and_then(|v| v.subnetwork_name.as_ref()));
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: MessageCtx<'static> = MessageCtx { topic: "flowlogs.raw", partition: 2, offset: 9, time: None };

    /// The example of the reference, pretty-printed as GCP documents it.
    const EXAMPLE: &str = r#"{"jsonPayload": {"bytes_sent": "1776",
 "connection": {"dest_ip": "203.0.113.12", "dest_port": 33478, "protocol": 6, "src_ip": "10.87.40.76", "src_port": 5601},
 "end_time": "2019-06-14T03:45:37.301953198Z", "packets_sent": "7", "reporter": "SRC", "rtt_msec": "36",
 "src_instance": {"project_id": "my-sample-project", "region": "us-east1", "vm_name": "kibana", "zone": "us-east1-b"},
 "src_vpc": {"project_id": "my-sample-project", "subnetwork_name": "default", "vpc_name": "default"},
 "start_time": "2019-06-14T03:45:37.186193305Z"}}"#;

    /// A whole Cloud Logging entry on one line (`{}` = the jsonPayload fields).
    fn entry_line(payload: &str) -> String {
        format!(
            r#"{{"insertId":"1kx4e2nf1b2k3","jsonPayload":{{{payload}}},"logName":"projects/host-project/logs/compute.googleapis.com%2Fvpc_flows","receiveTimestamp":"2024-03-01T10:00:09.482838017Z","resource":{{"labels":{{"location":"europe-west1-b","project_id":"host-project","subnetwork_id":"123","subnetwork_name":"cde"}},"type":"gce_subnetwork"}},"timestamp":"2024-03-01T10:00:09.482838017Z"}}"#
        )
    }

    const DEST_PAYLOAD: &str = r#""bytes_sent":"2048","connection":{"dest_ip":"10.10.0.5","dest_port":5432,"protocol":6,"src_ip":"10.20.0.7","src_port":41000},"dest_instance":{"project_id":"pci-project","region":"europe-west1","vm_name":"db-1","zone":"europe-west1-b"},"dest_vpc":{"project_id":"host-project","subnetwork_name":"cde","vpc_name":"shared"},"src_instance":{"project_id":"app-project","region":"europe-west1","vm_name":"app-1","zone":"europe-west1-c"},"src_vpc":{"project_id":"host-project","subnetwork_name":"apps","vpc_name":"shared"},"end_time":"2024-03-01T10:00:05.5Z","packets_sent":"12","reporter":"DEST","start_time":"2024-03-01T10:00:00Z""#;

    fn parse(text: &str) -> Parsed<FlowRecord> {
        parse_entries(text.as_bytes(), CTX)
    }

    #[test]
    fn the_reference_example_single_entry() {
        let p = parse(EXAMPLE);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.records.len(), 1);
        let r = &p.records[0];
        assert_eq!(r.provider, CloudProvider::Gcp);
        assert_eq!(r.format, FlowFormat::GcpVpc);
        assert_eq!(r.format_version, None);
        assert_eq!(r.src_addr.as_deref(), Some("10.87.40.76"));
        assert_eq!(r.dst_addr.as_deref(), Some("203.0.113.12"));
        assert_eq!((r.src_port, r.dst_port, r.protocol), (Some(5601), Some(33478), Some(6)));
        assert_eq!((r.bytes, r.packets), (Some(1776), Some(7)));
        assert_eq!((r.reverse_bytes, r.reverse_packets), (None, None));
        assert_eq!(r.start_time, 1_560_483_937_186_193);
        assert_eq!(r.end_time, 1_560_483_937_301_953);
        assert_eq!(r.action, Some(FlowAction::Accept));
        assert_eq!(r.reporter.as_deref(), Some("SRC"));
        assert_eq!(r.flow_direction, Some(FlowDirection::Egress));
        assert_eq!(r.account_id.as_deref(), Some("my-sample-project"));
        assert_eq!(r.instance_id.as_deref(), Some("kibana"));
        assert_eq!(r.region.as_deref(), Some("us-east1"));
        assert_eq!(r.vpc_id.as_deref(), Some("default"));
        assert_eq!(r.subnet_id.as_deref(), Some("default"));
        assert_eq!(r.interface_id, None);
        assert_eq!(r.extra.get("rtt_msec").map(String::as_str), Some("36"));
        assert_eq!(r.extra.len(), 1);
        assert_eq!(r.source, SourceRef { topic: "flowlogs.raw".into(), partition: 2, offset: 9, line: 1 });
    }

    #[test]
    fn the_reporter_side_gives_account_vpc_subnet_region_and_instance() {
        let p = parse(&entry_line(DEST_PAYLOAD));
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        let r = &p.records[0];
        assert_eq!(r.reporter.as_deref(), Some("DEST"));
        assert_eq!(r.flow_direction, Some(FlowDirection::Ingress));
        assert_eq!(r.account_id.as_deref(), Some("pci-project"));
        assert_eq!(r.instance_id.as_deref(), Some("db-1"));
        assert_eq!(r.region.as_deref(), Some("europe-west1"));
        assert_eq!(r.vpc_id.as_deref(), Some("shared"));
        assert_eq!(r.subnet_id.as_deref(), Some("cde"));
        assert_eq!(r.start_time, 1_709_287_200_000_000);
        assert_eq!(r.end_time, 1_709_287_205_500_000);
        assert!(r.extra.is_empty());
    }

    #[test]
    fn newline_delimited_entries_are_numbered_by_line() {
        let text =
            format!("{}\n\n{}\n{}\n", entry_line(DEST_PAYLOAD), entry_line(DEST_PAYLOAD), entry_line(DEST_PAYLOAD));
        let p = parse(&text);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.records.iter().map(|r| r.source.line).collect::<Vec<_>>(), [1, 3, 4]);
    }

    #[test]
    fn numbers_instead_of_strings_and_the_other_way_round() {
        let payload = DEST_PAYLOAD
            .replace(r#""bytes_sent":"2048""#, r#""bytes_sent":2048"#)
            .replace(r#""packets_sent":"12""#, r#""packets_sent":12"#)
            .replace(r#""dest_port":5432"#, r#""dest_port":"5432""#)
            .replace(r#""protocol":6"#, r#""protocol":"17""#);
        let p = parse(&entry_line(&payload));
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        let r = &p.records[0];
        assert_eq!((r.bytes, r.packets, r.dst_port, r.protocol), (Some(2048), Some(12), Some(5432), Some(17)));
    }

    #[test]
    fn dropped_flows_are_rejected_and_detail_objects_skipped() {
        let dropped = DEST_PAYLOAD.replace(
            r#""reporter":"DEST""#,
            r#""reporter":"DEST","disposition":"DROPPED","src_gke_details":{"cluster":{"cluster_name":"c"}},"src_google_service":{"type":"GOOGLE_API"},"internet_routing_details":{"egress_as_path":[{"as_details":[{"asn":1}]}]},"load_balancing":{"backend_service_name":"b"},"psc":{"psc_attachment":{}},"network_service":{"dscp":0}"#,
        );
        let p = parse_entries(format!(r#"{{"jsonPayload":{{{dropped}}}}}"#).as_bytes(), CTX);
        assert_eq!(p.records.len(), 1, "{:?}", p.rejected);
        assert_eq!(p.records[0].action, Some(FlowAction::Reject));
        assert_eq!(p.records[0].extra.get("disposition").map(String::as_str), Some("DROPPED"));
        let allowed = DEST_PAYLOAD.replace(r#""reporter":"DEST""#, r#""reporter":"DEST","disposition":"ALLOWED""#);
        let p = parse_entries(format!(r#"{{"jsonPayload":{{{allowed}}}}}"#).as_bytes(), CTX);
        assert_eq!(p.records[0].action, Some(FlowAction::Accept));
    }

    #[test]
    fn ipv6_gateway_reporter_and_missing_instance() {
        let p = parse(&entry_line(
            r#""connection":{"dest_ip":"2001:DB8::10","protocol":58,"src_ip":"2001:db8:0:0:0:0:0:1"},"src_vpc":{"project_id":"host-project","subnetwork_name":"edge","vpc_name":"shared"},"reporter":"SRC_GATEWAY","start_time":"2024-03-01T10:00:00Z","end_time":"2024-03-01T10:00:00Z""#,
        ));
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        let r = &p.records[0];
        assert_eq!(r.src_addr.as_deref(), Some("2001:db8::1"));
        assert_eq!(r.dst_addr.as_deref(), Some("2001:db8::10"));
        assert_eq!((r.src_port, r.dst_port, r.protocol), (None, None, Some(58)));
        assert_eq!((r.bytes, r.packets), (None, None));
        assert_eq!(r.account_id.as_deref(), Some("host-project"));
        assert_eq!((r.instance_id.as_deref(), r.region.as_deref()), (None, None));
        assert_eq!(r.subnet_id.as_deref(), Some("edge"));
        assert_eq!(r.flow_direction, Some(FlowDirection::Egress));
    }

    #[test]
    fn one_bad_entry_is_refused_alone_with_its_line_and_text() {
        let bad_line = entry_line(&DEST_PAYLOAD.replace(r#""dest_port":5432"#, r#""dest_port":70000"#));
        let text = format!("{}\n{bad_line}\n{}\n", entry_line(DEST_PAYLOAD), entry_line(DEST_PAYLOAD));
        let p = parse(&text);
        assert_eq!(p.records.iter().map(|r| r.source.line).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(
            p.rejected,
            [Rejected::new(2, bad_line, "parse", "field 'connection.dest_port': '70000' is not a port (0-65535)")]
        );
    }

    #[test]
    fn bad_entries_name_the_problem() {
        let cases = [
            (
                DEST_PAYLOAD.replace(r#""src_ip":"10.20.0.7""#, r#""src_ip":"10.20.0""#),
                "field 'connection.src_ip': '10.20.0' is not an IP address",
            ),
            (
                DEST_PAYLOAD.replace(r#""bytes_sent":"2048""#, r#""bytes_sent":"-1""#),
                "field 'bytes_sent': '-1' is not a non-negative count",
            ),
            (
                DEST_PAYLOAD.replace(r#""protocol":6"#, r#""protocol":256"#),
                "field 'connection.protocol': '256' is not an IANA protocol number (0-255)",
            ),
            (
                DEST_PAYLOAD.replace(r#""end_time":"2024-03-01T10:00:05.5Z""#, r#""end_time":"2024-03-01T09:00:00Z""#),
                "field 'end_time' (2024-03-01T09:00:00Z) is before field 'start_time' (2024-03-01T10:00:00Z)",
            ),
            (
                DEST_PAYLOAD.replace(r#""start_time":"2024-03-01T10:00:00Z""#, r#""start_time":"yesterday""#),
                "field 'start_time': 'yesterday' is not an RFC 3339 time",
            ),
            (
                DEST_PAYLOAD
                    .replace(r#""start_time":"2024-03-01T10:00:00Z""#, r#""start_time":"1960-01-01T00:00:00Z""#),
                "field 'start_time': '1960-01-01T00:00:00Z' is in year 1960, outside the accepted range of flow times (1970-01-01 to 2099-12-31)",
            ),
            (
                DEST_PAYLOAD.replace(r#""reporter":"DEST""#, r#""reporter":"MIDDLE""#),
                "field 'reporter': 'MIDDLE' is not SRC, DEST, SRC_GATEWAY or DEST_GATEWAY",
            ),
            (DEST_PAYLOAD.replace(r#","reporter":"DEST""#, ""), "field 'reporter' is missing"),
            (
                DEST_PAYLOAD.replace(r#""src_ip":"10.20.0.7""#, r#""src_ip":7"#),
                "GCP log entry: invalid type: integer `7`, expected a string at line 1 column 139",
            ),
        ];
        for (payload, reason) in cases {
            let line = entry_line(&payload);
            let p = parse(&line);
            assert!(p.records.is_empty(), "{reason}");
            assert_eq!(p.rejected.len(), 1);
            assert_eq!((p.rejected[0].line, p.rejected[0].kind), (1, "parse"));
            assert_eq!(p.rejected[0].reason, reason);
            assert_eq!(p.rejected[0].raw, line.as_bytes());
        }
    }

    #[test]
    fn other_logs_are_not_flows() {
        let firewall = entry_line(DEST_PAYLOAD).replace("%2Fvpc_flows", "%2Ffirewall");
        let p = parse(&firewall);
        assert_eq!(p.rejected[0].kind, "unsupported");
        assert_eq!(
            p.rejected[0].reason,
            "log entry of 'projects/host-project/logs/compute.googleapis.com%2Ffirewall' is not a VPC flow log (logName .../compute.googleapis.com%2Fvpc_flows)"
        );
        let p = parse(r#"{"textPayload":"hello"}"#);
        assert_eq!(p.rejected[0].reason, "log entry has no jsonPayload: not a VPC flow-log entry");
        let p = parse(r#"{"jsonPayload":{"message":"hello"}}"#);
        assert_eq!(p.rejected[0].reason, "field 'connection' is missing");
    }
}
