//! The Candid encoding of a [`RecordBody`], written by hand for [`crate::records::content_hash`].
//!
//! The content hash is defined over `Candid(body)`; candid's generic encoder builds the type
//! table anew for every value and cost ~0.4 M instructions per record (measured), a tenth of
//! the whole per-record budget. The type table never changes, so it is computed once per
//! heap (by candid itself) and only the value part is written here. A native test checks the
//! result equals `Encode!(body)` byte for byte for every variant.

use std::cell::OnceCell;

use candid::{Encode, idl_hash};
use stratros_confirmation::Blob;

use crate::types::RecordBody;

enum Field<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
    OptBytes(Option<&'a [u8]>),
}

fn leb128(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    leb128(out, b.len() as u64);
    out.extend_from_slice(b);
}

const VARIANTS: [&str; 4] = ["ModelAttestation", "Dataset", "Inference", "Transaction"];

/// Candid orders variant cases and record fields by the hash of their names.
fn variant_index(name: &str) -> u64 {
    let h = idl_hash(name);
    VARIANTS.iter().filter(|v| idl_hash(v) < h).count() as u64
}

fn fields<'a>(body: &'a RecordBody) -> (&'static str, Vec<(&'static str, Field<'a>)>) {
    match body {
        RecordBody::ModelAttestation {
            model_id,
            version,
            weights_hash,
            metadata,
        } => (
            "ModelAttestation",
            vec![
                ("model_id", Field::Text(model_id)),
                ("version", Field::Text(version)),
                ("weights_hash", Field::Bytes(&weights_hash.0)),
                ("metadata", Field::Text(metadata)),
            ],
        ),
        RecordBody::Dataset {
            hash,
            licence,
            source,
        } => (
            "Dataset",
            vec![
                ("hash", Field::Bytes(&hash.0)),
                ("licence", Field::Text(licence)),
                ("source", Field::Text(source)),
            ],
        ),
        RecordBody::Inference {
            model,
            input_hash,
            output,
            output_hash,
            executor,
        } => (
            "Inference",
            vec![
                ("model", Field::Text(model)),
                ("input_hash", Field::Bytes(&input_hash.0)),
                (
                    "output",
                    Field::OptBytes(output.as_ref().map(|o| o.as_slice())),
                ),
                ("output_hash", Field::Bytes(&output_hash.0)),
                ("executor", Field::Text(executor)),
            ],
        ),
        RecordBody::Transaction { kind, payload } => (
            "Transaction",
            vec![
                ("kind", Field::Text(kind)),
                ("payload", Field::Bytes(payload.as_slice())),
            ],
        ),
    }
}

/// The value part of `Candid(body)` (what follows the type table).
fn value(body: &RecordBody) -> Vec<u8> {
    let (name, mut fields) = fields(body);
    let mut out = Vec::with_capacity(128);
    leb128(&mut out, variant_index(name));
    fields.sort_by_key(|(n, _)| idl_hash(n));
    for (_, f) in fields {
        match f {
            Field::Text(s) => bytes(&mut out, s.as_bytes()),
            Field::Bytes(b) => bytes(&mut out, b),
            Field::OptBytes(None) => out.push(0),
            Field::OptBytes(Some(b)) => {
                out.push(1);
                bytes(&mut out, b);
            }
        }
    }
    out
}

thread_local! {
    /// `DIDL`, the type table and the argument type: the same for every body.
    static PREFIX: OnceCell<Vec<u8>> = const { OnceCell::new() };
}

fn prefix() -> Vec<u8> {
    PREFIX.with(|p| {
        p.get_or_init(|| {
            let probe = RecordBody::Transaction {
                kind: String::new(),
                payload: Blob(vec![]),
            };
            let full =
                Encode!(&probe).unwrap_or_else(|e| panic!("BUG: cannot encode a record body: {e}"));
            let v = value(&probe);
            assert!(
                full.ends_with(&v),
                "BUG: the hand-written Candid value differs from candid's"
            );
            full[..full.len() - v.len()].to_vec()
        })
        .clone()
    })
}

/// `Candid(body)`, equal to `Encode!(body)`.
pub fn candid_body(body: &RecordBody) -> Vec<u8> {
    let mut out = prefix();
    out.extend_from_slice(&value(body));
    out
}
