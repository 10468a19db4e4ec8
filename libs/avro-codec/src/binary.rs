//! Avro binary encoding and decoding straight from and into our Rust types,
//! through serde, without building an intermediate `apache_avro::Value`.
//!
//! This is possible because every message type mirrors its schema exactly
//! (the drift test in this crate proves it): a record is its fields in
//! declaration order, `Option<T>` is the union `["null", T]`, a unit enum is
//! an Avro enum whose symbols are the variants in declaration order, `Vec` is
//! an array, `HashMap<String, _>` a map, integers are zig-zag varints. So the
//! Rust type alone says what the bytes are, and the schema need not be
//! consulted per value.
//!
//! apache-avro remains the reference: the property tests check that these
//! bytes are exactly apache-avro's for every message, and that each reads
//! the other's output.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};

/// An encoding or decoding failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BinaryError(String);

impl ser::Error for BinaryError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

impl de::Error for BinaryError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

type Result<T, E = BinaryError> = std::result::Result<T, E>;

fn unsupported<T>(what: &str) -> Result<T> {
    Err(BinaryError(format!("{what} has no Avro mapping in our messages")))
}

/// Appends the Avro binary encoding of `value` to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    value.serialize(&mut Encoder { out })
}

/// Decodes a `T` from Avro binary; every byte must be used.
pub fn decode<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T> {
    let mut d = Decoder { input: bytes };
    let value = T::deserialize(&mut d)?;
    if !d.input.is_empty() {
        return Err(BinaryError(format!("{} trailing bytes after the record", d.input.len())));
    }
    Ok(value)
}

/// An Avro `long`: zig-zag, then a little-endian base-128 varint.
pub(crate) fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl Encoder<'_> {
    fn bytes(&mut self, b: &[u8]) {
        write_long(self.out, b.len() as i64);
        self.out.extend_from_slice(b);
    }
}

impl<'a, 'b> ser::Serializer for &'b mut Encoder<'a> {
    type Ok = ();
    type Error = BinaryError;
    type SerializeSeq = Blocks<'a, 'b>;
    type SerializeTuple = ser::Impossible<(), BinaryError>;
    type SerializeTupleStruct = ser::Impossible<(), BinaryError>;
    type SerializeTupleVariant = ser::Impossible<(), BinaryError>;
    type SerializeMap = Blocks<'a, 'b>;
    type SerializeStruct = Self;
    type SerializeStructVariant = ser::Impossible<(), BinaryError>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.out.push(u8::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<()> {
        write_long(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<()> {
        let v = i64::try_from(v).map_err(|_| BinaryError(format!("{v} does not fit an Avro long")))?;
        self.serialize_i64(v)
    }
    fn serialize_f32(self, v: f32) -> Result<()> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<()> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        self.bytes(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        self.bytes(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<()> {
        self.out.push(0); // union branch 0: "null"
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<()> {
        self.out.push(2); // zig-zag 1: union branch 1
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        Ok(())
    }
    fn serialize_unit_variant(self, _name: &'static str, index: u32, _variant: &'static str) -> Result<()> {
        self.serialize_i64(i64::from(index))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _name: &'static str, value: &T) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<()> {
        unsupported("an enum variant with data")
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq> {
        Blocks::start(self, len)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple> {
        unsupported("a tuple")
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeTupleStruct> {
        unsupported("a tuple struct")
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        unsupported("an enum variant with data")
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap> {
        Blocks::start(self, len)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        unsupported("an enum variant with data")
    }
}

impl ser::SerializeStruct for &mut Encoder<'_> {
    type Ok = ();
    type Error = BinaryError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, _key: &'static str, value: &T) -> Result<()> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<()> {
        Ok(())
    }
}

/// An array or map: one block with the item count, then the end marker 0.
struct Blocks<'a, 'b> {
    enc: &'b mut Encoder<'a>,
}

impl<'a, 'b> Blocks<'a, 'b> {
    fn start(enc: &'b mut Encoder<'a>, len: Option<usize>) -> Result<Self> {
        match len {
            Some(0) => {}
            Some(n) => write_long(enc.out, n as i64),
            None => return unsupported("a sequence of unknown length"),
        }
        Ok(Self { enc })
    }

    fn finish(self) -> Result<()> {
        self.enc.out.push(0);
        Ok(())
    }
}

impl ser::SerializeSeq for Blocks<'_, '_> {
    type Ok = ();
    type Error = BinaryError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.enc)
    }
    fn end(self) -> Result<()> {
        self.finish()
    }
}

impl ser::SerializeMap for Blocks<'_, '_> {
    type Ok = ();
    type Error = BinaryError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<()> {
        key.serialize(&mut *self.enc)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.enc)
    }
    fn end(self) -> Result<()> {
        self.finish()
    }
}

struct Decoder<'de> {
    input: &'de [u8],
}

impl<'de> Decoder<'de> {
    fn long(&mut self) -> Result<i64> {
        let mut z: u64 = 0;
        for (i, b) in self.input.iter().enumerate().take(10) {
            z |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.input = &self.input[i + 1..];
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(BinaryError("truncated or overlong varint".into()))
    }

    fn int(&mut self) -> Result<i32> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| BinaryError(format!("{v} does not fit an Avro int")))
    }

    fn take(&mut self, n: usize) -> Result<&'de [u8]> {
        if self.input.len() < n {
            return Err(BinaryError(format!("needs {n} bytes, {} left", self.input.len())));
        }
        let (head, tail) = self.input.split_at(n);
        self.input = tail;
        Ok(head)
    }

    fn len(&mut self) -> Result<usize> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| BinaryError(format!("negative length {n}")))
    }

    fn str(&mut self) -> Result<&'de str> {
        let n = self.len()?;
        let b = self.take(n)?;
        std::str::from_utf8(b).map_err(|e| BinaryError(format!("string is not UTF-8: {e}")))
    }

    /// The item count of the next block (0 = end); a negative count is
    /// followed by the block's byte size, which we do not need.
    fn block(&mut self) -> Result<usize> {
        let n = self.long()?;
        if n < 0 {
            self.long()?;
            return usize::try_from(n.unsigned_abs()).map_err(|_| BinaryError("block too large".into()));
        }
        usize::try_from(n).map_err(|_| BinaryError("block too large".into()))
    }
}

macro_rules! decode_int {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            let v = self.long()?;
            visitor.$visit(<$ty>::try_from(v).map_err(|_| BinaryError(format!("{v} is out of range")))?)
        }
    };
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = BinaryError;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        unsupported("a value without a type (Avro binary is not self-describing)")
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.take(1)?[0] {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            b => Err(BinaryError(format!("{b} is not a boolean"))),
        }
    }
    decode_int!(deserialize_i8, visit_i8, i8);
    decode_int!(deserialize_i16, visit_i16, i16);
    decode_int!(deserialize_i32, visit_i32, i32);
    decode_int!(deserialize_u8, visit_u8, u8);
    decode_int!(deserialize_u16, visit_u16, u16);
    decode_int!(deserialize_u32, visit_u32, u32);
    decode_int!(deserialize_u64, visit_u64, u64);
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i64(self.long()?)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let b = self.take(4)?;
        visitor.visit_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        visitor.visit_f64(f64::from_le_bytes(a))
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let s = self.str()?;
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(BinaryError(format!("'{s}' is not one character"))),
        }
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.str()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let n = self.len()?;
        visitor.visit_borrowed_bytes(self.take(n)?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.long()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            b => Err(BinaryError(format!("union branch {b} of an optional value"))),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_seq(Items { d: self, left: 0, done: false })
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value> {
        unsupported("a tuple")
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value> {
        unsupported("a tuple struct")
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_map(Items { d: self, left: 0, done: false })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_seq(Fields { d: self, left: fields.len() })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let index = self.int()?;
        let index = u32::try_from(index)
            .ok()
            .filter(|i| (*i as usize) < variants.len())
            .ok_or_else(|| BinaryError(format!("enum symbol {index} of {}", variants.len())))?;
        visitor.visit_enum(Symbol(index))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        unsupported("a field name")
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        unsupported("an ignored value")
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The fields of a record, in order.
struct Fields<'a, 'de> {
    d: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Fields<'_, 'de> {
    type Error = BinaryError;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.d).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// The items of an array or map, block by block, until the empty block.
struct Items<'a, 'de> {
    d: &'a mut Decoder<'de>,
    left: usize,
    done: bool,
}

impl<'de> Items<'_, 'de> {
    fn more(&mut self) -> Result<bool> {
        if self.done {
            return Ok(false);
        }
        if self.left == 0 {
            self.left = self.d.block()?;
            self.done = self.left == 0;
        }
        Ok(!self.done)
    }
}

impl<'de> de::SeqAccess<'de> for Items<'_, 'de> {
    type Error = BinaryError;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if !self.more()? {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.d).map(Some)
    }
}

impl<'de> de::MapAccess<'de> for Items<'_, 'de> {
    type Error = BinaryError;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if !self.more()? {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.d).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.d)
    }
}

/// An enum symbol by index.
struct Symbol(u32);

impl<'de> de::EnumAccess<'de> for Symbol {
    type Error = BinaryError;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let v = seed.deserialize(self.0.into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for Symbol {
    type Error = BinaryError;
    fn unit_variant(self) -> Result<()> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value> {
        unsupported("an enum variant with data")
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value> {
        unsupported("an enum variant with data")
    }
    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], _visitor: V) -> Result<V::Value> {
        unsupported("an enum variant with data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_follow_the_spec() {
        // Avro specification examples: 0→00, -1→01, 1→02, -2→03, 2→04, -64→7f, 64→8001
        for (v, bytes) in [
            (0i64, &[0x00u8][..]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-2, &[0x03]),
            (2, &[0x04]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
        ] {
            let mut out = Vec::new();
            write_long(&mut out, v);
            assert_eq!(out, bytes, "{v}");
            assert_eq!(Decoder { input: bytes }.long().unwrap(), v);
        }
        for v in [i64::MIN, i64::MAX, -1_000_000_007, 1 << 40] {
            let mut out = Vec::new();
            write_long(&mut out, v);
            assert_eq!(Decoder { input: &out }.long().unwrap(), v);
        }
    }

    #[test]
    fn hostile_bytes_are_errors() {
        assert!(decode::<String>(&[0x80; 11]).is_err(), "overlong varint");
        assert!(decode::<String>(&[0x14, b'a']).is_err(), "length past the end");
        assert!(decode::<String>(&[0x01]).is_err(), "negative length");
        assert!(decode::<Option<i32>>(&[0x06]).is_err(), "union branch 3");
        assert!(decode::<bool>(&[0x02]).is_err());
    }
}
