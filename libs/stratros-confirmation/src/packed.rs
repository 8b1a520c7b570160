//! The packed form of a submission (`submit_packed` of the hub): many records in one blob,
//! decoded with a fraction of what Candid costs per record.
//!
//! ```text
//! count u32 BE, then per record:
//!   content_hash 32
//!   kind         u16 BE len || UTF-8
//!   reference    u16 BE len || UTF-8
//!   payload      0x00 (absent) | 0x01 || u32 BE len || bytes
//! ```
//!
//! Nothing may follow the last record.

use crate::bytes::{Blob, Hash32};
use crate::types::RecordInput;

/// Encodes records in the packed form. Panics (`BUG:`) on a kind or reference over 65,535
/// bytes or a payload over 4 GiB, which no hub accepts anyway.
pub fn encode_packed(records: &[RecordInput]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + records.len() * 64);
    let count = u32::try_from(records.len()).expect("BUG: too many records");
    out.extend_from_slice(&count.to_be_bytes());
    for r in records {
        out.extend_from_slice(&r.content_hash.0);
        for s in [&r.kind, &r.reference] {
            let len = u16::try_from(s.len()).expect("BUG: text longer than 65535 bytes");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        match &r.payload {
            None => out.push(0),
            Some(p) => {
                out.push(1);
                let len = u32::try_from(p.len()).expect("BUG: payload longer than 4 GiB");
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(p.as_slice());
            }
        }
    }
    out
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".to_string());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn text(&mut self) -> Result<String, String> {
        let b = self.take(2)?;
        let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "invalid UTF-8".to_string())
    }
}

/// Decodes the packed form; `max_records` bounds the count before anything is allocated.
pub fn decode_packed(bytes: &[u8], max_records: usize) -> Result<Vec<RecordInput>, String> {
    let mut c = Cursor(bytes);
    let b = c.take(4)?;
    let count = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if count > max_records {
        return Err(format!("{count} records, at most {max_records}"));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = |e: String| format!("record {i}: {e}");
        let mut hash = [0u8; 32];
        hash.copy_from_slice(c.take(32).map_err(at)?);
        let kind = c.text().map_err(at)?;
        let reference = c.text().map_err(at)?;
        let payload = match c.take(1).map_err(at)?[0] {
            0 => None,
            1 => {
                let b = c.take(4).map_err(at)?;
                let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                Some(Blob(c.take(n).map_err(at)?.to_vec()))
            }
            t => return Err(at(format!("payload tag {t}"))),
        };
        out.push(RecordInput {
            content_hash: Hash32(hash),
            kind,
            reference,
            payload,
        });
    }
    if !c.0.is_empty() {
        return Err(format!("{} trailing bytes", c.0.len()));
    }
    Ok(out)
}
