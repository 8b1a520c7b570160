//! Decoding the hub's `submit` argument, `(vec RecordInput)` in Candid, at a fraction of the
//! generic decoder's cost per record.
//!
//! The generic `candid` decoder walks serde's visitor machinery and checks wire and expected
//! types at every field of every record (~48 K instructions per record on the hub's Wasm). Yet
//! almost every caller sends the same shape. [`decode_submit_arg_fast`] parses the DIDL message
//! directly when its type table says exactly `vec record { content_hash : blob; kind : text;
//! reference : text; payload : opt blob }`, whatever the order of the table's entries, however
//! many are shared, and whatever other opt / vec / record entries it also holds. Anything else
//! it declines (`None`): another type table (an extra field, `reserved`, a missing `payload`, a
//! variant or function entry, more than one argument, ...), and also any value it finds the
//! least bit off (a bad opt tag, a length past the end, bad UTF-8, a content hash not 32 bytes
//! long, trailing bytes, an over-long LEB128). [`decode_submit_arg`] then runs the generic
//! decoder with the configuration ic-cdk's `#[update]` uses, which accepts, converts or rejects
//! as it always did.
//!
//! Why this is safe: the fast path only ever *accepts*, never rejects, so every rejection and
//! its message come from `candid` as before. It accepts only messages that `candid` accepts too,
//! with the same value: the table checks are `candid`'s own (entry opcodes, type indices in
//! range, primitive opcodes, record field ids strictly increasing and 32-bit), a table of opt,
//! vec and record entries has no other way to fail, and for this exact wire type `candid`
//! reads the same bytes in the same order (fields in id order, opt as a 0/1 tag, LEB128
//! lengths). `tests.rs` checks the agreement on random inputs and on hand-built tables.

use crate::bytes::{Blob, Hash32};
use crate::types::RecordInput;
use candid::utils::decode_args_with_config;
use candid::{DecoderConfig, idl_hash};

/// The skipping quota ic-cdk's `#[update]` sets when it decodes arguments itself.
pub const SKIPPING_QUOTA: usize = 10_000;

/// Larger tables than this are left to the generic decoder (the canonical table has 4 entries).
const MAX_TABLE_ENTRIES: u64 = 32;
/// Larger records than this are left to the generic decoder.
const MAX_RECORD_FIELDS: u32 = 32;
/// Bytes of the smallest encoded record: a 32-byte blob with its length, two empty texts and
/// an absent payload. A claimed count above `remaining / MIN_RECORD_BYTES` cannot be there.
const MIN_RECORD_BYTES: usize = 1 + 32 + 1 + 1 + 1;

const NAT8: i64 = -5;
const TEXT: i64 = -15;

/// Decodes `submit`'s argument: the fast path when it applies, else the generic decoder
/// exactly as ic-cdk would run it.
pub fn decode_submit_arg(bytes: &[u8]) -> Result<Vec<RecordInput>, candid::Error> {
    match decode_submit_arg_fast(bytes) {
        Some(records) => Ok(records),
        None => decode_submit_arg_generic(bytes),
    }
}

/// The generic `candid` decoder with ic-cdk's settings (an empty argument is `()`, skipping
/// quota [`SKIPPING_QUOTA`], no decoding quota).
pub fn decode_submit_arg_generic(bytes: &[u8]) -> Result<Vec<RecordInput>, candid::Error> {
    let bytes: &[u8] = if bytes.is_empty() {
        b"DIDL\x00\x00"
    } else {
        bytes
    };
    let mut config = DecoderConfig::new();
    config.set_skipping_quota(SKIPPING_QUOTA);
    let (records,) = decode_args_with_config::<(Vec<RecordInput>,)>(bytes, &config)?;
    Ok(records)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    ContentHash,
    Kind,
    Reference,
    Payload,
}

enum Entry {
    Opt(i64),
    Vec(i64),
    Record(Vec<(u32, i64)>),
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// Unsigned LEB128 of at most 5 bytes (below 2^35; longer forms go to the generic
    /// decoder). Non-minimal forms have the value `candid` gives them.
    fn leb(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..5 {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// Signed LEB128 of at most 5 bytes.
    fn sleb(&mut self) -> Option<i64> {
        let mut value = 0i64;
        for i in 0..5 {
            let b = self.byte()?;
            value |= i64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if b & 0x40 != 0 {
                    value |= -1i64 << (7 * (i + 1));
                }
                return Some(value);
            }
        }
        None
    }

    /// A length that the rest of the message can hold.
    fn len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.leb()?).ok()?;
        (n <= self.remaining()).then_some(n)
    }

    /// A type reference as `candid` accepts it: a primitive opcode or an index into the table.
    fn type_ref(&mut self, table_len: u64) -> Option<i64> {
        let t = self.sleb()?;
        let ok = if t >= 0 {
            (t as u64) < table_len
        } else {
            t >= -17 || t == -24
        };
        ok.then_some(t)
    }

    fn text(&mut self) -> Option<String> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).ok().map(str::to_owned)
    }

    fn blob(&mut self) -> Option<Vec<u8>> {
        let n = self.len()?;
        Some(self.take(n)?.to_vec())
    }
}

/// Parses `bytes` when it is a message of exactly one `vec RecordInput` argument (any table
/// order, shared or unused opt / vec / record entries) whose value is well formed; `None`
/// otherwise, for the generic decoder to decide. See the module documentation.
pub fn decode_submit_arg_fast(bytes: &[u8]) -> Option<Vec<RecordInput>> {
    let mut r = Reader { bytes, pos: 0 };
    if r.take(4)? != b"DIDL" {
        return None;
    }
    let table_len = r.leb()?;
    if table_len > MAX_TABLE_ENTRIES {
        return None;
    }
    let mut table = Vec::with_capacity(table_len as usize);
    for _ in 0..table_len {
        let entry = match r.byte()? {
            0x6e => Entry::Opt(r.type_ref(table_len)?),
            0x6d => Entry::Vec(r.type_ref(table_len)?),
            0x6c => {
                let n = u32::try_from(r.leb()?).ok()?;
                if n > MAX_RECORD_FIELDS {
                    return None;
                }
                let mut fields = Vec::with_capacity(n as usize);
                let mut prev: Option<u32> = None;
                for _ in 0..n {
                    let id = u32::try_from(r.leb()?).ok()?;
                    if prev.is_some_and(|p| p >= id) {
                        return None;
                    }
                    prev = Some(id);
                    fields.push((id, r.type_ref(table_len)?));
                }
                Entry::Record(fields)
            }
            _ => return None,
        };
        table.push(entry);
    }
    if r.leb()? != 1 {
        return None;
    }
    let order = record_fields(&table, r.type_ref(table_len)?)?;

    let count = usize::try_from(r.leb()?).ok()?;
    if count > r.remaining() / MIN_RECORD_BYTES {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let mut record = RecordInput {
            content_hash: Hash32::ZERO,
            kind: String::new(),
            reference: String::new(),
            payload: None,
        };
        for field in order {
            match field {
                Field::ContentHash => {
                    if r.leb()? != 32 {
                        return None;
                    }
                    record.content_hash = Hash32(r.take(32)?.try_into().ok()?);
                }
                Field::Kind => record.kind = r.text()?,
                Field::Reference => record.reference = r.text()?,
                Field::Payload => {
                    record.payload = match r.byte()? {
                        0 => None,
                        1 => Some(Blob(r.blob()?)),
                        _ => return None,
                    }
                }
            }
        }
        out.push(record);
    }
    (r.remaining() == 0).then_some(out)
}

/// The wire order of `RecordInput`'s fields when `arg` is exactly `vec RecordInput` in `table`.
fn record_fields(table: &[Entry], arg: i64) -> Option<[Field; 4]> {
    let entry = |t: i64| usize::try_from(t).ok().and_then(|i| table.get(i));
    let is_blob = |t: i64| matches!(entry(t), Some(Entry::Vec(NAT8)));
    let Some(Entry::Vec(element)) = entry(arg) else {
        return None;
    };
    let Some(Entry::Record(fields)) = entry(*element) else {
        return None;
    };
    if fields.len() != 4 {
        return None;
    }
    let mut order = [Field::ContentHash; 4];
    for (slot, &(id, ty)) in order.iter_mut().zip(fields) {
        *slot = if id == idl_hash("content_hash") && is_blob(ty) {
            Field::ContentHash
        } else if id == idl_hash("kind") && ty == TEXT {
            Field::Kind
        } else if id == idl_hash("reference") && ty == TEXT {
            Field::Reference
        } else if id == idl_hash("payload")
            && matches!(entry(ty), Some(Entry::Opt(inner)) if is_blob(*inner))
        {
            Field::Payload
        } else {
            return None;
        };
    }
    // Ids are strictly increasing, so four matches are the four distinct fields.
    Some(order)
}

#[cfg(test)]
mod tests;
