//! A strict CBOR well-formedness check for certificates and witnesses.
//!
//! `ic-cbor` parses leniently (it accepts fewer map entries than declared, text for bytes, any
//! tag, trailing data), so a changed byte can leave the parsed value unchanged. Receipts must fail
//! on any changed byte, so before parsing we require the one encoding the IC produces:
//! definite lengths, shortest-form heads, exact item counts, no trailing bytes, text strings only
//! as map keys and byte strings everywhere else, no negative integers, floats or simple values,
//! and tag 55799 (self-describe) only as the outermost item. The `certificate` byte string of a
//! delegation is checked the same way.

pub fn check(bytes: &[u8]) -> Result<(), String> {
    let mut r = Reader { bytes, pos: 0 };
    if bytes.starts_with(&[0xd9, 0xd9, 0xf7]) {
        r.pos = 3;
    }
    r.item(Ctx::Value, 0)?;
    if r.pos != bytes.len() {
        return Err(format!("{} trailing byte(s)", bytes.len() - r.pos));
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Key,
    Value,
    NestedCertificate,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

const MAX_DEPTH: usize = 128;

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn head(&mut self) -> Result<(u8, u64), String> {
        let at = self.pos;
        let b = self.take(1)?[0];
        let (major, info) = (b >> 5, b & 0x1f);
        let (value, min) = match info {
            0..=23 => (u64::from(info), 0),
            24 => (u64::from(self.take(1)?[0]), 24),
            25 => (
                u64::from(u16::from_be_bytes(self.take(2)?.try_into().unwrap())),
                1 << 8,
            ),
            26 => (
                u64::from(u32::from_be_bytes(self.take(4)?.try_into().unwrap())),
                1 << 16,
            ),
            27 => (
                u64::from_be_bytes(self.take(8)?.try_into().unwrap()),
                1 << 32,
            ),
            _ => return Err(format!("indefinite or reserved length at byte {at}")),
        };
        if value < min {
            return Err(format!("non-shortest length at byte {at}"));
        }
        Ok((major, value))
    }

    fn item(&mut self, ctx: Ctx, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("nesting too deep".into());
        }
        let at = self.pos;
        let (major, value) = self.head()?;
        let len = usize::try_from(value).map_err(|_| format!("length too large at byte {at}"))?;
        match (major, ctx) {
            (0, Ctx::Value) => Ok(()),
            (2, Ctx::Value) => self.take(len).map(|_| ()),
            (2, Ctx::NestedCertificate) => check(self.take(len)?),
            (3, Ctx::Key) => {
                let s = self.take(len)?;
                std::str::from_utf8(s).map_err(|_| format!("invalid UTF-8 key at byte {at}"))?;
                Ok(())
            }
            (4, Ctx::Value) => {
                for _ in 0..len {
                    self.item(Ctx::Value, depth + 1)?;
                }
                Ok(())
            }
            (5, Ctx::Value) => {
                for _ in 0..len {
                    let key_start = self.pos;
                    self.item(Ctx::Key, depth + 1)?;
                    let is_cert = &self.bytes[key_start..self.pos] == b"\x6bcertificate";
                    let ctx = if is_cert {
                        Ctx::NestedCertificate
                    } else {
                        Ctx::Value
                    };
                    self.item(ctx, depth + 1)?;
                }
                Ok(())
            }
            _ => Err(format!("unexpected CBOR major type {major} at byte {at}")),
        }
    }
}
