//! Azure flow logs: a blob `{"records":[...]}` → one [`FlowRecord`] per flow
//! tuple.
//!
//! - NSG flow logs (category `NetworkSecurityGroupFlowEvent`, versions 1 and
//!   2): `properties.flows[].flows[].flowTuples`, tuples of 8 (v1) or 13 (v2)
//!   fields with `T`/`U` protocols and an `A`/`D` decision.
//! - VNet flow logs (category `FlowLogFlowEvent`):
//!   `flowRecords.flows[].flowGroups[].flowTuples`, tuples of 13 fields with
//!   IANA protocol numbers and a state (`D` = denied) instead of a decision.
//!
//! A tuple's position is its ordinal across the whole blob (1 = the first
//! tuple of the first record). A bad tuple is refused alone; a blob that is
//! not valid JSON, has no `records`, or holds a record of another kind is
//! refused whole (Azure writes one kind of record per blob).
//!
//! Strings are borrowed from the blob (`fields::Str`); tuples are split without
//! allocating per field, and each record goes to the sink as it is made.
//!
//! A blob holds at most [`MAX_RECORDS`] records and [`MAX_TUPLES`] flow
//! tuples; a larger one is refused whole while it is being read, so junk
//! (millions of `{}` or `""`) cannot cost more memory than those bounds.
//! Real blobs are far below both: Azure writes a record about once a minute
//! per interface, and a 64 MiB blob (the default `ingest.max-message-bytes`)
//! has room for about 1.1 million version-2 tuples.

use std::cell::Cell;

use psg_domain::{CloudProvider, FlowAction, FlowDirection, FlowFormat, FlowRecord, SourceRef, Text};
use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};

use crate::fields::{self, FieldError, IntValue, Num, Str, bad, nonempty};
use crate::parsed::{MessageCtx, Parsed, Rejected, Sink};

/// The most records one blob may hold.
pub const MAX_RECORDS: usize = 100_000;
/// The most flow tuples one blob may hold, across all its records.
pub const MAX_TUPLES: usize = 4_000_000;

thread_local! {
    /// Tuples the blob being read may still hold ([`parse_blob_into`] sets it).
    static TUPLES_LEFT: Cell<usize> = const { Cell::new(MAX_TUPLES) };
}

/// A blob's records, at most [`MAX_RECORDS`].
struct Records<'a>(Vec<Record<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Records<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Records<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of flow-log records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Records<'a>, A::Error> {
                let mut v = Vec::new();
                while let Some(r) = seq.next_element()? {
                    if v.len() == MAX_RECORDS {
                        return Err(serde::de::Error::custom(format!(
                            "more than {MAX_RECORDS} records in one blob (Azure writes about one a minute per interface)"
                        )));
                    }
                    v.push(r);
                }
                Ok(Records(v))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// One group's flow tuples; all groups of a blob together at most [`MAX_TUPLES`].
struct Tuples<'a>(Vec<Str<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Tuples<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Tuples<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of flow tuples")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tuples<'a>, A::Error> {
                let mut v = Vec::new();
                while let Some(t) = seq.next_element()? {
                    let left = TUPLES_LEFT.get();
                    if left == 0 {
                        return Err(serde::de::Error::custom(format!(
                            "more than {MAX_TUPLES} flow tuples in one blob"
                        )));
                    }
                    TUPLES_LEFT.set(left - 1);
                    v.push(t);
                }
                Ok(Tuples(v))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// Category of NSG flow-log records.
pub const NSG_CATEGORY: &str = "NetworkSecurityGroupFlowEvent";
/// Category of VNet flow-log records.
pub const VNET_CATEGORY: &str = "FlowLogFlowEvent";

#[derive(Deserialize)]
struct Blob<'a> {
    #[serde(borrow)]
    records: Records<'a>,
}

/// One record of a blob: NSG or VNet (the fields of both, all optional).
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    category: Option<Str<'a>>,
    // NSG
    #[serde(borrow, rename = "resourceId")]
    resource_id: Option<Str<'a>>,
    #[serde(borrow)]
    properties: Option<NsgProperties<'a>>,
    // VNet
    #[serde(borrow, rename = "flowLogVersion")]
    flow_log_version: Option<Num<'a>>,
    #[serde(borrow, rename = "macAddress")]
    mac_address: Option<Str<'a>>,
    #[serde(borrow, rename = "flowLogResourceID")]
    flow_log_resource_id: Option<Str<'a>>,
    #[serde(borrow, rename = "targetResourceID")]
    target_resource_id: Option<Str<'a>>,
    #[serde(borrow, rename = "flowRecords")]
    flow_records: Option<VnetFlowRecords<'a>>,
}

#[derive(Deserialize)]
struct NsgProperties<'a> {
    #[serde(borrow, rename = "Version", alias = "version")]
    version: Option<Num<'a>>,
    #[serde(borrow)]
    flows: Vec<NsgRuleFlows<'a>>,
}

#[derive(Deserialize)]
struct NsgRuleFlows<'a> {
    #[serde(borrow)]
    rule: Option<Str<'a>>,
    #[serde(borrow)]
    flows: Vec<NsgMacFlows<'a>>,
}

#[derive(Deserialize)]
struct NsgMacFlows<'a> {
    #[serde(borrow)]
    mac: Option<Str<'a>>,
    #[serde(borrow, rename = "flowTuples")]
    flow_tuples: Tuples<'a>,
}

#[derive(Deserialize)]
struct VnetFlowRecords<'a> {
    #[serde(borrow)]
    flows: Vec<VnetAclFlows<'a>>,
}

#[derive(Deserialize)]
struct VnetAclFlows<'a> {
    #[serde(borrow, rename = "aclID")]
    acl_id: Option<Str<'a>>,
    #[serde(borrow, rename = "flowGroups")]
    flow_groups: Vec<VnetFlowGroup<'a>>,
}

#[derive(Deserialize)]
struct VnetFlowGroup<'a> {
    #[serde(borrow)]
    rule: Option<Str<'a>>,
    #[serde(borrow, rename = "flowTuples")]
    flow_tuples: Tuples<'a>,
}

/// NSG flow-log versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NsgVersion {
    V1,
    V2,
}

/// What a record is, and the part of it that holds the tuples.
enum Kind<'r, 'a> {
    Nsg { props: &'r NsgProperties<'a>, version: Option<NsgVersion> },
    Vnet(&'r VnetFlowRecords<'a>),
}

impl<'a> Record<'a> {
    /// NSG or VNet, by category (or, without one, by where the tuples are);
    /// `Err((kind, reason))` for anything else.
    fn kind(&self) -> Result<Kind<'_, 'a>, (&'static str, String)> {
        let nsg = match nonempty(&self.category) {
            Some(c) if c.eq_ignore_ascii_case(NSG_CATEGORY) => true,
            Some(c) if c.eq_ignore_ascii_case(VNET_CATEGORY) => false,
            Some(c) => {
                return Err((
                    "unsupported",
                    format!(
                        "category '{c}' is neither {NSG_CATEGORY} (NSG flow logs) nor {VNET_CATEGORY} (VNet flow logs)"
                    ),
                ));
            }
            None if self.properties.is_some() => true,
            None if self.flow_records.is_some() => false,
            None => {
                return Err((
                    "unsupported",
                    "no category, properties.flows or flowRecords: not an Azure flow-log record".to_owned(),
                ));
            }
        };
        if !nsg {
            return match &self.flow_records {
                Some(f) => Ok(Kind::Vnet(f)),
                None => Err(("parse", format!("{VNET_CATEGORY} record has no flowRecords"))),
            };
        }
        let Some(props) = &self.properties else {
            return Err(("parse", format!("{NSG_CATEGORY} record has no properties")));
        };
        let version = match &props.version {
            None => None,
            Some(v) => match v.int() {
                Some(1) => Some(NsgVersion::V1),
                Some(2) => Some(NsgVersion::V2),
                _ => {
                    return Err((
                        "unsupported",
                        format!("NSG flow-log Version '{}' is not supported: only 1 and 2 are", v.text()),
                    ));
                }
            },
        };
        Ok(Kind::Nsg { props, version })
    }
}

/// Parses an Azure flow-log blob (NSG or VNet).
pub fn parse_blob(text: &[u8], ctx: MessageCtx<'_>) -> Parsed<FlowRecord> {
    Parsed::collect(|out| parse_blob_into(text, ctx, out))
}

/// [`parse_blob`], into a sink.
pub fn parse_blob_into(text: &[u8], ctx: MessageCtx<'_>, out: &mut dyn Sink<FlowRecord>) {
    TUPLES_LEFT.set(MAX_TUPLES);
    let blob = serde_json::from_slice::<Blob<'_>>(text);
    TUPLES_LEFT.set(MAX_TUPLES);
    let blob = match blob {
        Ok(b) => b,
        Err(e) => {
            let kind = if e.to_string().starts_with("more than ") { "too-large" } else { "parse" };
            out.reject(Rejected::message(kind, format!("Azure flow-log blob: {}", fields::json_error(&e))));
            return;
        }
    };
    let mut kinds = Vec::with_capacity(blob.records.0.len());
    for (i, r) in blob.records.0.iter().enumerate() {
        match r.kind() {
            Ok(k) => kinds.push((r, k)),
            Err((kind, reason)) => {
                out.reject(Rejected::message(kind, format!("Azure flow-log blob, record {}: {reason}", i + 1)));
                return;
            }
        }
    }
    let mut n: u32 = 0;
    for (r, k) in kinds {
        match k {
            Kind::Nsg { props, version } => nsg_record(r, props, version, &mut n, ctx, out),
            Kind::Vnet(f) => vnet_record(r, f, &mut n, ctx, out),
        }
    }
}

/// The subscription id in an Azure resource id
/// (`/subscriptions/<id>/...`, any case), lowercased: NSG flow logs write
/// resource ids in upper case, ARM and VNet flow logs in lower case.
fn subscription(resource_id: Option<&str>) -> Option<Text> {
    let mut parts = resource_id?.split('/');
    while let Some(p) = parts.next() {
        if p.eq_ignore_ascii_case("subscriptions") {
            return parts.next().filter(|s| !s.is_empty()).map(|s| Text::from(s.to_ascii_lowercase()));
        }
    }
    None
}

/// What every tuple of one flow group shares.
struct Group<'g> {
    account_id: &'g Option<Text>,
    format_version: Option<i32>,
    interface_id: Option<&'g str>,
    rule: Option<&'g str>,
    acl_id: Option<&'g str>,
    target_resource_id: Option<&'g str>,
}

impl Group<'_> {
    fn record(&self, format: FlowFormat, source: SourceRef, time: i64) -> FlowRecord {
        let mut rec = FlowRecord::new(CloudProvider::Azure, format, source, time, time);
        rec.format_version = self.format_version;
        rec.account_id.clone_from(self.account_id);
        rec.interface_id = self.interface_id.map(Text::new);
        // rule, acl_id, target_resource_id, flow_state, encryption: one allocation.
        rec.extra.reserve(5);
        for (key, v) in [("rule", self.rule), ("acl_id", self.acl_id), ("target_resource_id", self.target_resource_id)]
        {
            if let Some(v) = v {
                rec.extra.insert(key.to_owned(), v.to_owned());
            }
        }
        rec
    }
}

fn next(n: &mut u32) -> u32 {
    *n = n.saturating_add(1);
    *n
}

fn nsg_record(
    r: &Record<'_>,
    props: &NsgProperties<'_>,
    version: Option<NsgVersion>,
    n: &mut u32,
    ctx: MessageCtx<'_>,
    out: &mut dyn Sink<FlowRecord>,
) {
    let account_id = subscription(nonempty(&r.resource_id));
    let format_version = version.map(|v| if v == NsgVersion::V1 { 1 } else { 2 });
    for rule_flows in &props.flows {
        for mac_flows in &rule_flows.flows {
            let group = Group {
                account_id: &account_id,
                format_version,
                interface_id: nonempty(&mac_flows.mac),
                rule: nonempty(&rule_flows.rule),
                acl_id: None,
                target_resource_id: None,
            };
            for t in &mac_flows.flow_tuples.0 {
                let line = next(n);
                out.push(
                    nsg_tuple(t.as_str(), version, &group, ctx.source(line))
                        .map_err(|e| Rejected::new(line, t.as_str(), "parse", e.to_string())),
                );
            }
        }
    }
}

fn direction(v: &str) -> Result<FlowDirection, FieldError> {
    match v {
        "I" => Ok(FlowDirection::Ingress),
        "O" => Ok(FlowDirection::Egress),
        other => Err(bad("direction", other, "is not I (inbound) or O (outbound)")),
    }
}

/// One NSG tuple: `time,srcIP,dstIP,srcPort,dstPort,T|U,I|O,A|D` and, in
/// version 2, `,B|C|E,packets,bytes,packets back,bytes back`.
fn nsg_tuple(
    t: &str,
    version: Option<NsgVersion>,
    group: &Group<'_>,
    source: SourceRef,
) -> Result<FlowRecord, FieldError> {
    let (f, found) = fields::split_tuple::<13>(t);
    let format = match (version, found) {
        (Some(NsgVersion::V1) | None, 8) => FlowFormat::AzureNsgV1,
        (Some(NsgVersion::V2) | None, 13) => FlowFormat::AzureNsgV2,
        (Some(NsgVersion::V1), _) => {
            return Err(FieldError::FieldCount { found, expected: "NSG flow-log version 1 tuples have 8" });
        }
        (Some(NsgVersion::V2), _) => {
            return Err(FieldError::FieldCount { found, expected: "NSG flow-log version 2 tuples have 13" });
        }
        (None, _) => {
            return Err(FieldError::FieldCount {
                found,
                expected: "NSG flow-log tuples have 8 (version 1) or 13 (version 2)",
            });
        }
    };
    let time = fields::unix_time("time", f[0])?;
    let mut rec = group.record(format, source, time);
    rec.src_addr = Some(fields::addr("srcIP", f[1])?);
    rec.dst_addr = Some(fields::addr("dstIP", f[2])?);
    rec.src_port = Some(fields::port("srcPort", f[3])?);
    rec.dst_port = Some(fields::port("dstPort", f[4])?);
    rec.protocol = Some(match f[5] {
        "T" => 6,
        "U" => 17,
        other => return Err(bad("protocol", other, "is not T (TCP) or U (UDP)")),
    });
    rec.flow_direction = Some(direction(f[6])?);
    rec.action = Some(match f[7] {
        "A" => FlowAction::Accept,
        "D" => FlowAction::Reject,
        other => return Err(bad("decision", other, "is not A (allowed) or D (denied)")),
    });
    if format == FlowFormat::AzureNsgV2 {
        let state = match f[8] {
            s @ ("B" | "C" | "E") => s,
            other => return Err(bad("state", other, "is not B (begin), C (continuing) or E (end)")),
        };
        rec.extra.insert("flow_state".to_owned(), state.to_owned());
        rec.packets = fields::opt_count("packetsSrcToDst", f[9])?;
        rec.bytes = fields::opt_count("bytesSrcToDst", f[10])?;
        rec.reverse_packets = fields::opt_count("packetsDstToSrc", f[11])?;
        rec.reverse_bytes = fields::opt_count("bytesDstToSrc", f[12])?;
    }
    Ok(rec)
}

fn vnet_record(
    r: &Record<'_>,
    f: &VnetFlowRecords<'_>,
    n: &mut u32,
    ctx: MessageCtx<'_>,
    out: &mut dyn Sink<FlowRecord>,
) {
    let target = nonempty(&r.target_resource_id);
    let account_id = subscription(target).or_else(|| subscription(nonempty(&r.flow_log_resource_id)));
    let format_version = r.flow_log_version.as_ref().and_then(IntValue::int).and_then(|v| i32::try_from(v).ok());
    for acl in &f.flows {
        for g in &acl.flow_groups {
            let group = Group {
                account_id: &account_id,
                format_version,
                interface_id: nonempty(&r.mac_address),
                rule: nonempty(&g.rule),
                acl_id: nonempty(&acl.acl_id),
                target_resource_id: target,
            };
            for t in &g.flow_tuples.0 {
                let line = next(n);
                out.push(
                    vnet_tuple(t.as_str(), &group, ctx.source(line))
                        .map_err(|e| Rejected::new(line, t.as_str(), "parse", e.to_string())),
                );
            }
        }
    }
}

/// Whether `v` is a VNet flow-log encryption status: `X`, `NX`, or `NX_`
/// and a reason in capitals (`NX_HW_NOT_SUPPORTED`, ...; Azure adds reasons).
fn is_encryption(v: &str) -> bool {
    v == "X"
        || v == "NX"
        || v.strip_prefix("NX_")
            .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
}

fn opt_port(field: &'static str, v: &str) -> Result<Option<i32>, FieldError> {
    if v.is_empty() { Ok(None) } else { fields::port(field, v).map(Some) }
}

/// One VNet tuple: `time,srcIP,dstIP,srcPort,dstPort,protocol,I|O,state,
/// encryption,pktsSent,bytesSent,pktsRecv,bytesRecv`.
fn vnet_tuple(t: &str, group: &Group<'_>, source: SourceRef) -> Result<FlowRecord, FieldError> {
    let (f, found) = fields::split_tuple::<13>(t);
    if found != 13 {
        return Err(FieldError::FieldCount { found, expected: "VNet flow-log tuples have 13" });
    }
    let time = fields::unix_time("time", f[0])?;
    let mut rec = group.record(FlowFormat::AzureVnet, source, time);
    rec.src_addr = Some(fields::addr("srcIP", f[1])?);
    rec.dst_addr = Some(fields::addr("dstIP", f[2])?);
    // Protocols without ports (ICMP, ...) may leave them empty.
    rec.src_port = opt_port("srcPort", f[3])?;
    rec.dst_port = opt_port("dstPort", f[4])?;
    rec.protocol = Some(fields::protocol("protocol", f[5])?);
    rec.flow_direction = Some(direction(f[6])?);
    rec.action = Some(match f[7] {
        "B" | "C" | "E" => FlowAction::Accept,
        "D" => FlowAction::Reject,
        other => return Err(bad("state", other, "is not B (begin), C (continuing), E (end) or D (denied)")),
    });
    if !is_encryption(f[8]) {
        return Err(bad("encryption", f[8], "is not an encryption status (X, NX or NX_<reason>)"));
    }
    rec.extra.insert("flow_state".to_owned(), f[7].to_owned());
    rec.extra.insert("encryption".to_owned(), f[8].to_owned());
    rec.packets = fields::opt_count("pktsSent", f[9])?;
    rec.bytes = fields::opt_count("bytesSent", f[10])?;
    rec.reverse_packets = fields::opt_count("pktsRecv", f[11])?;
    rec.reverse_bytes = fields::opt_count("bytesRecv", f[12])?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use psg_domain::time::SECOND;

    use super::*;

    const CTX: MessageCtx<'static> = MessageCtx { topic: "flowlogs.raw", partition: 3, offset: 11, time: None };
    const NSG_ID: &str = "/SUBSCRIPTIONS/5A2B3C4D-0000-4000-8000-00000000ABCD/RESOURCEGROUPS/FABRIKAMRG/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/FABRIAKMVM1-NSG";
    const SUB: &str = "5a2b3c4d-0000-4000-8000-00000000abcd";

    fn nsg_blob(version: &str, groups: &[(&str, &str, &[&str])]) -> String {
        let flows: Vec<String> = groups
            .iter()
            .map(|(rule, mac, tuples)| {
                format!(r#"{{"rule":"{rule}","flows":[{{"mac":"{mac}","flowTuples":{}}}]}}"#, serde_json::json!(tuples))
            })
            .collect();
        format!(
            r#"{{"records":[{{"time":"2018-11-13T12:00:35.3899262Z","systemId":"a0fca5ce-022c-47b1-9735-89943b42f2fa","category":"NetworkSecurityGroupFlowEvent","resourceId":"{NSG_ID}","operationName":"NetworkSecurityGroupFlowEvents","properties":{{"Version":{version},"flows":[{}]}}}}]}}"#,
            flows.join(",")
        )
    }

    fn vnet_blob(tuples: &[&str]) -> String {
        format!(
            r#"{{"records":[{{"time":"2022-09-14T09:00:52.5625085Z","flowLogVersion":4,"flowLogGUID":"66aa66aa-bb77-cc88-dd99-00ee00ee00ee","macAddress":"00224871C205","category":"FlowLogFlowEvent","flowLogResourceID":"/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/NETWORKWATCHERRG/PROVIDERS/MICROSOFT.NETWORK/NETWORKWATCHERS/NETWORKWATCHER_EASTUS2EUAP/FLOWLOGS/VNETFLOWLOG","targetResourceID":"/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/myRG/providers/Microsoft.Network/virtualNetworks/myVNet","operationName":"FlowLogFlowEvent","flowRecords":{{"flows":[{{"aclID":"00aa00aa-bb11-cc22-dd33-44ee44ee44ee","flowGroups":[{{"rule":"DefaultRule_AllowInternetOutBound","flowTuples":{}}}]}}]}}}}]}}"#,
            serde_json::json!(tuples)
        )
    }

    fn parse(blob: &str) -> Parsed<FlowRecord> {
        parse_blob(blob.as_bytes(), CTX)
    }

    fn extra<'r>(r: &'r FlowRecord, k: &str) -> Option<&'r str> {
        r.extra.get(k).map(String::as_str)
    }

    #[test]
    fn nsg_v1_blob_example_tuple() {
        let p = parse(&nsg_blob(
            "1",
            &[
                ("DefaultRule_DenyAllInBound", "000D3AF8801A", &["1487282421,192.0.2.95,10.1.0.4,51529,5358,T,I,D"]),
                ("UserRule_default-allow-rdp", "000D3AF8801A", &["1487282370,198.51.100.17,10.1.0.4,61771,3389,U,O,A"]),
            ],
        ));
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.records.len(), 2);
        let r = &p.records[0];
        assert_eq!(r.provider, CloudProvider::Azure);
        assert_eq!(r.format, FlowFormat::AzureNsgV1);
        assert_eq!(r.format_version, Some(1));
        assert_eq!(r.account_id.as_deref(), Some(SUB));
        assert_eq!(r.interface_id.as_deref(), Some("000D3AF8801A"));
        assert_eq!(r.start_time, 1_487_282_421 * SECOND);
        assert_eq!(r.end_time, 1_487_282_421 * SECOND);
        assert_eq!(r.src_addr.as_deref(), Some("192.0.2.95"));
        assert_eq!(r.dst_addr.as_deref(), Some("10.1.0.4"));
        assert_eq!(r.src_port, Some(51529));
        assert_eq!(r.dst_port, Some(5358));
        assert_eq!(r.protocol, Some(6));
        assert_eq!(r.flow_direction, Some(FlowDirection::Ingress));
        assert_eq!(r.action, Some(FlowAction::Reject));
        assert_eq!(extra(r, "rule"), Some("DefaultRule_DenyAllInBound"));
        assert_eq!(r.extra.len(), 1);
        assert_eq!((r.packets, r.bytes, r.reverse_packets, r.reverse_bytes), (None, None, None, None));
        assert_eq!(r.source, SourceRef { topic: "flowlogs.raw".into(), partition: 3, offset: 11, line: 1 });

        let r = &p.records[1];
        assert_eq!(r.source.line, 2);
        assert_eq!(r.protocol, Some(17));
        assert_eq!(r.flow_direction, Some(FlowDirection::Egress));
        assert_eq!(r.action, Some(FlowAction::Accept));
        assert_eq!(extra(r, "rule"), Some("UserRule_default-allow-rdp"));
    }

    #[test]
    fn nsg_v2_blob_examples_with_empty_counters_and_begin_state() {
        let p = parse(&nsg_blob(
            "2",
            &[
                (
                    "DefaultRule_DenyAllInBound",
                    "000D3AF87856",
                    &["1542110437,125.64.94.197,10.5.16.4,59752,18264,T,I,D,B,,,,"],
                ),
                (
                    "DefaultRule_AllowInternetOutBound",
                    "000D3AF87856",
                    &["1542110406,10.5.16.4,198.51.100.225,59929,443,T,O,A,E,15,8489,12,7054"],
                ),
            ],
        ));
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        let b = &p.records[0];
        assert_eq!(b.format, FlowFormat::AzureNsgV2);
        assert_eq!(b.format_version, Some(2));
        assert_eq!(b.src_addr.as_deref(), Some("125.64.94.197"));
        assert_eq!(b.dst_port, Some(18264));
        assert_eq!(b.action, Some(FlowAction::Reject));
        assert_eq!(extra(b, "flow_state"), Some("B"));
        assert_eq!((b.packets, b.bytes, b.reverse_packets, b.reverse_bytes), (None, None, None, None));
        assert_eq!(b.start_time, 1_542_110_437 * SECOND);

        let e = &p.records[1];
        assert_eq!(e.source.line, 2);
        assert_eq!(e.src_addr.as_deref(), Some("10.5.16.4"));
        assert_eq!(e.dst_addr.as_deref(), Some("198.51.100.225"));
        assert_eq!((e.src_port, e.dst_port, e.protocol), (Some(59929), Some(443), Some(6)));
        assert_eq!(e.flow_direction, Some(FlowDirection::Egress));
        assert_eq!(e.action, Some(FlowAction::Accept));
        assert_eq!(extra(e, "flow_state"), Some("E"));
        assert_eq!(extra(e, "rule"), Some("DefaultRule_AllowInternetOutBound"));
        assert_eq!(
            (e.packets, e.bytes, e.reverse_packets, e.reverse_bytes),
            (Some(15), Some(8489), Some(12), Some(7054))
        );
        assert_eq!(e.end_time, 1_542_110_406 * SECOND);
    }

    #[test]
    fn nsg_format_by_tuple_length_without_version_and_milliseconds() {
        let blob = nsg_blob(
            "null",
            &[(
                "r",
                "m",
                &["1542110437000,10.0.0.1,10.0.0.2,1,2,T,I,A", "1542110437,10.0.0.1,10.0.0.2,1,2,T,I,A,C,1,2,3,4"],
            )],
        );
        let p = parse(&blob);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.records[0].format, FlowFormat::AzureNsgV1);
        assert_eq!(p.records[0].format_version, None);
        assert_eq!(p.records[0].start_time, 1_542_110_437 * SECOND);
        assert_eq!(p.records[1].format, FlowFormat::AzureNsgV2);
        assert_eq!(p.records[1].reverse_bytes, Some(4));
    }

    #[test]
    fn nsg_ipv6_addresses_are_canonical() {
        let p = parse(&nsg_blob("2", &[("r", "m", &["1542110437,2001:DB8:0:0::5,2001:db8::a,1,443,T,O,A,C,1,2,3,4"])]));
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.records[0].src_addr.as_deref(), Some("2001:db8::5"));
        assert_eq!(p.records[0].dst_addr.as_deref(), Some("2001:db8::a"));
    }

    #[test]
    fn one_bad_tuple_is_refused_alone_with_its_ordinal_and_text() {
        let bad_tuple = "1542110437,10.0.0.1,10.0.0.2,1,99999,T,I,A,C,1,2,3,4";
        let p = parse(&nsg_blob(
            "2",
            &[
                ("r1", "m1", &["1542110437,10.0.0.1,10.0.0.2,1,2,T,I,A,C,1,2,3,4"]),
                ("r2", "m2", &[bad_tuple, "1542110438,10.0.0.1,10.0.0.2,1,2,U,I,A,E,1,2,3,4"]),
            ],
        ));
        assert_eq!(p.records.iter().map(|r| r.source.line).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(
            p.rejected,
            [Rejected::new(2, bad_tuple, "parse", "field 'dstPort': '99999' is not a port (0-65535)")]
        );
    }

    #[test]
    fn bad_nsg_tuples_name_the_field() {
        let cases = [
            ("1542110437,10.0.0.1,10.0.0.2,1,2,T,I,A", "tuple has 8 fields, NSG flow-log version 2 tuples have 13"),
            ("x,10.0.0.1,10.0.0.2,1,2,T,I,A,C,1,2,3,4", "field 'time': 'x' is not a Unix time"),
            ("1542110437,10.0.0.300,10.0.0.2,1,2,T,I,A,C,1,2,3,4", "field 'srcIP': '10.0.0.300' is not an IP address"),
            ("1542110437,10.0.0.1,10.0.0.2,1,2,6,I,A,C,1,2,3,4", "field 'protocol': '6' is not T (TCP) or U (UDP)"),
            (
                "1542110437,10.0.0.1,10.0.0.2,1,2,T,X,A,C,1,2,3,4",
                "field 'direction': 'X' is not I (inbound) or O (outbound)",
            ),
            (
                "1542110437,10.0.0.1,10.0.0.2,1,2,T,I,Y,C,1,2,3,4",
                "field 'decision': 'Y' is not A (allowed) or D (denied)",
            ),
            (
                "1542110437,10.0.0.1,10.0.0.2,1,2,T,I,A,Z,1,2,3,4",
                "field 'state': 'Z' is not B (begin), C (continuing) or E (end)",
            ),
            (
                "1542110437,10.0.0.1,10.0.0.2,1,2,T,I,A,C,1,-2,3,4",
                "field 'bytesSrcToDst': '-2' is not a non-negative count",
            ),
            (
                "-1542110437,10.0.0.1,10.0.0.2,1,2,T,I,A,C,1,2,3,4",
                "field 'time': '-1542110437' is before 1970, outside the accepted range of flow times (1970-01-01 to 2099-12-31)",
            ),
        ];
        for (tuple, reason) in cases {
            let p = parse(&nsg_blob("2", &[("r", "m", &[tuple])]));
            assert!(p.records.is_empty(), "{tuple}");
            assert_eq!(p.rejected[0].reason, reason);
            assert_eq!(p.rejected[0].raw, tuple.as_bytes());
        }
    }

    #[test]
    fn vnet_examples_milliseconds_and_denied() {
        let p = parse(&vnet_blob(&[
            "1663146003606,10.0.0.6,52.239.184.180,23956,443,6,O,E,NX,3,767,2,1580",
            "1663145998065,101.33.218.153,10.0.0.6,55188,22,6,I,D,NX,0,0,0,0",
        ]));
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        let r = &p.records[0];
        assert_eq!(r.provider, CloudProvider::Azure);
        assert_eq!(r.format, FlowFormat::AzureVnet);
        assert_eq!(r.format_version, Some(4));
        assert_eq!(r.account_id.as_deref(), Some("11111111-2222-3333-4444-555555555555"));
        assert_eq!(r.interface_id.as_deref(), Some("00224871C205"));
        assert_eq!(r.start_time, 1_663_146_003_606_000);
        assert_eq!(r.end_time, 1_663_146_003_606_000);
        assert_eq!(r.src_addr.as_deref(), Some("10.0.0.6"));
        assert_eq!(r.dst_addr.as_deref(), Some("52.239.184.180"));
        assert_eq!((r.src_port, r.dst_port, r.protocol), (Some(23956), Some(443), Some(6)));
        assert_eq!(r.flow_direction, Some(FlowDirection::Egress));
        assert_eq!(r.action, Some(FlowAction::Accept));
        assert_eq!((r.packets, r.bytes, r.reverse_packets, r.reverse_bytes), (Some(3), Some(767), Some(2), Some(1580)));
        assert_eq!(extra(r, "flow_state"), Some("E"));
        assert_eq!(extra(r, "encryption"), Some("NX"));
        assert_eq!(extra(r, "acl_id"), Some("00aa00aa-bb11-cc22-dd33-44ee44ee44ee"));
        assert_eq!(extra(r, "rule"), Some("DefaultRule_AllowInternetOutBound"));
        assert_eq!(
            extra(r, "target_resource_id"),
            Some(
                "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/myRG/providers/Microsoft.Network/virtualNetworks/myVNet"
            )
        );
        assert_eq!(r.extra.len(), 5);
        assert_eq!(r.source.line, 1);

        let d = &p.records[1];
        assert_eq!(d.source.line, 2);
        assert_eq!(d.action, Some(FlowAction::Reject));
        assert_eq!(extra(d, "flow_state"), Some("D"));
        assert_eq!(d.flow_direction, Some(FlowDirection::Ingress));
        assert_eq!(d.src_addr.as_deref(), Some("101.33.218.153"));
        assert_eq!((d.packets, d.bytes, d.reverse_packets, d.reverse_bytes), (Some(0), Some(0), Some(0), Some(0)));
    }

    #[test]
    fn vnet_seconds_empty_counters_encryption_and_ipv6() {
        let p = parse(&vnet_blob(&[
            "1663146003,10.0.0.6,10.0.0.7,,,1,O,B,NX_HW_NOT_SUPPORTED,,,,",
            "1663146004,2001:db8::6,2001:DB8::7,5000,443,6,I,C,X,1,2,3,4",
            "1663146005,10.0.0.6,10.0.0.7,1,2,6,O,E,ENCRYPTED,1,2,3,4",
            "1663146005,10.0.0.6,10.0.0.7,1,2,6,O,A,X,1,2,3,4",
            "1663146005,10.0.0.6,10.0.0.7,1,2,300,O,E,X,1,2,3,4",
        ]));
        let r = &p.records[0];
        assert_eq!(r.start_time, 1_663_146_003 * SECOND);
        assert_eq!((r.src_port, r.dst_port, r.protocol), (None, None, Some(1)));
        assert_eq!((r.packets, r.bytes, r.reverse_packets, r.reverse_bytes), (None, None, None, None));
        assert_eq!(extra(r, "encryption"), Some("NX_HW_NOT_SUPPORTED"));
        assert_eq!(r.action, Some(FlowAction::Accept));
        let v6 = &p.records[1];
        assert_eq!(v6.src_addr.as_deref(), Some("2001:db8::6"));
        assert_eq!(v6.dst_addr.as_deref(), Some("2001:db8::7"));
        assert_eq!(extra(v6, "encryption"), Some("X"));
        assert_eq!(p.records.len(), 2);
        let reasons: Vec<_> = p.rejected.iter().map(|r| (r.line, r.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [
                (3, "field 'encryption': 'ENCRYPTED' is not an encryption status (X, NX or NX_<reason>)"),
                (4, "field 'state': 'A' is not B (begin), C (continuing), E (end) or D (denied)"),
                (5, "field 'protocol': '300' is not an IANA protocol number (0-255)"),
            ]
        );
    }

    #[test]
    fn vnet_account_falls_back_to_the_flow_log_resource() {
        let blob =
            vnet_blob(&["1663146003,10.0.0.6,10.0.0.7,1,2,6,O,B,X,,,,"]).replace("\"targetResourceID\"", "\"other\"");
        let p = parse(&blob);
        assert_eq!(p.records[0].account_id.as_deref(), Some("00000000-0000-0000-0000-000000000000"));
        assert_eq!(extra(&p.records[0], "target_resource_id"), None);
    }

    #[test]
    fn tuples_are_numbered_across_records() {
        let one = nsg_blob("2", &[("r", "m", &["1542110437,10.0.0.1,10.0.0.2,1,2,T,I,A,C,1,2,3,4"; 2])]);
        let record = &one[r#"{"records":["#.len()..one.len() - 2];
        let blob = format!(r#"{{"records":[{record},{record}]}}"#);
        let p = parse(&blob);
        assert_eq!(p.records.iter().map(|r| r.source.line).collect::<Vec<_>>(), [1, 2, 3, 4]);
    }

    #[test]
    fn broken_blobs_are_refused_whole() {
        let p = parse(r#"{"records":[{"category":"NetworkSecurityGroupFlowEvent","properties":{"flows":"#);
        assert_eq!(p.rejected.len(), 1);
        assert_eq!((p.rejected[0].line, p.rejected[0].kind), (0, "parse"));
        assert!(p.rejected[0].reason.starts_with("Azure flow-log blob: invalid JSON"), "{}", p.rejected[0].reason);

        let p = parse(r#"{"value":[]}"#);
        assert_eq!(p.rejected[0].reason, "Azure flow-log blob: missing field `records` at line 1 column 12");

        let p = parse(r#"{"records":[{"category":"NetworkSecurityGroupRuleCounter","properties":{"flows":[]}}]}"#);
        assert_eq!(p.rejected[0].kind, "unsupported");
        assert_eq!(
            p.rejected[0].reason,
            "Azure flow-log blob, record 1: category 'NetworkSecurityGroupRuleCounter' is neither NetworkSecurityGroupFlowEvent (NSG flow logs) nor FlowLogFlowEvent (VNet flow logs)"
        );

        let p = parse(
            r#"{"records":[{"category":"NetworkSecurityGroupFlowEvent","properties":{"Version":3,"flows":[]}}]}"#,
        );
        assert_eq!(
            p.rejected[0].reason,
            "Azure flow-log blob, record 1: NSG flow-log Version '3' is not supported: only 1 and 2 are"
        );

        let p = parse(r#"{"records":[]}"#);
        assert_eq!(p, Parsed::default());
    }
}
