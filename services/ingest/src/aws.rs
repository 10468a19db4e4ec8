//! AWS VPC Flow Logs: one space-separated line → one [`FlowRecord`].
//!
//! The field order is a [`Layout`]: the default version-2 format, or any
//! custom subset in any order, named by the field names AWS uses
//! (`version vpc-id ...`). A layout comes from a message header, a header
//! line in the payload (S3 files), or configuration; it is never guessed
//! from the number of tokens.

use psg_domain::time::Micros;

pub use crate::fields::TimeError;
use crate::fields::{self, show_time};
use crate::parsed::{MessageCtx, Parsed, Rejected, Sink};
use psg_domain::{CloudProvider, FlowAction, FlowDirection, FlowFormat, FlowRecord, LogStatus, SourceRef, Text};

/// One field of the AWS flow-log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Version,
    AccountId,
    InterfaceId,
    SrcAddr,
    DstAddr,
    SrcPort,
    DstPort,
    Protocol,
    Packets,
    Bytes,
    Start,
    End,
    Action,
    LogStatus,
    VpcId,
    SubnetId,
    InstanceId,
    TcpFlags,
    PktSrcAddr,
    PktDstAddr,
    Region,
    FlowDirection,
    TrafficPath,
    /// A known field without a FlowRecord column: kept in `extra` under its name.
    Extra(&'static str),
    /// Transit Gateway: the attachment whose traffic a record describes
    /// (the record's reporter; also kept in `extra`).
    TgwAttachment,
    /// Transit Gateway: packets of the flow lost for one reason (kept in
    /// `extra`; all packets lost means the flow was not delivered).
    PacketsLost(&'static str),
    /// A field name this version does not know (AWS adds fields): its raw
    /// value is kept in `extra` under its name ([`Layout::unknown`]).
    Unknown(u16),
}

/// Every field name AWS documents for VPC flow logs (versions 2–8 and newer).
const NAMES: &[(&str, Field)] = &[
    ("version", Field::Version),
    ("account-id", Field::AccountId),
    ("interface-id", Field::InterfaceId),
    ("srcaddr", Field::SrcAddr),
    ("dstaddr", Field::DstAddr),
    ("srcport", Field::SrcPort),
    ("dstport", Field::DstPort),
    ("protocol", Field::Protocol),
    ("packets", Field::Packets),
    ("bytes", Field::Bytes),
    ("start", Field::Start),
    ("end", Field::End),
    ("action", Field::Action),
    ("log-status", Field::LogStatus),
    ("vpc-id", Field::VpcId),
    ("subnet-id", Field::SubnetId),
    ("instance-id", Field::InstanceId),
    ("tcp-flags", Field::TcpFlags),
    ("type", Field::Extra("type")),
    ("pkt-srcaddr", Field::PktSrcAddr),
    ("pkt-dstaddr", Field::PktDstAddr),
    ("region", Field::Region),
    ("az-id", Field::Extra("az-id")),
    ("sublocation-type", Field::Extra("sublocation-type")),
    ("sublocation-id", Field::Extra("sublocation-id")),
    ("pkt-src-aws-service", Field::Extra("pkt-src-aws-service")),
    ("pkt-dst-aws-service", Field::Extra("pkt-dst-aws-service")),
    ("flow-direction", Field::FlowDirection),
    ("traffic-path", Field::TrafficPath),
    ("ecs-cluster-arn", Field::Extra("ecs-cluster-arn")),
    ("ecs-cluster-name", Field::Extra("ecs-cluster-name")),
    ("ecs-container-instance-arn", Field::Extra("ecs-container-instance-arn")),
    ("ecs-container-instance-id", Field::Extra("ecs-container-instance-id")),
    ("ecs-container-id", Field::Extra("ecs-container-id")),
    ("ecs-second-container-id", Field::Extra("ecs-second-container-id")),
    ("ecs-service-name", Field::Extra("ecs-service-name")),
    ("ecs-task-definition-arn", Field::Extra("ecs-task-definition-arn")),
    ("ecs-task-arn", Field::Extra("ecs-task-arn")),
    ("ecs-task-id", Field::Extra("ecs-task-id")),
    ("reject-reason", Field::Extra("reject-reason")),
    ("resource-id", Field::Extra("resource-id")),
    ("encryption-status", Field::Extra("encryption-status")),
    // version 11
    ("interface-type", Field::Extra("interface-type")),
    ("next-hop-interface-id", Field::Extra("next-hop-interface-id")),
    ("next-hop-subnet-id", Field::Extra("next-hop-subnet-id")),
    ("next-hop-az-id", Field::Extra("next-hop-az-id")),
    ("next-hop-vpc-id", Field::Extra("next-hop-vpc-id")),
    ("next-hop-interface-type", Field::Extra("next-hop-interface-type")),
    ("instance-tag", Field::Extra("instance-tag")),
    ("instance-tag-2", Field::Extra("instance-tag-2")),
    ("interface-tag", Field::Extra("interface-tag")),
    ("interface-tag-2", Field::Extra("interface-tag-2")),
    ("asg-tag", Field::Extra("asg-tag")),
    ("asg-tag-2", Field::Extra("asg-tag-2")),
    // Transit Gateway flow logs (version 6)
    ("resource-type", Field::Extra("resource-type")),
    ("tgw-id", Field::Extra("tgw-id")),
    ("tgw-attachment-id", Field::TgwAttachment),
    ("tgw-src-vpc-account-id", Field::Extra("tgw-src-vpc-account-id")),
    ("tgw-dst-vpc-account-id", Field::Extra("tgw-dst-vpc-account-id")),
    ("tgw-src-vpc-id", Field::Extra("tgw-src-vpc-id")),
    ("tgw-dst-vpc-id", Field::Extra("tgw-dst-vpc-id")),
    ("tgw-src-subnet-id", Field::Extra("tgw-src-subnet-id")),
    ("tgw-dst-subnet-id", Field::Extra("tgw-dst-subnet-id")),
    ("tgw-src-eni", Field::Extra("tgw-src-eni")),
    ("tgw-dst-eni", Field::Extra("tgw-dst-eni")),
    ("tgw-src-az-id", Field::Extra("tgw-src-az-id")),
    ("tgw-dst-az-id", Field::Extra("tgw-dst-az-id")),
    ("tgw-pair-attachment-id", Field::Extra("tgw-pair-attachment-id")),
    ("packets-lost-no-route", Field::PacketsLost("packets-lost-no-route")),
    ("packets-lost-blackhole", Field::PacketsLost("packets-lost-blackhole")),
    ("packets-lost-mtu-exceeded", Field::PacketsLost("packets-lost-mtu-exceeded")),
    ("packets-lost-ttl-expired", Field::PacketsLost("packets-lost-ttl-expired")),
];

/// Field names that only Transit Gateway flow logs have: a layout with one
/// of them describes a transit gateway's flows, not an interface's.
const TGW_ONLY: &[&str] = &[
    "resource-type",
    "tgw-id",
    "tgw-attachment-id",
    "tgw-src-vpc-id",
    "tgw-dst-vpc-id",
    "tgw-src-eni",
    "tgw-dst-eni",
    "tgw-pair-attachment-id",
];

/// The default format of Transit Gateway flow logs: every field of
/// versions 2 to 6, in the order of AWS's table.
pub const TGW_DEFAULT_FORMAT: &str = "version resource-type account-id tgw-id tgw-attachment-id tgw-src-vpc-account-id tgw-dst-vpc-account-id tgw-src-vpc-id tgw-dst-vpc-id tgw-src-subnet-id tgw-dst-subnet-id tgw-src-eni tgw-dst-eni tgw-src-az-id tgw-dst-az-id tgw-pair-attachment-id srcaddr dstaddr srcport dstport protocol packets bytes start end log-status type packets-lost-no-route packets-lost-blackhole packets-lost-mtu-exceeded packets-lost-ttl-expired tcp-flags region flow-direction pkt-src-aws-service pkt-dst-aws-service";

/// The default format (version 2), which AWS does not let anyone change.
pub const DEFAULT_FORMAT: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status";

/// An ordered list of fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    fields: Vec<Field>,
    /// The names of its [`Field::Unknown`] fields.
    unknown: Vec<String>,
    /// A Transit Gateway flow log (it has a field only those have).
    tgw: bool,
}

pub use crate::parsed::TransportTime;

/// Why a layout is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("unknown field '{name}' in the AWS flow-log format{}", suggestion.as_ref().map(|s| format!(", did you mean '{s}'?")).unwrap_or_default())]
    UnknownField { name: String, suggestion: Option<String> },
    #[error("field '{0}' appears twice in the AWS flow-log format")]
    Duplicate(String),
    #[error(
        "the AWS flow-log format has no addresses (srcaddr and dstaddr, or pkt-srcaddr and pkt-dstaddr) and no interface-id: its records cannot be attributed to anything"
    )]
    Unattributable,
    #[error("empty AWS flow-log format")]
    Empty,
}

impl Layout {
    /// The default version-2 layout.
    pub fn default_v2() -> Self {
        match Self::parse(DEFAULT_FORMAT) {
            Ok(l) => l,
            Err(e) => unreachable!("the default format is valid: {e}"),
        }
    }

    /// Parses a field list such as `version vpc-id srcaddr ...` (as in a
    /// header line or AWS's `${version} ${vpc-id}` format string).
    pub fn parse(spec: &str) -> Result<Self, LayoutError> {
        let mut fields = Vec::new();
        let mut unknown: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut tgw = false;
        for raw in spec.split_ascii_whitespace() {
            let name = raw.trim_start_matches("${").trim_end_matches('}');
            tgw |= TGW_ONLY.contains(&name);
            if seen.contains(&name) {
                return Err(LayoutError::Duplicate(name.to_owned()));
            }
            seen.push(name);
            let field = match NAMES.iter().find(|(n, _)| *n == name) {
                Some((_, f)) => *f,
                None if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) => {
                    return Err(LayoutError::UnknownField { name: name.chars().take(64).collect(), suggestion: None });
                }
                None => {
                    unknown.push(name.to_owned());
                    Field::Unknown((unknown.len() - 1) as u16)
                }
            };
            fields.push(field);
        }
        if fields.is_empty() {
            return Err(LayoutError::Empty);
        }
        let has = |f: Field| fields.contains(&f);
        let pair = (has(Field::SrcAddr) && has(Field::DstAddr)) || (has(Field::PktSrcAddr) && has(Field::PktDstAddr));
        if !pair && !has(Field::InterfaceId) {
            return Err(LayoutError::Unattributable);
        }
        Ok(Self { fields, unknown, tgw })
    }

    /// The default Transit Gateway layout.
    pub fn default_tgw() -> Self {
        match Self::parse(TGW_DEFAULT_FORMAT) {
            Ok(l) => l,
            Err(e) => unreachable!("the Transit Gateway default format is valid: {e}"),
        }
    }

    /// Whether it is a Transit Gateway flow log's layout.
    pub fn is_tgw(&self) -> bool {
        self.tgw
    }

    /// Whether `line` is a record of the Transit Gateway default format
    /// (`6 TransitGateway ...`, 36 fields): read so when no format says
    /// otherwise.
    pub fn is_tgw_default_line(line: &str) -> bool {
        let mut t = line.split_ascii_whitespace();
        t.next().is_some() && t.next() == Some("TransitGateway") && line.split_ascii_whitespace().count() == 36
    }

    /// The field names of this layout this version does not know.
    pub fn unknown(&self) -> &[String] {
        &self.unknown
    }

    /// Whether its records carry their own time (`start` or `end`).
    pub fn has_time(&self) -> bool {
        self.fields.iter().any(|f| matches!(f, Field::Start | Field::End))
    }

    /// Whether `line` is a header line (field names, not values).
    pub fn is_header_line(line: &str) -> bool {
        line.split_ascii_whitespace().next().is_some_and(|first| {
            let first = first.trim_start_matches("${").trim_end_matches('}');
            NAMES.iter().any(|(n, _)| *n == first)
        })
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// The known name closest to `name` (by edit distance), if close enough.
fn suggest(name: &str) -> Option<String> {
    NAMES
        .iter()
        .map(|(n, _)| (*n, edit_distance(name, n)))
        .filter(|(_, d)| *d <= 2)
        .min_by_key(|(_, d)| *d)
        .map(|(n, _)| n.to_owned())
}

/// The known field name `name` may be a typo of.
pub fn did_you_mean(name: &str) -> Option<String> {
    suggest(name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Why one line is not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("line has {found} fields, the format has {expected}")]
    FieldCount { found: usize, expected: usize },
    #[error("field '{field}': '{value}' {problem}")]
    Value { field: &'static str, value: String, problem: &'static str },
    #[error("record has log-status OK but no action")]
    NoAction,
    #[error(
        "records cannot be placed in time: the format has no start or end, and the message carries no time (a Kafka timestamp, or header psg.object.time)"
    )]
    NoTime,
    #[error("field 'end' ({}) is before field 'start' ({})", show_time(*.end), show_time(*.start))]
    EndBeforeStart { start: Micros, end: Micros },
    #[error(transparent)]
    Time(#[from] TimeError),
}

fn bad(field: &'static str, value: &str, problem: &'static str) -> LineError {
    LineError::Value { field, value: value.chars().take(64).collect(), problem }
}

fn opt(v: &str) -> Option<&str> {
    (v != "-").then_some(v)
}

/// A valid address in canonical text form. An IPv4 address that parses is
/// already canonical (no leading zeros are accepted), so its text is kept
/// as is; an IPv6 address is rewritten in its canonical compressed form.
fn addr(field: &'static str, v: &str) -> Result<Option<Text>, LineError> {
    match opt(v) {
        None => Ok(None),
        Some(v) if !v.as_bytes().contains(&b':') => {
            if is_ipv4(v) {
                Ok(Some(Text::new(v)))
            } else {
                Err(bad(field, v, "is not an IP address"))
            }
        }
        Some(v) => match v.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => Ok(Some(Text::from(ip.to_string()))),
            Err(_) => Err(bad(field, v, "is not an IP address")),
        },
    }
}

/// Dotted-quad IPv4 as `std` accepts it (four decimal octets up to 255, no
/// leading zeros), without building the address.
fn is_ipv4(v: &str) -> bool {
    let (mut octets, mut value, mut len, mut leading_zero) = (0u32, 0u32, 0u32, false);
    for &b in v.as_bytes() {
        match b {
            b'0'..=b'9' => {
                if len == 0 {
                    leading_zero = b == b'0';
                } else if leading_zero {
                    return false;
                }
                value = value * 10 + u32::from(b - b'0');
                len += 1;
                if value > 255 {
                    return false;
                }
            }
            b'.' if len > 0 && octets < 3 => {
                octets += 1;
                (value, len) = (0, 0);
            }
            _ => return false,
        }
    }
    octets == 3 && len > 0
}

/// A run of ASCII digits as a number; `None` for anything else or on overflow.
fn digits(v: &str) -> Option<u64> {
    if v.is_empty() || v.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v.as_bytes() {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(n)
}

/// An unsigned number up to `max`, or `-`.
fn bounded(field: &'static str, v: &str, max: u64, problem: &'static str) -> Result<Option<i32>, LineError> {
    match opt(v) {
        None => Ok(None),
        Some(v) => match digits(v) {
            Some(n) if n <= max => Ok(Some(n as i32)),
            _ => Err(bad(field, v, problem)),
        },
    }
}

/// The bytes that separate tokens: space, tab, CR, LF, form feed.
const SEPARATOR: [bool; 256] = {
    let mut t = [false; 256];
    t[b' ' as usize] = true;
    t[b'\t' as usize] = true;
    t[b'\r' as usize] = true;
    t[b'\n' as usize] = true;
    t[0x0c] = true;
    t
};

/// Space-separated tokens (runs of spaces and tabs are one separator).
struct Tokens<'a> {
    line: &'a str,
    /// Where the next token's search starts.
    at: usize,
}

impl<'a> Tokens<'a> {
    fn new(line: &'a str) -> Self {
        Self { line, at: 0 }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.line.as_bytes();
        let mut i = self.at;
        while i < bytes.len() && SEPARATOR[usize::from(bytes[i])] {
            i += 1;
        }
        if i == bytes.len() {
            self.at = i;
            return None;
        }
        let start = i;
        while i < bytes.len() && !SEPARATOR[usize::from(bytes[i])] {
            i += 1;
        }
        self.at = i;
        // Token boundaries are ASCII, so they are char boundaries of the line.
        self.line.get(start..i)
    }
}

/// Unix seconds, or milliseconds (13 digits) as some producers emit, in
/// the accepted range of flow times (1970 to 2099; from 2000 for milliseconds).
fn time(field: &'static str, v: &str) -> Result<Option<Micros>, LineError> {
    let Some(v) = opt(v) else { return Ok(None) };
    match fields::unix_digits(field, v, digits(v)) {
        Ok(us) => Ok(Some(us)),
        Err(fields::FieldError::Time(e)) => Err(LineError::Time(e)),
        Err(_) => Err(bad(field, v, "is not a Unix time")),
    }
}

/// Parses every line of a text payload. The layout is `layout`, unless a
/// header line in the payload names another (S3 files start with one); a
/// header line is ignored when `fixed` is set (the message header named the
/// layout and wins).
pub fn parse_payload(
    text: &[u8],
    layout: std::borrow::Cow<'_, Layout>,
    fixed: bool,
    ctx: MessageCtx<'_>,
) -> Parsed<FlowRecord> {
    Parsed::collect(|out| parse_payload_into(text, layout, fixed, ctx, out))
}

/// [`parse_payload`], into a sink.
pub fn parse_payload_into(
    text: &[u8],
    mut layout: std::borrow::Cow<'_, Layout>,
    fixed: bool,
    ctx: MessageCtx<'_>,
    out: &mut dyn Sink<FlowRecord>,
) {
    announce_unknown(&layout, out);
    for (line_no, line) in crate::payload::lines(text) {
        if let Err(r) = crate::payload::check_line(line_no, line) {
            out.reject(r);
            continue;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            let problem = crate::payload::utf8_problem(line).unwrap_or_default();
            out.reject(Rejected::new(line_no, line, "encoding", format!("line {problem}")));
            continue;
        };
        if Layout::is_header_line(line) {
            if fixed {
                continue;
            }
            match Layout::parse(line) {
                Ok(l) => {
                    announce_unknown(&l, out);
                    layout = std::borrow::Cow::Owned(l);
                }
                Err(e) => {
                    // Every later line depends on this layout: none can be
                    // read, so the message is refused whole (the lines before
                    // it were taken).
                    out.reject(Rejected::message(
                        "format",
                        format!("header line {line_no}: {e}; no line after it can be read"),
                    ));
                    return;
                }
            }
            continue;
        }
        // A Transit Gateway record of the default format, where no format
        // says otherwise (a line of another layout cannot have its 36
        // fields and `TransitGateway` second).
        let layout: &Layout = if layout.len() != 36 && Layout::is_tgw_default_line(line) {
            static TGW: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
            TGW.get_or_init(Layout::default_tgw)
        } else {
            &layout
        };
        out.push(
            parse_line_at(layout, line, ctx.source(line_no), ctx.time)
                .map_err(|e| Rejected::new(line_no, line, "parse", e.to_string())),
        );
    }
}

/// Tells `out` of the fields of `layout` this version does not know, if any.
pub(crate) fn announce_unknown(layout: &Layout, out: &mut dyn Sink<FlowRecord>) {
    if !layout.unknown.is_empty() {
        out.unknown_fields(&layout.unknown);
    }
}

/// Parses one line with `layout`. `source` says where it came from.
pub fn parse_line(layout: &Layout, line: &str, source: SourceRef) -> Result<FlowRecord, LineError> {
    parse_line_at(layout, line, source, None)
}

/// [`parse_line`]; a layout without `start`/`end` takes its records' time
/// from `transport`. A line of the wrong length is named so, not by the
/// first value that does not fit.
pub fn parse_line_at(
    layout: &Layout,
    line: &str,
    source: SourceRef,
    transport: Option<TransportTime>,
) -> Result<FlowRecord, LineError> {
    parse_fields(layout, line, source, transport).map_err(|e| match e {
        LineError::Value { .. } | LineError::Time(_) => {
            let found = Tokens::new(line).count();
            if found == layout.len() { e } else { LineError::FieldCount { found, expected: layout.len() } }
        }
        e => e,
    })
}

#[inline]
fn parse_fields(
    layout: &Layout,
    line: &str,
    source: SourceRef,
    transport: Option<TransportTime>,
) -> Result<FlowRecord, LineError> {
    let mut tokens = Tokens::new(line);
    let mut rec = FlowRecord::new(CloudProvider::Aws, FlowFormat::AwsVpc, source, 0, 0);
    let (mut start, mut end) = (None, None);
    let mut lost: i64 = 0;
    let mut count = 0;
    for (field, v) in layout.fields.iter().zip(tokens.by_ref()) {
        count += 1;
        let s = || opt(v).map(Text::new);
        match field {
            Field::Version => rec.format_version = bounded("version", v, 255, "is not a version number (0-255)")?,
            Field::AccountId => rec.account_id = s(),
            Field::InterfaceId => rec.interface_id = s(),
            Field::SrcAddr => rec.src_addr = addr("srcaddr", v)?,
            Field::DstAddr => rec.dst_addr = addr("dstaddr", v)?,
            Field::PktSrcAddr => rec.pkt_src_addr = addr("pkt-srcaddr", v)?,
            Field::PktDstAddr => rec.pkt_dst_addr = addr("pkt-dstaddr", v)?,
            Field::SrcPort => rec.src_port = port("srcport", v)?,
            Field::DstPort => rec.dst_port = port("dstport", v)?,
            Field::Protocol => rec.protocol = bounded("protocol", v, 255, "is not an IANA protocol number (0-255)")?,
            Field::Packets => rec.packets = count_of("packets", v)?,
            Field::Bytes => rec.bytes = count_of("bytes", v)?,
            Field::Start => start = time("start", v)?,
            Field::End => end = time("end", v)?,
            Field::Action => {
                rec.action = match opt(v) {
                    None => None,
                    Some("ACCEPT") => Some(FlowAction::Accept),
                    Some("REJECT") => Some(FlowAction::Reject),
                    Some(other) => return Err(bad("action", other, "is not ACCEPT or REJECT")),
                }
            }
            Field::LogStatus => {
                rec.log_status = match v {
                    "OK" => LogStatus::Ok,
                    "NODATA" => LogStatus::NoData,
                    "SKIPDATA" => LogStatus::SkipData,
                    other => return Err(bad("log-status", other, "is not OK, NODATA or SKIPDATA")),
                }
            }
            Field::VpcId => rec.vpc_id = s(),
            Field::SubnetId => rec.subnet_id = s(),
            Field::InstanceId => rec.instance_id = s(),
            Field::Region => rec.region = s(),
            Field::TcpFlags => rec.tcp_flags = bounded("tcp-flags", v, 255, "is not a TCP flags value (0-255)")?,
            Field::TrafficPath => {
                rec.traffic_path = bounded("traffic-path", v, 255, "is not a traffic-path code (0-255)")?
            }
            Field::FlowDirection => {
                rec.flow_direction = match opt(v) {
                    None => None,
                    Some("ingress") => Some(FlowDirection::Ingress),
                    Some("egress") => Some(FlowDirection::Egress),
                    Some(other) => return Err(bad("flow-direction", other, "is not ingress or egress")),
                }
            }
            Field::Extra(name) => {
                if let Some(v) = opt(v) {
                    rec.extra.insert((*name).to_owned(), v.to_owned());
                }
            }
            Field::TgwAttachment => {
                if let Some(v) = opt(v) {
                    rec.reporter = Some(Text::new(v));
                    rec.extra.insert("tgw-attachment-id".to_owned(), v.to_owned());
                }
            }
            Field::PacketsLost(name) => {
                if let Some(n) = count_of(name, v)? {
                    lost = lost.saturating_add(n);
                    rec.extra.insert((*name).to_owned(), n.to_string());
                }
            }
            Field::Unknown(i) => {
                if let (Some(v), Some(name)) = (opt(v), layout.unknown.get(usize::from(*i))) {
                    rec.extra.insert(name.clone(), v.to_owned());
                }
            }
        }
    }
    let extra_tokens = tokens.count();
    if count != layout.len() || extra_tokens > 0 {
        return Err(LineError::FieldCount { found: count + extra_tokens, expected: layout.len() });
    }
    match (start, end, transport) {
        (None, None, Some(t)) if !layout.has_time() => {
            // No time of its own: the message's, and which one it was.
            (rec.start_time, rec.end_time) = (t.at, t.at);
            rec.extra.insert(TIME_SOURCE.to_owned(), t.source.to_owned());
        }
        (None, None, None) if !layout.has_time() => return Err(LineError::NoTime),
        (start, end, _) => {
            rec.start_time = start.or(end).ok_or_else(|| bad("start", "-", "is missing"))?;
            rec.end_time = end.or(start).ok_or_else(|| bad("end", "-", "is missing"))?;
        }
    }
    if rec.end_time < rec.start_time {
        return Err(LineError::EndBeforeStart { start: rec.start_time, end: rec.end_time });
    }
    if layout.tgw && rec.log_status == LogStatus::Ok && rec.action.is_none() {
        // A transit gateway logs no action: its flow was delivered unless
        // the packets-lost counters account for every packet.
        let packets = rec.packets.unwrap_or(0);
        let dropped = packets > 0 && lost >= packets;
        rec.action = Some(if dropped { FlowAction::Reject } else { FlowAction::Accept });
        rec.extra.insert(ACTION_SOURCE.to_owned(), "tgw-packets-lost".to_owned());
    }
    if rec.log_status == LogStatus::Ok && rec.action.is_none() {
        if layout.fields.contains(&Field::Action) {
            return Err(LineError::NoAction);
        }
        // The format does not log the action: counted as accepted, so that
        // scope errs towards inclusion, and marked so.
        rec.action = Some(FlowAction::Accept);
        rec.extra.insert(ACTION_LOGGED.to_owned(), "false".to_owned());
    }
    Ok(rec)
}

pub use psg_domain::extra::{ACTION_LOGGED, ACTION_SOURCE, TIME_SOURCE};

fn port(field: &'static str, v: &str) -> Result<Option<i32>, LineError> {
    bounded(field, v, 65_535, "is not a port (0-65535)")
}

fn count_of(field: &'static str, v: &str) -> Result<Option<i64>, LineError> {
    match opt(v) {
        None => Ok(None),
        Some(v) => match digits(v).map(i64::try_from) {
            Some(Ok(n)) => Ok(Some(n)),
            Some(Err(_)) => Err(bad(field, v, "is larger than the largest count (2^63-1)")),
            None if fields::is_digits(v) => Err(bad(field, v, "is larger than the largest count (2^63-1)")),
            None => Err(bad(field, v, "is not a non-negative count")),
        },
    }
}

#[cfg(test)]
mod tests {
    use psg_domain::time::SECOND;

    use super::*;

    fn src(line: i32) -> SourceRef {
        SourceRef { topic: "flowlogs.raw".into(), partition: 0, offset: 7, line }
    }

    #[test]
    fn default_format_examples_from_aws() {
        let l = Layout::default_v2();
        let r = parse_line(&l, "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK", src(1)).unwrap();
        assert_eq!(r.account_id.as_deref(), Some("123456789010"));
        assert_eq!(r.interface_id.as_deref(), Some("eni-1235b8ca123456789"));
        assert_eq!(r.src_addr.as_deref(), Some("172.31.16.139"));
        assert_eq!(r.dst_port, Some(22));
        assert_eq!(r.protocol, Some(6));
        assert_eq!(r.packets, Some(20));
        assert_eq!(r.bytes, Some(4249));
        assert_eq!(r.start_time, 1_418_530_010 * SECOND);
        assert_eq!(r.end_time, 1_418_530_070 * SECOND);
        assert_eq!(r.action, Some(FlowAction::Accept));
        assert_eq!(r.format_version, Some(2));

        let nodata =
            parse_line(&l, "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA", src(2))
                .unwrap();
        assert_eq!(nodata.log_status, LogStatus::NoData);
        assert_eq!(nodata.action, None);
        assert_eq!(nodata.src_addr, None);

        let v6 = parse_line(&l, "2 123456789010 eni-1235b8ca123456789 2001:db8:1234:a100:8d6e:3477:df66:f105 2001:db8:1234:a102:3304:8879:34cf:4071 34892 22 6 54 8855 1477913708 1477913820 ACCEPT OK", src(3)).unwrap();
        assert_eq!(v6.src_addr.as_deref(), Some("2001:db8:1234:a100:8d6e:3477:df66:f105"));
    }

    #[test]
    fn double_spaces_leading_zero_accounts_and_milliseconds() {
        let l = Layout::default_v2();
        let r = parse_line(
            &l,
            "2  012345678901 eni-1 10.0.0.1  10.0.0.2 1 2 17 1 1 1418530010000 1418530070000 REJECT OK",
            src(1),
        )
        .unwrap();
        assert_eq!(r.account_id.as_deref(), Some("012345678901"));
        assert_eq!(r.start_time, 1_418_530_010 * SECOND);
        assert_eq!(r.action, Some(FlowAction::Reject));
    }

    #[test]
    fn custom_layouts_are_read_by_name() {
        let l = Layout::parse("version vpc-id subnet-id instance-id interface-id account-id type srcaddr dstaddr srcport dstport pkt-srcaddr pkt-dstaddr protocol bytes packets start end action tcp-flags log-status").unwrap();
        let r = parse_line(&l, "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43416 5001 52.213.180.42 10.0.0.62 6 568 8 1566848875 1566848933 ACCEPT 2 OK", src(1)).unwrap();
        assert_eq!(r.vpc_id.as_deref(), Some("vpc-abcdefab012345678"));
        assert_eq!(r.bytes, Some(568));
        assert_eq!(r.packets, Some(8));
        assert_eq!(r.tcp_flags, Some(2));
        assert_eq!(r.pkt_dst_addr.as_deref(), Some("10.0.0.62"));
        assert_eq!(r.extra.get("type").map(String::as_str), Some("IPv4"));
    }

    #[test]
    fn bad_values_are_named() {
        let l = Layout::default_v2();
        let e = parse_line(&l, "2 1 eni-1 10.0.0.1 10.0.0.2 1 70000 6 1 1 1 2 ACCEPT OK", src(1)).unwrap_err();
        assert_eq!(e.to_string(), "field 'dstport': '70000' is not a port (0-65535)");
        let e =
            parse_line(&l, "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1418530010 1418530070 ACCEPT", src(1)).unwrap_err();
        assert_eq!(e, LineError::FieldCount { found: 13, expected: 14 });
        let e = parse_line(&l, "2 1 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 1 1418530070 1418530010 ACCEPT OK", src(1))
            .unwrap_err();
        assert_eq!(e, LineError::EndBeforeStart { start: 1_418_530_070 * SECOND, end: 1_418_530_010 * SECOND });
        assert_eq!(e.to_string(), "field 'end' (2014-12-14T04:06:50Z) is before field 'start' (2014-12-14T04:07:50Z)");
        let e = parse_line(&l, "2 1 eni-1 10.0.0.999 10.0.0.2 1 2 6 1 1 1 2 ACCEPT OK", src(1)).unwrap_err();
        assert!(e.to_string().contains("srcaddr"), "{e}");
    }

    #[test]
    fn the_fast_ipv4_check_agrees_with_std() {
        for v in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "1.2.3.4",
            "256.0.0.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1..3.4",
            "",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.-4",
            "a.b.c.d",
            "1.2.3.4\n",
            "00.0.0.0",
            "999.1.1.1",
        ] {
            assert_eq!(is_ipv4(v), v.parse::<std::net::Ipv4Addr>().is_ok(), "{v:?}");
        }
    }

    #[test]
    fn tokens_split_on_runs_of_blanks() {
        let t: Vec<&str> = Tokens::new("  a\tb  c ").collect();
        assert_eq!(t, ["a", "b", "c"]);
        let t: Vec<&str> = Tokens::new("é x").collect();
        assert_eq!(t, ["é", "x"]);
    }

    #[test]
    fn addresses_are_canonical() {
        let l = Layout::default_v2();
        let r = parse_line(&l, "2 1 eni-1 2001:DB8:0:0::1 10.0.0.2 1 2 6 1 1 1418530010 1418530070 ACCEPT OK", src(1))
            .unwrap();
        assert_eq!(r.src_addr.as_deref(), Some("2001:db8::1"));
        let e = parse_line(&l, "2 1 eni-1 010.0.0.1 10.0.0.2 1 2 6 1 1 1 2 ACCEPT OK", src(1)).unwrap_err();
        assert!(e.to_string().contains("srcaddr"), "leading zeros are ambiguous (octal?): {e}");
    }

    #[test]
    fn layouts_are_refused_only_when_nothing_can_be_attributed() {
        // A name nobody knows yet is accepted (AWS adds fields); a typo gets a hint in the log.
        let l = Layout::parse("version vpcid srcaddr dstaddr start end").unwrap();
        assert_eq!(l.unknown(), ["vpcid"]);
        assert_eq!(did_you_mean("vpcid").as_deref(), Some("vpc-id"));
        assert!(Layout::parse("version tgw-id srcaddr dstaddr start end").unwrap().is_tgw());
        assert_eq!(Layout::parse("version srcaddr"), Err(LayoutError::Unattributable));
        assert!(!Layout::parse("version srcaddr dstaddr").unwrap().has_time());
        assert!(Layout::parse("version interface-id").is_ok());
        assert!(Layout::is_header_line("version account-id interface-id"));
        assert!(!Layout::is_header_line("2 123 eni-1"));
    }

    const T: TransportTime = TransportTime { at: 1_700_000_000_000_000, source: "kafka-timestamp" };

    /// AWS's own NAT gateway example ("Flow log records", custom format
    /// `instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr`):
    /// no time, no action. The message's time places it; it counts as
    /// accepted and says so.
    #[test]
    fn the_documented_nat_gateway_layout_is_read() {
        let l = Layout::parse("instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr").unwrap();
        let line = "i-01234567890123456 eni-1235b8ca123456789 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5";
        let r = parse_line_at(&l, line, src(1), Some(T)).unwrap();
        assert_eq!((r.start_time, r.end_time), (T.at, T.at));
        assert_eq!(r.extra.get(TIME_SOURCE).map(String::as_str), Some("kafka-timestamp"));
        assert_eq!(r.action, Some(FlowAction::Accept));
        assert_eq!(r.extra.get(ACTION_LOGGED).map(String::as_str), Some("false"));
        assert_eq!(r.pkt_dst_addr.as_deref(), Some("203.0.113.5"));
        // Without a message time there is nothing to place it by.
        assert_eq!(parse_line(&l, line, src(1)).unwrap_err(), LineError::NoTime);
        // `version interface-id srcaddr dstaddr` (another documented example).
        let l = Layout::parse("version interface-id srcaddr dstaddr").unwrap();
        let r = parse_line_at(&l, "3 eni-1235b8ca123456789 10.0.1.5 10.0.0.220", src(2), Some(T)).unwrap();
        assert_eq!(r.format_version, Some(3));
    }

    /// Version 11 fields, and a field nobody knows yet: the layout is read,
    /// the values kept under their names.
    #[test]
    fn version_11_and_unknown_fields_are_kept() {
        let l = Layout::parse(
            "version interface-id srcaddr dstaddr start end action log-status interface-type next-hop-vpc-id instance-tag asg-tag-2 quantum-tag",
        )
        .unwrap();
        let line = "11 eni-1 10.0.0.1 10.0.0.2 1700000000 1700000060 ACCEPT OK interface vpc-9 web asg-1 q1";
        let r = parse_line(&l, line, src(1)).unwrap();
        for (k, v) in [
            ("interface-type", "interface"),
            ("next-hop-vpc-id", "vpc-9"),
            ("instance-tag", "web"),
            ("asg-tag-2", "asg-1"),
            ("quantum-tag", "q1"),
        ] {
            assert_eq!(r.extra.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert!(!r.extra.contains_key(TIME_SOURCE), "its own time");
    }

    /// Transit Gateway flow logs, AWS's default format (every field of
    /// versions 2 to 6) with or without a header line, and a custom one:
    /// the ends and their VPCs, the attachment as reporter, the action
    /// derived from the packets-lost counters.
    #[test]
    fn transit_gateway_records_are_read() {
        let line = "6 TransitGateway 123456789012 tgw-0c7c6b3d tgw-attach-1a 111111111111 222222222222 vpc-src vpc-dst subnet-s subnet-d eni-tgw-s eni-tgw-d use1-az1 use1-az2 tgw-attach-2b 10.0.1.5 10.0.2.9 49152 5432 6 10 840 1700000000 1700000060 OK IPv4 0 0 0 0 2 us-east-1 egress - -";
        assert!(Layout::is_tgw_default_line(line));
        let r = parse_line(&Layout::default_tgw(), line, src(1)).unwrap();
        assert_eq!((r.src_addr.as_deref(), r.dst_addr.as_deref()), (Some("10.0.1.5"), Some("10.0.2.9")));
        assert_eq!((r.dst_port, r.packets, r.action), (Some(5432), Some(10), Some(FlowAction::Accept)));
        assert_eq!(r.reporter.as_deref(), Some("tgw-attach-1a"));
        assert_eq!(r.interface_id, None, "the attachment ENIs are not endpoints");
        for (k, v) in [
            ("tgw-src-vpc-id", "vpc-src"),
            ("tgw-dst-vpc-id", "vpc-dst"),
            ("tgw-src-eni", "eni-tgw-s"),
            ("tgw-dst-vpc-account-id", "222222222222"),
            ("resource-type", "TransitGateway"),
            (ACTION_SOURCE, "tgw-packets-lost"),
        ] {
            assert_eq!(r.extra.get(k).map(String::as_str), Some(v), "{k}");
        }
        // Every packet lost (no route): not delivered.
        let lost = line.replace("OK IPv4 0 0 0 0", "OK IPv4 7 3 0 0");
        let r = parse_line(&Layout::default_tgw(), &lost, src(1)).unwrap();
        assert_eq!(r.action, Some(FlowAction::Reject));
        // Some lost: delivered.
        let some = line.replace("OK IPv4 0 0 0 0", "OK IPv4 0 4 0 0");
        assert_eq!(parse_line(&Layout::default_tgw(), &some, src(1)).unwrap().action, Some(FlowAction::Accept));

        // Without a header, where no format is configured; with a header line
        // of a custom TGW format (the OpenTelemetry collector's fixture order).
        let parsed = parse_payload(
            line.as_bytes(),
            std::borrow::Cow::Owned(Layout::default_v2()),
            false,
            crate::parsed::MessageCtx { topic: "flowlogs.raw", partition: 0, offset: 0, time: None },
        );
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        assert_eq!(parsed.records[0].extra.get("tgw-id").map(String::as_str), Some("tgw-0c7c6b3d"));
        let custom = "version account-id tgw-id tgw-attachment-id tgw-src-vpc-id tgw-dst-vpc-id tgw-src-subnet-id tgw-dst-subnet-id tgw-src-eni tgw-dst-eni tgw-src-az-id tgw-dst-az-id tgw-pair-attachment-id srcaddr dstaddr srcport dstport protocol packets bytes packets-lost-no-route packets-lost-blackhole packets-lost-mtu-exceeded packets-lost-ttl-expired start end log-status type tcp-flags flow-direction region\n\
                      6 123456789012 tgw-0abc tgw-attach-0abc vpc-a vpc-b subnet-a subnet-b eni-a eni-b use1-az1 use1-az2 tgw-attach-0def 10.0.0.1 10.0.1.1 12345 443 6 10 1000 1 2 3 4 1700000000 1700000060 OK IPv4 2 ingress us-east-1\n";
        let parsed = parse_payload(
            custom.as_bytes(),
            std::borrow::Cow::Owned(Layout::default_v2()),
            false,
            crate::parsed::MessageCtx { topic: "flowlogs.raw", partition: 0, offset: 0, time: None },
        );
        assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
        let r = &parsed.records[0];
        assert_eq!(
            (r.action, r.flow_direction),
            (Some(FlowAction::Reject), Some(FlowDirection::Ingress)),
            "10 of 10 lost"
        );
    }

    /// A line of another layout is named as such, not by its first value
    /// that does not fit.
    #[test]
    fn the_field_count_is_named_before_any_value() {
        let l = Layout::default_v2();
        let tgw = "6 TransitGateway 123456789012 tgw-0c7c6b3d tgw-attach-1 123456789012 123456789012 vpc-1 vpc-2 subnet-1 subnet-2 use1-az1 use1-az2 tgw-attach-2 10.0.0.1 10.0.0.2 1 2 6 1 1 1700000000 1700000060 OK egress 0 0 0 0 - 3 eni-1";
        let e = parse_line(&l, tgw, src(1)).unwrap_err();
        assert_eq!(e.to_string(), format!("line has {} fields, the format has 14", tgw.split(' ').count()));
        // The right length and a bad value: the value is named.
        let e = parse_line(&l, "2 1 eni-1 tgw-1 10.0.0.2 1 2 6 1 1 1 2 ACCEPT OK", src(1)).unwrap_err();
        assert!(e.to_string().starts_with("field 'srcaddr': 'tgw-1'"), "{e}");
    }
}
