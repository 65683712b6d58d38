//! Just enough of the protocol-buffer wire format to edit an ONNX model.
//!
//! A message is kept as its list of fields in file order, each with its raw
//! value, so everything this code does not touch (opset imports, metadata,
//! fields of later ONNX versions) is written back byte for byte. No schema
//! compiler and no generated code: `rewrite` names the few ONNX field
//! numbers it needs.

use anyhow::{bail, Context, Result};

/// One field's value as the wire carries it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(Vec<u8>),
    Fixed32([u8; 4]),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub number: u32,
    pub value: Value,
}

/// A decoded message: its fields in the order they were read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    pub fields: Vec<Field>,
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&byte) = bytes.get(*at) else {
            bail!("truncated varint at byte {}", *at);
        };
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    bail!("varint longer than 10 bytes ending at byte {}", *at)
}

fn write_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, len: usize) -> Result<&'a [u8]> {
    let end = at
        .checked_add(len)
        .filter(|&end| end <= bytes.len())
        .with_context(|| format!("field of {len} bytes at byte {} runs past the end", *at))?;
    let out = &bytes[*at..end];
    *at = end;
    Ok(out)
}

impl Message {
    pub fn decode(bytes: &[u8]) -> Result<Message> {
        let mut fields = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let key = read_varint(bytes, &mut at)?;
            let number = u32::try_from(key >> 3).context("field number out of range")?;
            let value = match key & 7 {
                0 => Value::Varint(read_varint(bytes, &mut at)?),
                1 => Value::Fixed64(take(bytes, &mut at, 8)?.try_into()?),
                2 => {
                    let len = usize::try_from(read_varint(bytes, &mut at)?)?;
                    Value::Bytes(take(bytes, &mut at, len)?.to_vec())
                }
                5 => Value::Fixed32(take(bytes, &mut at, 4)?.try_into()?),
                wire => bail!("field {number}: unsupported wire type {wire}"),
            };
            fields.push(Field { number, value });
        }
        Ok(Message { fields })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for field in &self.fields {
            let number = u64::from(field.number) << 3;
            match &field.value {
                Value::Varint(v) => {
                    write_varint(number, &mut out);
                    write_varint(*v, &mut out);
                }
                Value::Fixed64(b) => {
                    write_varint(number | 1, &mut out);
                    out.extend_from_slice(b);
                }
                Value::Bytes(b) => {
                    write_varint(number | 2, &mut out);
                    write_varint(b.len() as u64, &mut out);
                    out.extend_from_slice(b);
                }
                Value::Fixed32(b) => {
                    write_varint(number | 5, &mut out);
                    out.extend_from_slice(b);
                }
            }
        }
        out
    }

    /// Every length-delimited value of field `number`, as text.
    pub fn strings(&self, number: u32) -> Vec<String> {
        self.bytes(number)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    /// The first value of field `number` as text, if any.
    pub fn string(&self, number: u32) -> Option<String> {
        self.bytes(number)
            .next()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    pub fn bytes(&self, number: u32) -> impl Iterator<Item = &[u8]> {
        self.fields
            .iter()
            .filter(move |f| f.number == number)
            .filter_map(|f| match &f.value {
                Value::Bytes(b) => Some(b.as_slice()),
                _ => None,
            })
    }

    pub fn varint(&self, number: u32) -> Option<u64> {
        self.fields
            .iter()
            .filter(|f| f.number == number)
            .find_map(|f| match f.value {
                Value::Varint(v) => Some(v),
                _ => None,
            })
    }

    /// A repeated varint field, packed or not (proto3 writers pack them).
    pub fn varints(&self, number: u32) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for field in self.fields.iter().filter(|f| f.number == number) {
            match &field.value {
                Value::Varint(v) => out.push(*v),
                Value::Bytes(packed) => {
                    let mut at = 0;
                    while at < packed.len() {
                        out.push(read_varint(packed, &mut at)?);
                    }
                }
                other => bail!("field {number}: expected varints, found {other:?}"),
            }
        }
        Ok(out)
    }

    /// Replaces every value of field `number` with `values`, written where the
    /// first one was (or at the end).
    pub fn set(&mut self, number: u32, values: Vec<Value>) {
        let at = self
            .fields
            .iter()
            .position(|f| f.number == number)
            .unwrap_or(self.fields.len());
        self.fields.retain(|f| f.number != number);
        let at = at.min(self.fields.len());
        let new = values.into_iter().map(|value| Field { number, value });
        self.fields.splice(at..at, new);
    }

    pub fn push_bytes(&mut self, number: u32, bytes: Vec<u8>) {
        self.fields.push(Field {
            number,
            value: Value::Bytes(bytes),
        });
    }

    pub fn push_varint(&mut self, number: u32, value: u64) {
        self.fields.push(Field {
            number,
            value: Value::Varint(value),
        });
    }

    /// Packs `values` as one length-delimited field (a packed repeated varint).
    pub fn packed_varints(values: &[u64]) -> Value {
        let mut out = Vec::new();
        for &v in values {
            write_varint(v, &mut out);
        }
        Value::Bytes(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_encodes_every_wire_type_byte_for_byte() {
        let mut m = Message::default();
        m.push_varint(1, 300);
        m.push_bytes(2, b"conv".to_vec());
        m.fields.push(Field {
            number: 3,
            value: Value::Fixed32(1.5f32.to_le_bytes()),
        });
        m.fields.push(Field {
            number: 4,
            value: Value::Fixed64(7u64.to_le_bytes()),
        });
        m.push_varint(20, u64::MAX);
        let bytes = m.encode();
        let back = Message::decode(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.varint(1), Some(300));
        assert_eq!(back.string(2).as_deref(), Some("conv"));
    }

    #[test]
    fn reads_packed_and_unpacked_repeated_varints_alike() {
        let mut m = Message::default();
        m.fields.push(Field {
            number: 1,
            value: Message::packed_varints(&[1, 128, 3]),
        });
        m.push_varint(1, 9);
        assert_eq!(m.varints(1).unwrap(), vec![1, 128, 3, 9]);
    }

    #[test]
    fn refuses_truncated_input_with_the_place_it_broke() {
        let mut m = Message::default();
        m.push_bytes(2, vec![0; 10]);
        let bytes = m.encode();
        let err = Message::decode(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(err.to_string().contains("runs past the end"), "{err}");
        let err = Message::decode(&[0x80]).unwrap_err();
        assert!(err.to_string().contains("truncated varint"), "{err}");
        let err = Message::decode(&[0x0b]).unwrap_err();
        assert!(err.to_string().contains("wire type 3"), "{err}");
    }
}
