//! Flow-log messages → FlowRecords: which format a message is in, and the
//! parser that reads it.
//!
//! - Text lines: AWS VPC Flow Logs ([`crate::aws`]). The layout comes from
//!   the message header [`AWS_FORMAT_HEADER`], then a header line in the
//!   payload, then the configuration for the topic, then the default format.
//! - JSON: Azure NSG flow logs (v1, v2), Azure VNet flow logs, GCP VPC flow
//!   logs (Cloud Logging entries, one per message or newline-delimited, or in
//!   a Pub/Sub push envelope): [`parse_json`].

use std::borrow::Cow;
use std::collections::HashMap;

use psg_domain::FlowRecord;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::aws::{Layout, LayoutError};
use crate::fields::{self, Str};
use crate::parsed::{MessageCtx, Parsed, Rejected, Sink};
use crate::payload;

/// Message header that names the AWS field layout of the message's lines
/// (e.g. `version vpc-id srcaddr ...`).
pub const AWS_FORMAT_HEADER: &str = "psg.aws.format";

/// A configured AWS layout that is unusable, with the setting that holds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {source}")]
pub struct LayoutSettingError {
    /// `ingest.aws-format` or `ingest.aws-formats.<topic>`.
    pub setting: String,
    #[source]
    pub source: LayoutError,
}

#[cfg(feature = "service")]
impl psg_service::BuildFailure for LayoutSettingError {
    fn is_setting(&self) -> bool {
        true
    }
}

/// AWS layouts from configuration.
#[derive(Debug, Clone)]
pub struct AwsLayouts {
    default: Layout,
    by_topic: HashMap<String, Layout>,
}

impl AwsLayouts {
    /// `default`: the layout of headerless lines (`None`: AWS's default
    /// format); `by_topic`: per-topic layouts that override it.
    pub fn new<'a>(
        default: Option<&str>,
        by_topic: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<Self, LayoutSettingError> {
        let default = match default {
            None => Layout::default_v2(),
            Some(spec) => Layout::parse(spec)
                .map_err(|source| LayoutSettingError { setting: "ingest.aws-format".into(), source })?,
        };
        let by_topic = by_topic
            .into_iter()
            .map(|(t, spec)| {
                Layout::parse(spec)
                    .map(|l| (t.clone(), l))
                    .map_err(|source| LayoutSettingError { setting: format!("ingest.aws-formats.{t}"), source })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { default, by_topic })
    }

    fn for_topic(&self, topic: &str) -> &Layout {
        self.by_topic.get(topic).unwrap_or(&self.default)
    }
}

impl Default for AwsLayouts {
    fn default() -> Self {
        Self { default: Layout::default_v2(), by_topic: HashMap::new() }
    }
}

/// Parses one decoded flow-log payload.
pub fn parse(text: &[u8], aws_header: Option<&[u8]>, layouts: &AwsLayouts, ctx: MessageCtx<'_>) -> Parsed<FlowRecord> {
    Parsed::collect(|out| parse_into(text, aws_header, layouts, ctx, out))
}

/// [`parse`], into a sink: records and refusals are handed over one at a
/// time, in input order.
pub fn parse_into(
    text: &[u8],
    aws_header: Option<&[u8]>,
    layouts: &AwsLayouts,
    ctx: MessageCtx<'_>,
    out: &mut dyn Sink<FlowRecord>,
) {
    let aws = Aws { header: aws_header, layouts };
    if payload::is_json(text) {
        return parse_json_with(text, aws, ctx, out);
    }
    match aws.layout(ctx.topic) {
        // A header names the layout and wins over a header line.
        Ok(layout) => crate::aws::parse_payload_into(text, layout, aws_header.is_some(), ctx, out),
        Err(r) => out.reject(r),
    }
}

/// What a JSON flow-log message must be, for refusals.
const EXPECTED_JSON: &str = "expected an Azure flow-log blob {\"records\":[...]} (NSG or VNet flow logs), \
a GCP Cloud Logging entry with \"jsonPayload\" (one object, or one per line), \
a Pub/Sub push envelope {\"message\":{\"data\":\"<base64>\"},\"subscription\":...}, \
CloudWatch Logs subscription data {\"messageType\":...,\"logEvents\":[...]}, \
a {\"message\":\"<AWS flow-log line>\"} document or one Azure flow-log record";

/// Parses a JSON flow-log payload: an Azure blob (NSG or VNet flow logs),
/// GCP VPC flow-log entries (one object, or one per line), or a Pub/Sub
/// push envelope whose `message.data` holds GCP entries.
pub fn parse_json(text: &[u8], ctx: MessageCtx<'_>) -> Parsed<FlowRecord> {
    Parsed::collect(|out| parse_json_into(text, ctx, out))
}

/// [`parse_json`], into a sink.
pub fn parse_json_into(text: &[u8], ctx: MessageCtx<'_>, out: &mut dyn Sink<FlowRecord>) {
    let layouts = AwsLayouts::default();
    parse_json_with(text, Aws { header: None, layouts: &layouts }, ctx, out)
}

/// How AWS lines inside a JSON envelope are laid out: the message's
/// `psg.aws.format` header, else the configuration.
#[derive(Clone, Copy)]
struct Aws<'a> {
    header: Option<&'a [u8]>,
    layouts: &'a AwsLayouts,
}

impl<'a> Aws<'a> {
    fn layout(&self, topic: &str) -> Result<Cow<'a, Layout>, Rejected> {
        match self.header {
            None => Ok(Cow::Borrowed(self.layouts.for_topic(topic))),
            Some(spec) => std::str::from_utf8(spec)
                .map_err(|_| "is not UTF-8".to_owned())
                .and_then(|s| Layout::parse(s).map_err(|e: LayoutError| e.to_string()))
                .map(Cow::Owned)
                .map_err(|e| Rejected::message("format", format!("header {AWS_FORMAT_HEADER}: {e}"))),
        }
    }
}

fn parse_json_with(text: &[u8], aws: Aws<'_>, ctx: MessageCtx<'_>, out: &mut dyn Sink<FlowRecord>) {
    let refuse = |out: &mut dyn Sink<FlowRecord>, kind, reason: String| out.reject(Rejected::message(kind, reason));
    let shape = match serde_json::from_slice::<Shape>(text) {
        Ok(s) => s,
        // One value, but not an object.
        Err(e) if e.is_data() => {
            return refuse(out, "unsupported", format!("a JSON value that is not an object ({e}): {EXPECTED_JSON}"));
        }
        // Newline-delimited entries: something follows the first one.
        Err(e) if payload::is_ndjson(text) => {
            return match first_line_shape(text) {
                Some(s) if s.json_payload => crate::gcp::parse_entries_into(text, ctx, out),
                _ if parse_concatenated(text, aws, ctx, out) => {}
                Some(s) if s.records || s.message || s.message_text || s.log_events => refuse(
                    out,
                    "unsupported",
                    "several JSON values, not all of them objects: only a sequence of documents can be read".to_owned(),
                ),
                Some(s) => out.reject(unknown_shape(&s)),
                None => refuse(out, "parse", fields::json_error(&e)),
            };
        }
        Err(e) => return refuse(out, "parse", fields::json_error(&e)),
    };
    if shape.log_events || shape.message_type.is_some() {
        parse_cloudwatch(text, aws, ctx, out)
    } else if shape.message_text {
        parse_message_document(text, aws, ctx, out)
    } else if shape.records {
        crate::azure::parse_blob_into(text, ctx, out)
    } else if shape.category && shape.azure_body {
        // One Azure record, as some shippers split a blob: read as a blob of one.
        let mut blob = Vec::with_capacity(text.len() + 16);
        blob.extend_from_slice(b"{\"records\":[");
        blob.extend_from_slice(text.trim_ascii());
        blob.extend_from_slice(b"]}");
        crate::azure::parse_blob_into(&blob, ctx, out)
    } else if shape.json_payload {
        crate::gcp::parse_entries_into(text, ctx, out)
    } else if shape.message {
        parse_pubsub(text, ctx, out)
    } else {
        out.reject(unknown_shape(&shape))
    }
}

/// Several JSON objects back to back (`{...}{...}`, or one per line), as
/// Amazon Data Firehose delivers records to S3 without a delimiter (each a
/// CloudWatch Logs subscription document, say): each is read on its own,
/// its records numbered after those of the documents before it. Returns
/// false, having read nothing, unless the payload is two or more objects.
fn parse_concatenated(text: &[u8], aws: Aws<'_>, ctx: MessageCtx<'_>, out: &mut dyn Sink<FlowRecord>) -> bool {
    let mut spans = Vec::new();
    let mut values = serde_json::Deserializer::from_slice(text).into_iter::<serde::de::IgnoredAny>();
    let mut start = 0;
    while let Some(v) = values.next() {
        if v.is_err() {
            return false;
        }
        let end = values.byte_offset();
        let value = text[start..end].trim_ascii();
        if !value.starts_with(b"{") {
            return false;
        }
        spans.push(value);
        start = end;
    }
    if spans.len() < 2 {
        return false;
    }
    let mut base = 0;
    for (i, value) in spans.into_iter().enumerate() {
        let mut shifted = Shifted { out: &mut *out, base, top: base, document: i + 1, raw: value };
        parse_json_with(value, aws, ctx, &mut shifted);
        base = shifted.top;
    }
    true
}

/// A sink for one document of several: positions follow the documents
/// before it; a document refused whole is one refused item.
struct Shifted<'a> {
    out: &'a mut dyn Sink<FlowRecord>,
    base: u32,
    top: u32,
    document: usize,
    raw: &'a [u8],
}

impl Sink<FlowRecord> for Shifted<'_> {
    fn record(&mut self, mut record: FlowRecord) {
        let line = u32::try_from(record.source.line).unwrap_or(0).saturating_add(self.base);
        record.source.line = i32::try_from(line).unwrap_or(i32::MAX);
        self.top = self.top.max(line);
        self.out.record(record);
    }

    fn reject(&mut self, mut r: Rejected) {
        if r.line == 0 {
            r.line = self.base + 1;
            r.raw = self.raw.to_vec();
            r.reason = format!("JSON document {} of the message: {}", self.document, r.reason);
        } else {
            r.line = r.line.saturating_add(self.base);
        }
        self.top = self.top.max(r.line);
        self.out.reject(r);
    }

    fn unknown_fields(&mut self, names: &[String]) {
        self.out.unknown_fields(names);
    }
}

fn unknown_shape(shape: &Shape) -> Rejected {
    let found = if let Some(log) = &shape.log_name {
        format!("a Cloud Logging entry of '{log}' without jsonPayload")
    } else if shape.keys.is_empty() {
        "an empty JSON object".to_owned()
    } else {
        format!("a JSON object with keys {}", shape.keys.join(", "))
    };
    Rejected::message("unsupported", format!("{found}: {EXPECTED_JSON}"))
}

/// The shape of the first line that is a JSON object of its own.
fn first_line_shape(text: &[u8]) -> Option<Shape> {
    payload::lines(text).find_map(|(_, l)| serde_json::from_slice::<Shape>(l).ok())
}

/// The top-level keys of a JSON object that tell the formats apart (the
/// values are skipped, not built).
#[derive(Debug, Default)]
struct Shape {
    records: bool,
    json_payload: bool,
    /// `message` is an object (a Pub/Sub push envelope).
    message: bool,
    /// `message` is a string (a `{"message": "<flow-log line>"}` document).
    message_text: bool,
    /// An Azure flow-log record of its own, outside `{"records": [...]}`:
    /// `category` with `properties` (NSG) or `flowRecords` (VNet).
    category: bool,
    azure_body: bool,
    /// CloudWatch Logs subscription data: `logEvents`, `messageType`.
    log_events: bool,
    message_type: Option<String>,
    log_name: Option<String>,
    /// The first few keys, for refusals.
    keys: Vec<String>,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                let mut s = Shape::default();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    if s.keys.len() < 8 {
                        s.keys.push(key.as_str().chars().take(64).collect());
                    }
                    match key.as_str() {
                        "records" => s.records = map.next_value::<JsonType>()? != JsonType::Null,
                        "jsonPayload" => s.json_payload = map.next_value::<JsonType>()? != JsonType::Null,
                        "message" => match map.next_value::<JsonType>()? {
                            JsonType::Object => s.message = true,
                            JsonType::String => s.message_text = true,
                            _ => {}
                        },
                        "logEvents" => s.log_events = map.next_value::<JsonType>()? != JsonType::Null,
                        "category" => s.category = map.next_value::<JsonType>()? == JsonType::String,
                        "properties" | "flowRecords" => {
                            s.azure_body |= map.next_value::<JsonType>()? == JsonType::Object
                        }
                        "messageType" => {
                            s.message_type = map.next_value::<Option<Str<'de>>>()?.map(|t| t.0.into_owned())
                        }
                        "logName" => s.log_name = map.next_value::<Option<Str<'de>>>()?.map(|l| l.0.into_owned()),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(s)
            }
        }
        d.deserialize_map(V)
    }
}

/// The type of a JSON value (the value itself is skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    Null,
    Object,
    String,
    Other,
}

impl<'de> Deserialize<'de> for JsonType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonType;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<JsonType, E> {
                Ok(JsonType::Null)
            }
            fn visit_none<E>(self) -> Result<JsonType, E> {
                Ok(JsonType::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<JsonType, E> {
                Ok(JsonType::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<JsonType, E> {
                Ok(JsonType::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<JsonType, E> {
                Ok(JsonType::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<JsonType, E> {
                Ok(JsonType::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<JsonType, E> {
                Ok(JsonType::String)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonType, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(JsonType::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonType, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(JsonType::Object)
            }
        }
        d.deserialize_any(V)
    }
}

/// CloudWatch Logs subscription data, as a subscription filter delivers it
/// (through Firehose, Kinesis or Lambda; the gzip is undone before).
#[derive(Deserialize)]
struct CloudWatch {
    #[serde(rename = "messageType")]
    message_type: Option<String>,
    #[serde(rename = "logGroup")]
    log_group: Option<String>,
    #[serde(rename = "logStream")]
    log_stream: Option<String>,
    #[serde(rename = "logEvents", default)]
    log_events: Vec<LogEvent>,
}

#[derive(Deserialize)]
struct LogEvent {
    /// Milliseconds since the epoch.
    timestamp: Option<i64>,
    message: String,
}

/// CloudWatch Logs subscription data of a flow log published to CloudWatch
/// Logs: each `DATA_MESSAGE` log event is one flow-log line (its position
/// is the event's, from 1), placed by the event's timestamp when its layout
/// has no time; the log group and stream are kept in the record
/// (`extra.log_group`, `extra.log_stream`). A `CONTROL_MESSAGE` (sent when
/// the subscription is set up) carries no records.
fn parse_cloudwatch(text: &[u8], aws: Aws<'_>, ctx: MessageCtx<'_>, out: &mut dyn Sink<FlowRecord>) {
    let cw: CloudWatch = match serde_json::from_slice(text) {
        Ok(c) => c,
        Err(e) => {
            return out.reject(Rejected::message(
                "parse",
                format!("CloudWatch Logs subscription data: {}", fields::json_error(&e)),
            ));
        }
    };
    match cw.message_type.as_deref() {
        Some("CONTROL_MESSAGE") => return,
        Some("DATA_MESSAGE") | None => {}
        Some(other) => {
            return out.reject(Rejected::message(
                "unsupported",
                format!("CloudWatch Logs messageType '{other}': expected DATA_MESSAGE or CONTROL_MESSAGE"),
            ));
        }
    }
    let layout = match aws.layout(ctx.topic) {
        Ok(l) => l,
        Err(r) => return out.reject(r),
    };
    crate::aws::announce_unknown(&layout, out);
    for (i, event) in cw.log_events.iter().enumerate() {
        let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let line = event.message.trim_end_matches(['\n', '\r']);
        if Layout::is_header_line(line) {
            continue;
        }
        let time = event
            .timestamp
            .filter(|ms| *ms > 0)
            .map(|ms| crate::parsed::TransportTime { at: ms.saturating_mul(1000), source: "cloudwatch-event" })
            .or(ctx.time);
        let parsed = crate::aws::parse_line_at(&layout, line, ctx.source(line_no), time).map(|mut r| {
            for (key, value) in [("log_group", &cw.log_group), ("log_stream", &cw.log_stream)] {
                if let Some(v) = value {
                    r.extra.insert(key.to_owned(), v.clone());
                }
            }
            r
        });
        out.push(parsed.map_err(|e| Rejected::new(line_no, line.as_bytes(), "parse", e.to_string())));
    }
}

/// A single `{"message": "<flow-log line>"}` document (as log shippers
/// wrap a line): the line, read as an AWS flow-log line.
fn parse_message_document(text: &[u8], aws: Aws<'_>, ctx: MessageCtx<'_>, out: &mut dyn Sink<FlowRecord>) {
    #[derive(Deserialize)]
    struct Doc {
        message: String,
    }
    let doc: Doc = match serde_json::from_slice(text) {
        Ok(d) => d,
        Err(e) => {
            return out
                .reject(Rejected::message("parse", format!("{{\"message\"}} document: {}", fields::json_error(&e))));
        }
    };
    let layout = match aws.layout(ctx.topic) {
        Ok(l) => l,
        Err(r) => return out.reject(r),
    };
    crate::aws::parse_payload_into(doc.message.as_bytes(), layout, aws.header.is_some(), ctx, out);
}

/// A Pub/Sub push envelope.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    message: PubSubMessage<'a>,
}

#[derive(Deserialize)]
struct PubSubMessage<'a> {
    #[serde(borrow)]
    data: Option<Str<'a>>,
}

/// Base64 as Pub/Sub writes it (standard alphabet), padded or not; the
/// URL-safe alphabet is accepted too.
const BASE64_CONFIG: base64::engine::GeneralPurposeConfig = base64::engine::GeneralPurposeConfig::new()
    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
const BASE64: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, BASE64_CONFIG);
const BASE64_URL: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(&base64::alphabet::URL_SAFE, BASE64_CONFIG);

/// A Pub/Sub push envelope: `message.data` is base64 of GCP entries (one,
/// or one per line); an entry's position is its line in the decoded data.
fn parse_pubsub(text: &[u8], ctx: MessageCtx<'_>, out: &mut dyn Sink<FlowRecord>) {
    use base64::Engine as _;
    let envelope: Envelope<'_> = match serde_json::from_slice(text) {
        Ok(e) => e,
        Err(e) => {
            return out
                .reject(Rejected::message("parse", format!("Pub/Sub push envelope: {}", fields::json_error(&e))));
        }
    };
    let Some(data) = envelope.message.data.as_ref().map(Str::as_str).filter(|d| !d.is_empty()) else {
        return out.reject(Rejected::message("parse", "Pub/Sub push envelope without message.data"));
    };
    let data = data.trim_ascii();
    let decoded = match BASE64.decode(data).or_else(|e| BASE64_URL.decode(data).map_err(|_| e)) {
        Ok(d) => d,
        Err(e) => return out.reject(Rejected::message("parse", format!("Pub/Sub message.data is not base64: {e}"))),
    };
    if !payload::is_json(&decoded) {
        return out.reject(Rejected::message(
            "unsupported",
            "Pub/Sub message.data is not JSON: expected GCP Cloud Logging entries (VPC flow logs)",
        ));
    }
    crate::gcp::parse_entries_into(&decoded, ctx, out)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use psg_domain::{FlowAction, FlowFormat};

    use super::*;

    const CTX: MessageCtx<'static> = MessageCtx { topic: "flowlogs.raw", partition: 0, offset: 5, time: None };

    const NSG: &str = r#"{"records":[{"time":"2018-11-13T12:00:35.3899262Z","category":"NetworkSecurityGroupFlowEvent","resourceId":"/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000001/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/NSG","properties":{"Version":2,"flows":[{"rule":"DefaultRule_DenyAllInBound","flows":[{"mac":"000D3AF87856","flowTuples":["1542110437,125.64.94.197,10.5.16.4,59752,18264,T,I,D,B,,,,"]}]}]}}]}"#;
    const VNET: &str = r#"{"records":[{"time":"2022-09-14T09:00:52.5625085Z","flowLogVersion":4,"macAddress":"00224871C205","category":"FlowLogFlowEvent","targetResourceID":"/subscriptions/00000000-0000-0000-0000-000000000002/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet","flowRecords":{"flows":[{"aclID":"acl","flowGroups":[{"rule":"r","flowTuples":["1663145998065,101.33.218.153,10.0.0.6,55188,22,6,I,D,NX,0,0,0,0"]}]}]}}]}"#;
    const GCP: &str = r#"{"jsonPayload":{"connection":{"src_ip":"10.0.0.1","dest_ip":"10.0.0.2","src_port":1,"dest_port":443,"protocol":6},"bytes_sent":"10","packets_sent":"1","reporter":"SRC","start_time":"2024-01-01T00:00:00Z","end_time":"2024-01-01T00:00:01Z","src_instance":{"project_id":"p","region":"r","vm_name":"v"}},"logName":"projects/p/logs/compute.googleapis.com%2Fvpc_flows"}"#;

    fn parse(text: &str) -> Parsed<FlowRecord> {
        parse_json(text.as_bytes(), CTX)
    }

    fn refusal(p: &Parsed<FlowRecord>) -> (&'static str, String) {
        assert!(p.records.is_empty());
        assert_eq!(p.rejected.len(), 1, "{:?}", p.rejected);
        assert_eq!(p.rejected[0].line, 0);
        (p.rejected[0].kind, p.rejected[0].reason.clone())
    }

    /// A flow log published to CloudWatch Logs, as a subscription filter
    /// delivers it (AWS's documented shape: messageType, owner, logGroup,
    /// logStream, subscriptionFilters, logEvents with id, timestamp,
    /// message), default-format lines in the events.
    const CLOUDWATCH: &str = r#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"vpc-flow-logs","logStream":"eni-1235b8ca123456789-all","subscriptionFilters":["flowlogs-to-firehose"],"logEvents":[{"id":"31953106606966983378809025079804211143289615424298221568","timestamp":1432826855000,"message":"2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK"},{"id":"31953106606966983378809025079804211143289615424298221569","timestamp":1432826855000,"message":"2 123456789010 eni-1235b8ca123456789 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK"},{"id":"31953106606966983378809025079804211143289615424298221570","timestamp":1432826855000,"message":"2 123456789010 eni-1235b8ca123456789 bogus 172.31.9.12 49761 3389 6 20 4249 1418530010 1418530070 REJECT OK"}]}"#;

    #[test]
    fn cloudwatch_logs_subscription_data_is_read() {
        let p = super::parse(CLOUDWATCH.as_bytes(), None, &AwsLayouts::default(), CTX);
        assert_eq!(p.records.len(), 2, "{:?}", p.rejected);
        assert_eq!(p.records[0].src_addr.as_deref(), Some("172.31.16.139"));
        assert_eq!(p.records[0].source.line, 1);
        assert_eq!(p.records[1].action, Some(FlowAction::Reject));
        assert_eq!(p.records[0].extra.get("log_group").map(String::as_str), Some("vpc-flow-logs"));
        assert_eq!(p.records[0].extra.get("log_stream").map(String::as_str), Some("eni-1235b8ca123456789-all"));
        assert!(!p.records[0].extra.contains_key(crate::aws::TIME_SOURCE), "the line has its own time");
        // The bad event alone is refused, by its position.
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].line, 3);
        assert!(p.rejected[0].reason.contains("srcaddr"), "{}", p.rejected[0].reason);

        // A custom layout without time (header): the event's timestamp places it.
        let nat = CLOUDWATCH.replace(
            "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK",
            "i-01234567890123456 eni-1235b8ca123456789 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5",
        );
        let header = b"instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr";
        let p = super::parse(nat.as_bytes(), Some(header), &AwsLayouts::default(), CTX);
        let r = &p.records[0];
        assert_eq!(r.end_time, 1_432_826_855_000_000);
        assert_eq!(r.extra.get(crate::aws::TIME_SOURCE).map(String::as_str), Some("cloudwatch-event"));

        // AWS's control message: nothing to read, nothing refused.
        let control = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1432826855000,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}"#;
        let p = super::parse(control.as_bytes(), None, &AwsLayouts::default(), CTX);
        assert!(p.records.is_empty() && p.rejected.is_empty(), "{:?}", p.rejected);
    }

    /// Amazon Data Firehose to S3 concatenates records with no delimiter:
    /// CloudWatch Logs subscription documents back to back (`}{`), or one
    /// per line, even Azure blobs; each is read, positions run on, and a
    /// document refused whole is one refused item.
    #[test]
    fn documents_back_to_back_are_each_read() {
        for sep in ["", "\n", " \r\n"] {
            let text = format!("{CLOUDWATCH}{sep}{CLOUDWATCH}{sep}{{\"messageType\":\"BOGUS\"}}{sep}{NSG}");
            let p = super::parse(text.as_bytes(), None, &AwsLayouts::default(), CTX);
            let from_one = super::parse(NSG.as_bytes(), None, &AwsLayouts::default(), CTX).records.len();
            assert_eq!(p.records.len(), 2 + 2 + from_one, "{sep:?}: {:?}", p.rejected);
            let lines: Vec<i32> = p.records.iter().map(|r| r.source.line).collect();
            let mut unique = lines.clone();
            unique.dedup();
            assert_eq!(unique, lines, "positions do not repeat");
            assert_eq!(&lines[..4], &[1, 2, 4, 5]);
            let refused: Vec<(u32, &str)> = p.rejected.iter().map(|r| (r.line, r.kind)).collect();
            assert_eq!(refused, vec![(3, "parse"), (6, "parse"), (7, "unsupported")], "{sep:?}");
            assert!(p.rejected[2].reason.starts_with("JSON document 3 of the message: "), "{}", p.rejected[2].reason);
            assert_eq!(p.rejected[2].raw, br#"{"messageType":"BOGUS"}"#);
        }
    }

    /// One Azure record outside `{"records": [...]}` (NSG and VNet).
    #[test]
    fn a_single_azure_record_is_read() {
        for blob in [NSG, VNET] {
            let record = blob.strip_prefix(r#"{"records":["#).and_then(|r| r.strip_suffix("]}")).unwrap();
            let whole = parse(blob);
            let single = parse(record);
            assert_eq!(single.records, whole.records, "{:?}", single.rejected);
            assert_eq!(single.records.len(), 1);
        }
    }

    /// `{"message": "<flow-log line>"}`, as log shippers wrap a line.
    #[test]
    fn a_message_document_holds_one_line() {
        let doc = r#"{"message": "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK", "@timestamp": "2014-12-14T04:07:50Z"}"#;
        let p = super::parse(doc.as_bytes(), None, &AwsLayouts::default(), CTX);
        assert_eq!(p.records.len(), 1, "{:?}", p.rejected);
        assert_eq!(p.records[0].dst_port, Some(22));
    }

    #[test]
    fn azure_blobs_are_told_apart_by_category() {
        let p = parse(NSG);
        assert_eq!(p.records[0].format, FlowFormat::AzureNsgV2);
        assert_eq!(p.records[0].account_id.as_deref(), Some("00000000-0000-0000-0000-000000000001"));
        let p = parse(VNET);
        assert_eq!(p.records[0].format, FlowFormat::AzureVnet);
        assert_eq!(p.records[0].action, Some(FlowAction::Reject));
        // through the format dispatch, whitespace and all
        let p = super::parse(format!("\n  {NSG}\n").as_bytes(), None, &AwsLayouts::default(), CTX);
        assert_eq!(p.records.len(), 1);
    }

    #[test]
    fn gcp_entries_one_pretty_printed_or_one_per_line() {
        let p = parse(GCP);
        assert_eq!(p.records[0].format, FlowFormat::GcpVpc);
        assert_eq!(p.records[0].source.line, 1);
        let pretty = serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(GCP).unwrap()).unwrap();
        let p = parse(&pretty);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.records[0].source.line, 1);
        assert_eq!(p.records[0].account_id.as_deref(), Some("p"));
        let p = parse(&format!("{GCP}\n{GCP}\r\n{GCP}"));
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.records.iter().map(|r| r.source.line).collect::<Vec<_>>(), [1, 2, 3]);
    }

    #[test]
    fn a_broken_first_line_of_gcp_entries_is_refused_alone() {
        let p = parse(&format!("{{\"jsonPayload\": }}\n{GCP}\n{GCP}\n"));
        assert_eq!(p.records.iter().map(|r| r.source.line).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].line, 1);
        assert_eq!(p.rejected[0].raw, b"{\"jsonPayload\": }");
        assert!(p.rejected[0].reason.starts_with("GCP log entry: invalid JSON"), "{}", p.rejected[0].reason);
    }

    #[test]
    fn pubsub_push_envelopes_hold_gcp_entries() {
        let bad = GCP.replace(r#""dest_port":443"#, r#""dest_port":-443"#);
        let data = base64::engine::general_purpose::STANDARD.encode(format!("{GCP}\n{bad}\n{GCP}\n"));
        let envelope = format!(
            r#"{{"message":{{"attributes":{{"logging.googleapis.com/timestamp":"2024-01-01T00:00:01Z"}},"data":"{data}","messageId":"2070443601311540","publishTime":"2024-01-01T00:00:02Z"}},"subscription":"projects/p/subscriptions/flows-push"}}"#
        );
        let p = parse(&envelope);
        assert_eq!(p.records.iter().map(|r| r.source.line).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(p.records[0].dst_port, Some(443));
        assert_eq!(p.rejected.len(), 1);
        assert_eq!(p.rejected[0].line, 2);
        assert_eq!(p.rejected[0].raw, bad.as_bytes());
        assert_eq!(p.rejected[0].reason, "field 'connection.dest_port': '-443' is not a port (0-65535)");

        // one entry, unpadded URL-safe base64
        let data = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(GCP);
        let p = parse(&format!(r#"{{"message":{{"data":"{data}"}},"subscription":"s"}}"#));
        assert_eq!(p.records.len(), 1, "{:?}", p.rejected);
        assert_eq!(p.records[0].source.line, 1);

        assert_eq!(
            refusal(&parse(r#"{"message":{"data":"%%%"},"subscription":"s"}"#)),
            ("parse", "Pub/Sub message.data is not base64: Invalid symbol 37, offset 0.".to_owned())
        );
        assert_eq!(
            refusal(&parse(r#"{"message":{"messageId":"1"},"subscription":"s"}"#)),
            ("parse", "Pub/Sub push envelope without message.data".to_owned())
        );
        let text = base64::engine::general_purpose::STANDARD.encode("2 123 eni-1 - - - - - - - 1 2 - NODATA");
        assert_eq!(
            refusal(&parse(&format!(r#"{{"message":{{"data":"{text}"}}}}"#))),
            (
                "unsupported",
                "Pub/Sub message.data is not JSON: expected GCP Cloud Logging entries (VPC flow logs)".to_owned()
            )
        );
    }

    #[test]
    fn invalid_json_and_unknown_shapes_are_refused_whole() {
        let (kind, reason) = refusal(&parse(r#"{"records": [{"category": "#));
        assert_eq!(kind, "parse");
        assert!(reason.starts_with("invalid JSON: EOF while parsing"), "{reason}");

        let (kind, reason) = refusal(&parse(r#"{"Records": [{"eventName": "PutObject"}]}"#));
        assert_eq!(kind, "unsupported");
        assert_eq!(reason, format!("a JSON object with keys Records: {EXPECTED_JSON}"));

        let (kind, reason) = refusal(&parse(r#"{"logName":"projects/p/logs/syslog","textPayload":"x"}"#));
        assert_eq!(kind, "unsupported");
        assert_eq!(
            reason,
            format!("a Cloud Logging entry of 'projects/p/logs/syslog' without jsonPayload: {EXPECTED_JSON}")
        );

        // A {"message": ...} document whose text is not a flow-log line: the line is refused.
        let p = parse(r#"{"message":"hello","records":null}"#);
        assert!(p.records.is_empty());
        assert_eq!((p.rejected[0].line, p.rejected[0].kind), (1, "parse"));
        assert_eq!(p.rejected[0].reason, "line has 1 fields, the format has 14");
        let (kind, reason) = refusal(&parse(r#"{"message":5,"records":null}"#));
        assert_eq!(kind, "unsupported");
        assert_eq!(reason, format!("a JSON object with keys message, records: {EXPECTED_JSON}"));

        let (kind, reason) = refusal(&parse("[1, 2]"));
        assert_eq!(kind, "unsupported");
        assert!(reason.starts_with("a JSON value that is not an object (invalid type: sequence"), "{reason}");

        // Several documents, one of them not an object: not a sequence of documents.
        let (kind, reason) = refusal(&parse(&format!("{NSG}\n[1]")));
        assert_eq!(kind, "unsupported");
        assert!(reason.starts_with("several JSON values, not all of them objects"), "{reason}");

        assert_eq!(refusal(&parse(r#"{"records": 5}"#)).0, "parse");
        assert_eq!(refusal(&parse("{}")), ("unsupported", format!("an empty JSON object: {EXPECTED_JSON}")));
    }
}
