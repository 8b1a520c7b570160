//! Cheaper Candid on the hot paths, with the same bytes on the wire.
//!
//! `candid::Encode!` rebuilds the Rust type's Candid type and its type table on every call
//! (hundreds of thousands of instructions for a result with a rich error type). The type
//! table of a Rust type never changes, so [`encode`] computes `DIDL ‖ table ‖ arg type` once
//! per type and then serializes only the value.
//!
//! [`decode_nat_result`] reads a ledger's `variant { Ok : nat; Err : E }` reply: the common
//! `Ok` is read directly; anything else goes through the full Candid decoder.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::BTreeMap;

use candid::CandidType;
use candid::Nat;
use candid::ser::{IDLBuilder, ValueSerializer};

thread_local! {
    static PREFIXES: RefCell<BTreeMap<TypeId, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
}

fn value_bytes<T: CandidType>(value: &T) -> Vec<u8> {
    let mut ser = ValueSerializer::new();
    value
        .idl_serialize(&mut ser)
        .unwrap_or_else(|e| panic!("BUG: cannot serialize a value: {e}"));
    ser.get_result().to_vec()
}

/// `candid::encode_one(value)`, with the type part cached per Rust type.
pub fn encode<T: CandidType + 'static>(value: T) -> Vec<u8> {
    let id = TypeId::of::<T>();
    let body = value_bytes(&value);
    let cached = PREFIXES.with_borrow(|p| p.get(&id).cloned());
    let mut out = match cached {
        Some(prefix) => prefix,
        None => {
            let full = IDLBuilder::new()
                .arg(&value)
                .and_then(|b| b.serialize_to_vec())
                .unwrap_or_else(|e| panic!("BUG: cannot encode a value: {e}"));
            let prefix = full[..full.len() - body.len()].to_vec();
            PREFIXES.with_borrow_mut(|p| p.insert(id, prefix.clone()));
            prefix
        }
    };
    out.extend_from_slice(&body);
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn leb(&mut self) -> Option<u128> {
        let mut v: u128 = 0;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            if shift >= 128 || (shift == 126 && b & 0x7f > 3) {
                return None;
            }
            v |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
            shift += 7;
        }
    }
    fn sleb(&mut self) -> Option<i64> {
        let mut v: i64 = 0;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            if shift >= 64 {
                return None;
            }
            v |= i64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1i64 << shift;
                }
                return Some(v);
            }
        }
    }
}

/// Candid's field id of `Ok`.
const OK_ID: u128 = 17_724;

/// The Ok of a `Result<Nat, E>` reply, read without the full decoder; `None` when the reply
/// is anything else (then use the full decoder).
fn fast_ok_nat(bytes: &[u8]) -> Option<Nat> {
    let mut r = Reader { bytes, pos: 0 };
    if bytes.get(..4)? != b"DIDL" {
        return None;
    }
    r.pos = 4;
    let n = r.leb()? as usize;
    // Per table entry: for a variant, the field ids and their types.
    let mut variants: Vec<Option<Vec<(u128, i64)>>> = Vec::with_capacity(n);
    for _ in 0..n {
        let op = r.sleb()?;
        match op {
            -18 | -19 => {
                // opt, vec
                r.sleb()?;
                variants.push(None);
            }
            -20 | -21 => {
                // record, variant
                let k = r.leb()? as usize;
                let mut fields = Vec::with_capacity(k);
                for _ in 0..k {
                    let id = r.leb()?;
                    let ty = r.sleb()?;
                    fields.push((id, ty));
                }
                variants.push((op == -21).then_some(fields));
            }
            _ => return None,
        }
    }
    if r.leb()? != 1 {
        return None;
    }
    let arg = usize::try_from(r.sleb()?).ok()?;
    let fields = variants.get(arg)?.as_ref()?;
    let index = r.leb()? as usize;
    let (id, ty) = *fields.get(index)?;
    // `nat` is type -3.
    if id != OK_ID || ty != -3 {
        return None;
    }
    let value = r.leb()?;
    (r.pos == bytes.len()).then(|| Nat::from(value))
}

/// Decodes a ledger's `Result<Nat, E>` reply.
pub fn decode_nat_result<E>(bytes: &[u8]) -> Result<Result<Nat, E>, candid::Error>
where
    E: CandidType + for<'de> serde::Deserialize<'de>,
{
    if let Some(ok) = fast_ok_nat(bytes) {
        return Ok(Ok(ok));
    }
    candid::decode_one(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use icrc_ledger_types::icrc1::transfer::TransferError;
    use icrc_ledger_types::icrc2::transfer_from::TransferFromError;

    #[test]
    fn should_encode_like_candid() {
        for v in [
            Ok::<Nat, TransferError>(Nat::from(7u8)),
            Err(TransferError::BadFee {
                expected_fee: Nat::from(10u8),
            }),
        ] {
            assert_eq!(
                encode(v.clone()),
                candid::encode_one(v.clone()).expect("enc")
            );
            assert_eq!(encode(v.clone()), candid::encode_one(v).expect("enc"));
        }
    }

    #[test]
    fn should_decode_ok_and_err_like_candid() {
        for n in [0u128, 1, 127, 128, u64::MAX as u128 + 5, u128::MAX] {
            let ok = candid::encode_one(Ok::<Nat, TransferFromError>(Nat::from(n))).expect("enc");
            assert_eq!(fast_ok_nat(&ok), Some(Nat::from(n)));
            assert_eq!(
                decode_nat_result::<TransferFromError>(&ok).expect("dec"),
                Ok(Nat::from(n))
            );
        }
        let err = Err::<Nat, TransferFromError>(TransferFromError::InsufficientAllowance {
            allowance: Nat::from(3u8),
        });
        let bytes = candid::encode_one(err.clone()).expect("enc");
        assert_eq!(fast_ok_nat(&bytes), None);
        assert_eq!(
            decode_nat_result::<TransferFromError>(&bytes).expect("dec"),
            err
        );
    }
}
