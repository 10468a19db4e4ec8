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

use crate::aws::{Layout, LayoutError};
use crate::parsed::{MessageCtx, Parsed};

/// Message header that names the AWS field layout of the message's lines
/// (e.g. `version vpc-id srcaddr ...`).
pub const AWS_FORMAT_HEADER: &str = "psg.aws.format";

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
    ) -> Result<Self, String> {
        let default = match default {
            None => Layout::default_v2(),
            Some(spec) => Layout::parse(spec).map_err(|e| format!("ingest.aws-format: {e}"))?,
        };
        let by_topic = by_topic
            .into_iter()
            .map(|(t, spec)| {
                Layout::parse(spec).map(|l| (t.clone(), l)).map_err(|e| format!("ingest.aws-formats.{t}: {e}"))
            })
            .collect::<Result<_, String>>()?;
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
    if crate::payload::is_json(text) {
        return parse_json(text, ctx);
    }
    match aws_header {
        Some(spec) => {
            let layout = std::str::from_utf8(spec)
                .map_err(|_| "is not UTF-8".to_owned())
                .and_then(|s| Layout::parse(s).map_err(|e: LayoutError| e.to_string()));
            match layout {
                Ok(l) => crate::aws::parse_payload(text, Cow::Owned(l), true, ctx),
                Err(e) => Parsed::refused("format", format!("header {AWS_FORMAT_HEADER}: {e}")),
            }
        }
        None => crate::aws::parse_payload(text, Cow::Borrowed(layouts.for_topic(ctx.topic)), false, ctx),
    }
}

/// Parses a JSON flow-log payload (Azure or GCP).
pub fn parse_json(_text: &[u8], _ctx: MessageCtx<'_>) -> Parsed<FlowRecord> {
    Parsed::refused(
        "unsupported",
        "JSON flow logs (Azure NSG/VNet, GCP VPC) are not supported by this version: only AWS VPC flow-log lines are",
    )
}
