//! Azure inventory items → Resources.

use psg_domain::Resource;

use crate::parsed::{MessageCtx, Parsed};

/// Parses one Azure object (item `line` of its message).
pub fn parse(_item: serde_json::Value, line: u32, _ctx: MessageCtx<'_>) -> Parsed<Resource> {
    let _ = line;
    Parsed::refused(
        "unsupported",
        "Azure inventory items are not supported by this version: publish the native JSON form (see README)",
    )
}
