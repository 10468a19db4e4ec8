//! [`Text`]: the short strings of a flow record (ids, addresses, topic
//! names) kept inline instead of on the heap.
//!
//! A default-format AWS line carries four strings (account, interface and
//! two addresses) and its source one more (the topic); as `String`s they
//! cost ten allocator calls per record, more than the parsing itself. Up to
//! 24 bytes — every IPv4 address, an `eni-`/`i-` id, a 12-digit account, a
//! usual topic name — a `Text` lives inside the record; longer values (an
//! IPv6 address, an ARN) go to the heap as before.
//!
//! On the wire and in JSON a `Text` is an ordinary string (Avro `string`).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;

use apache_avro::schema::{Name, Namespace, Schema, derive::AvroSchemaComponent};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// A string stored inline up to 24 bytes (see the module docs).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Text(CompactString);

impl Text {
    /// `s` as a `Text`, inline when it fits.
    #[inline]
    pub fn new(s: &str) -> Self {
        Self(CompactString::new(s))
    }

    /// The text as a `&str`.
    #[inline]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Deref for Text {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Text {
    #[inline]
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Self {
        Self::new(s)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Self(CompactString::from(s))
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.0.into_string()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl AvroSchemaComponent for Text {
    fn get_schema_in_ctxt(_: &mut HashMap<Name, Schema>, _: &Namespace) -> Schema {
        Schema::String
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_stay_inline_and_long_ones_survive() {
        let eni = Text::new("eni-1235b8ca123456789");
        assert!(!eni.0.is_heap_allocated());
        assert_eq!(eni, "eni-1235b8ca123456789");
        let v6 = Text::from("2001:db8:1234:a100:8d6e:3477:df66:f105".to_owned());
        assert_eq!(v6.as_str(), "2001:db8:1234:a100:8d6e:3477:df66:f105");
        assert_eq!(String::from(v6.clone()), v6.as_str());
        assert_eq!(format!("{v6} {eni:?}"), "2001:db8:1234:a100:8d6e:3477:df66:f105 \"eni-1235b8ca123456789\"");
    }

    #[test]
    fn it_is_a_plain_string_in_json_and_avro_schemas() {
        let t = Text::new("10.0.0.1");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"10.0.0.1\"");
        assert_eq!(serde_json::from_str::<Text>("\"10.0.0.1\"").unwrap(), t);
        assert_eq!(Text::get_schema_in_ctxt(&mut HashMap::new(), &None), Schema::String);
    }
}
