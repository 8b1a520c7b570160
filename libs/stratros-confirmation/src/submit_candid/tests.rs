use super::*;
use candid::{CandidType, Encode, Reserved};
use proptest::prelude::*;

fn input(i: u8, payload: Option<Vec<u8>>) -> RecordInput {
    RecordInput {
        content_hash: Hash32([i; 32]),
        kind: "inference".into(),
        reference: format!("ref-{i}"),
        payload: payload.map(Blob),
    }
}

fn inputs() -> Vec<RecordInput> {
    vec![
        input(1, None),
        input(2, Some(vec![9, 8, 7])),
        RecordInput {
            content_hash: Hash32([3; 32]),
            kind: String::new(),
            reference: "ünïcødé ✓".into(),
            payload: Some(Blob(Vec::new())),
        },
    ]
}

fn generic(bytes: &[u8]) -> Option<Vec<RecordInput>> {
    decode_submit_arg_generic(bytes).ok()
}

/// Asserts the generic decoder refuses `bytes`, and that the fast path leaves it to it.
fn assert_refused(bytes: &[u8]) {
    assert!(
        decode_submit_arg_fast(bytes).is_none(),
        "fast path declines"
    );
    assert!(decode_submit_arg(bytes).is_err(), "refused");
}

fn leb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn sleb(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0) {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn opt(t: i64) -> Vec<u8> {
    let mut out = vec![0x6e];
    sleb(&mut out, t);
    out
}

fn vec_of(t: i64) -> Vec<u8> {
    let mut out = vec![0x6d];
    sleb(&mut out, t);
    out
}

/// A record entry with `fields` sorted by id, as the wire requires.
fn record(fields: &[(&str, i64)]) -> Vec<u8> {
    let mut fields: Vec<(u32, i64)> = fields.iter().map(|(n, t)| (idl_hash(n), *t)).collect();
    fields.sort();
    let mut out = vec![0x6c];
    leb(&mut out, fields.len() as u64);
    for (id, t) in fields {
        leb(&mut out, u64::from(id));
        sleb(&mut out, t);
    }
    out
}

fn message(table: &[Vec<u8>], args: &[i64], values: &[u8]) -> Vec<u8> {
    let mut out = b"DIDL".to_vec();
    leb(&mut out, table.len() as u64);
    for entry in table {
        out.extend_from_slice(entry);
    }
    leb(&mut out, args.len() as u64);
    for &a in args {
        sleb(&mut out, a);
    }
    out.extend_from_slice(values);
    out
}

/// The value of `vec RecordInput`: fields in id order.
fn values(records: &[RecordInput]) -> Vec<u8> {
    let mut names = ["content_hash", "kind", "reference", "payload"];
    names.sort_by_key(|n| idl_hash(n));
    let mut out = Vec::new();
    leb(&mut out, records.len() as u64);
    for r in records {
        for name in names {
            match name {
                "content_hash" => {
                    leb(&mut out, 32);
                    out.extend_from_slice(&r.content_hash.0);
                }
                "kind" | "reference" => {
                    let s = if name == "kind" {
                        &r.kind
                    } else {
                        &r.reference
                    };
                    leb(&mut out, s.len() as u64);
                    out.extend_from_slice(s.as_bytes());
                }
                _ => match &r.payload {
                    None => out.push(0),
                    Some(p) => {
                        out.push(1);
                        leb(&mut out, p.len() as u64);
                        out.extend_from_slice(p.as_slice());
                    }
                },
            }
        }
    }
    out
}

/// The four entries of `vec RecordInput`, placed at `at` = [vec, record, blob, opt blob].
fn entries(at: [usize; 4]) -> [(usize, Vec<u8>); 4] {
    let [_, rec, blob, opt_blob] = at.map(|i| i as i64);
    [
        (at[0], vec_of(rec)),
        (
            at[1],
            record(&[
                ("content_hash", blob),
                ("kind", TEXT),
                ("reference", TEXT),
                ("payload", opt_blob),
            ]),
        ),
        (at[2], vec_of(NAT8)),
        (at[3], opt(blob)),
    ]
}

/// A table of `len` entries holding `vec RecordInput` at `at` and `fill` everywhere else.
fn table_with(len: usize, at: [usize; 4], fill: impl Fn(usize) -> Vec<u8>) -> Vec<Vec<u8>> {
    let mut table: Vec<Vec<u8>> = (0..len).map(fill).collect();
    for (i, e) in entries(at) {
        table[i] = e;
    }
    table
}

fn canonical(records: &[RecordInput]) -> Vec<u8> {
    message(
        &table_with(4, [0, 1, 2, 3], |_| Vec::new()),
        &[0],
        &values(records),
    )
}

#[test]
fn should_decode_the_standard_encoding_on_the_fast_path() {
    let records = inputs();
    let bytes = Encode!(&records).expect("encode");
    assert_eq!(decode_submit_arg_fast(&bytes), Some(records.clone()));
    assert_eq!(generic(&bytes), Some(records.clone()));
    assert_eq!(decode_submit_arg(&bytes).expect("decodes"), records);
    let empty: Vec<RecordInput> = Vec::new();
    let bytes = Encode!(&empty).expect("encode");
    assert_eq!(decode_submit_arg_fast(&bytes), Some(Vec::new()));
}

#[test]
fn should_decode_a_hand_built_canonical_message_as_candid_does() {
    let records = inputs();
    let bytes = canonical(&records);
    assert_eq!(decode_submit_arg_fast(&bytes), Some(records.clone()));
    assert_eq!(generic(&bytes), Some(records));
}

#[test]
fn should_decode_a_reordered_type_table_as_candid_does() {
    let records = inputs();
    let bytes = message(
        &table_with(4, [3, 1, 2, 0], |_| Vec::new()),
        &[3],
        &values(&records),
    );
    assert_eq!(decode_submit_arg_fast(&bytes), Some(records.clone()));
    assert_eq!(generic(&bytes), Some(records));
}

#[test]
fn should_decode_a_table_with_unused_entries_as_candid_does() {
    let records = inputs();
    // Unused opt / vec / record entries, also recursive ones: still the fast path.
    let bytes = message(
        &table_with(8, [5, 2, 7, 0], |i| match i % 3 {
            0 => record(&[("note", TEXT), ("next", 1)]),
            1 => opt(1),
            _ => vec_of(-24),
        }),
        &[5],
        &values(&records),
    );
    assert_eq!(decode_submit_arg_fast(&bytes), Some(records.clone()));
    assert_eq!(generic(&bytes), Some(records.clone()));

    // An unused variant entry: the generic decoder takes it, with the same value.
    let mut variant = vec![0x6b, 1];
    leb(&mut variant, u64::from(idl_hash("x")));
    variant.push(0x7f);
    let bytes = message(
        &table_with(5, [1, 2, 3, 4], |_| variant.clone()),
        &[1],
        &values(&records),
    );
    assert_eq!(decode_submit_arg_fast(&bytes), None);
    assert_eq!(decode_submit_arg(&bytes).expect("decodes"), records);
}

#[test]
fn should_share_one_blob_entry_or_use_two_as_candid_does() {
    let records = inputs();
    // content_hash and the payload's blob as two distinct `vec nat8` entries.
    let table = vec![
        vec_of(1),
        record(&[
            ("content_hash", 2),
            ("kind", TEXT),
            ("reference", TEXT),
            ("payload", 3),
        ]),
        vec_of(NAT8),
        opt(4),
        vec_of(NAT8),
    ];
    let bytes = message(&table, &[0], &values(&records));
    assert_eq!(decode_submit_arg_fast(&bytes), Some(records.clone()));
    assert_eq!(generic(&bytes), Some(records));
}

#[derive(CandidType)]
struct WithNote {
    content_hash: Hash32,
    kind: String,
    reference: String,
    payload: Option<Blob>,
    note: String,
}

#[derive(CandidType)]
struct WithReserved {
    content_hash: Hash32,
    kind: String,
    reference: String,
    payload: Option<Blob>,
    extra: Reserved,
}

#[derive(CandidType)]
struct WithoutPayload {
    content_hash: Hash32,
    kind: String,
    reference: String,
}

#[derive(CandidType)]
struct PayloadAs<T: CandidType> {
    content_hash: Hash32,
    kind: String,
    reference: String,
    payload: T,
}

/// `bytes` leaves the fast path and decodes, through the generic decoder, to `expected`.
fn assert_falls_back_to(bytes: &[u8], expected: &[RecordInput]) {
    assert_eq!(decode_submit_arg_fast(bytes), None, "fast path declines");
    assert_eq!(decode_submit_arg(bytes).expect("decodes"), expected);
}

#[test]
fn should_fall_back_for_an_extra_field_with_the_same_value() {
    let records = inputs();
    let wire: Vec<WithNote> = records
        .iter()
        .map(|r| WithNote {
            content_hash: r.content_hash,
            kind: r.kind.clone(),
            reference: r.reference.clone(),
            payload: r.payload.clone(),
            note: "ignored".into(),
        })
        .collect();
    assert_falls_back_to(&Encode!(&wire).expect("encode"), &records);

    let wire: Vec<WithReserved> = records
        .iter()
        .map(|r| WithReserved {
            content_hash: r.content_hash,
            kind: r.kind.clone(),
            reference: r.reference.clone(),
            payload: r.payload.clone(),
            extra: Reserved,
        })
        .collect();
    assert_falls_back_to(&Encode!(&wire).expect("encode"), &records);
}

#[test]
fn should_fall_back_for_a_payload_absent_null_reserved_or_of_another_type() {
    let records = inputs();
    let none: Vec<RecordInput> = records
        .iter()
        .map(|r| RecordInput {
            payload: None,
            ..r.clone()
        })
        .collect();
    let without: Vec<WithoutPayload> = records
        .iter()
        .map(|r| WithoutPayload {
            content_hash: r.content_hash,
            kind: r.kind.clone(),
            reference: r.reference.clone(),
        })
        .collect();
    assert_falls_back_to(&Encode!(&without).expect("encode"), &none);

    fn with<T: CandidType + Clone>(records: &[RecordInput], payload: T) -> Vec<u8> {
        let wire: Vec<PayloadAs<T>> = records
            .iter()
            .map(|r| PayloadAs {
                content_hash: r.content_hash,
                kind: r.kind.clone(),
                reference: r.reference.clone(),
                payload: payload.clone(),
            })
            .collect();
        Encode!(&wire).expect("encode")
    }
    assert_falls_back_to(&with(&records, ()), &none);
    assert_falls_back_to(&with(&records, Reserved), &none);
    assert_falls_back_to(&with(&records, Some(7u64)), &none);

    // `opt opt blob`: candid unwraps the value; whatever it gives, the hub gives.
    let nested = with(&records, Some(Some(Blob(vec![1, 2]))));
    assert_eq!(decode_submit_arg_fast(&nested), None);
    assert_eq!(
        decode_submit_arg(&nested).ok(),
        decode_submit_arg_generic(&nested).ok()
    );
}

#[test]
fn should_fall_back_for_a_second_argument_with_the_same_value() {
    let records = inputs();
    assert_falls_back_to(&Encode!(&records, &5u8).expect("encode"), &records);
}

#[test]
fn should_refuse_every_truncated_message() {
    let bytes = Encode!(&inputs()).expect("encode");
    for n in 0..bytes.len() {
        assert_refused(&bytes[..n]);
    }
}

#[test]
fn should_refuse_trailing_bytes() {
    let mut bytes = Encode!(&inputs()).expect("encode");
    bytes.push(0);
    assert_refused(&bytes);
}

#[test]
fn should_refuse_lengths_past_the_end() {
    let records = inputs();
    let table = table_with(4, [0, 1, 2, 3], |_| Vec::new());
    // A record count far beyond what the message holds.
    let mut v = values(&records);
    v.remove(0);
    let mut big = Vec::new();
    leb(&mut big, 1 << 30);
    big.extend_from_slice(&v);
    assert_refused(&message(&table, &[0], &big));
    // One record more than there is.
    let mut v = values(&records);
    v[0] += 1;
    assert_refused(&message(&table, &[0], &v));
    // A text length past the end.
    let mut names = ["content_hash", "kind", "reference", "payload"];
    names.sort_by_key(|n| idl_hash(n));
    let mut v = Vec::new();
    leb(&mut v, 1);
    for name in names {
        match name {
            "content_hash" => {
                v.push(32);
                v.extend_from_slice(&[0; 32]);
            }
            "payload" => v.push(0),
            _ => {
                leb(&mut v, 1 << 30);
                v.extend_from_slice(b"abc");
            }
        }
    }
    assert_refused(&message(&table, &[0], &v));
    // An over-long LEB128 (11 bytes) where the count should be.
    let mut v = vec![0x80; 10];
    v.push(0);
    assert_refused(&message(&table, &[0], &v));
}

#[test]
fn should_refuse_bad_utf8_bad_opt_tags_and_hashes_not_32_bytes() {
    let table = table_with(4, [0, 1, 2, 3], |_| Vec::new());
    let good = input(7, Some(vec![1]));
    let base = values(std::slice::from_ref(&good));
    assert_eq!(
        decode_submit_arg(&message(&table, &[0], &base)).expect("decodes"),
        vec![good.clone()]
    );
    let find = |needle: &[u8]| {
        base.windows(needle.len())
            .rposition(|w| w == needle)
            .expect("present")
    };

    // "inference" with an invalid UTF-8 byte.
    let mut v = base.clone();
    let at = find(b"inference");
    v[at] = 0xff;
    assert_refused(&message(&table, &[0], &v));

    // Payload opt tag 2.
    let mut v = base.clone();
    let at = find(&[1, 1, 1]); // tag 1, length 1, byte 1: the last field
    v[at] = 2;
    assert_refused(&message(&table, &[0], &v));

    // A 31-byte and a 33-byte content hash.
    for (len, bytes) in [(31u8, 31usize), (33, 33)] {
        let r = RecordInput {
            content_hash: Hash32::ZERO,
            ..good.clone()
        };
        let v = values(std::slice::from_ref(&r));
        let at = v
            .windows(33)
            .position(|w| w[0] == 32 && w[1..].iter().all(|b| *b == 0))
            .expect("hash");
        let mut w = v[..at].to_vec();
        w.push(len);
        w.extend(std::iter::repeat_n(0u8, bytes));
        w.extend_from_slice(&v[at + 33..]);
        assert_refused(&message(&table, &[0], &w));
    }
}

#[test]
fn should_refuse_invalid_type_tables() {
    let v = values(&inputs());
    // The argument's type index out of range.
    assert_refused(&message(
        &table_with(4, [0, 1, 2, 3], |_| Vec::new()),
        &[7],
        &v,
    ));
    // Record fields not sorted by id.
    let mut table = table_with(5, [0, 1, 2, 3], |_| Vec::new());
    let mut unsorted = vec![0x6c, 2];
    let (a, b) = (idl_hash("a"), idl_hash("b"));
    for id in [a.max(b), a.min(b)] {
        leb(&mut unsorted, u64::from(id));
        unsorted.push(0x71);
    }
    table[4] = unsorted;
    assert_refused(&message(&table, &[0], &v));
    // An unknown primitive opcode in an unused entry.
    let mut table = table_with(5, [0, 1, 2, 3], |_| Vec::new());
    table[4] = vec![0x6d, 0x66]; // vec of opcode -26
    assert_refused(&message(&table, &[0], &v));
    // Not DIDL; no argument at all.
    let mut bad_magic = Encode!(&inputs()).expect("encode");
    bad_magic[0] = b'X';
    assert_refused(&bad_magic);
    assert_refused(&message(&[], &[], &[]));
    assert_refused(&[]);
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(20).collect()),
    ]
}

fn arb_record() -> impl Strategy<Value = RecordInput> {
    (
        any::<[u8; 32]>(),
        arb_text(),
        arb_text(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
    )
        .prop_map(|(hash, kind, reference, payload)| RecordInput {
            content_hash: Hash32(hash),
            kind,
            reference,
            payload: payload.map(Blob),
        })
}

fn arb_records() -> impl Strategy<Value = Vec<RecordInput>> {
    proptest::collection::vec(arb_record(), 0..24)
}

proptest! {
    #[test]
    fn prop_fast_and_candid_decoders_agree_on_random_records(records in arb_records()) {
        let bytes = Encode!(&records).expect("encode");
        prop_assert_eq!(decode_submit_arg_fast(&bytes), Some(records.clone()));
        prop_assert_eq!(generic(&bytes), Some(records));
    }

    #[test]
    fn prop_any_table_order_decodes_on_the_fast_path_as_candid_does(
        records in arb_records(),
        order in Just(vec![0usize, 1, 2, 3, 4, 5]).prop_shuffle(),
    ) {
        // Four entries of the type among six, in any order, two unused.
        let at = [order[0], order[1], order[2], order[3]];
        let table = table_with(6, at, |i| if i % 2 == 0 { opt(TEXT) } else { vec_of(i as i64 - 1) });
        let bytes = message(&table, &[at[0] as i64], &values(&records));
        prop_assert_eq!(decode_submit_arg_fast(&bytes), Some(records.clone()));
        prop_assert_eq!(generic(&bytes), Some(records));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// The safety property: whatever the bytes, the fast path gives a value only when candid
    /// gives the same one.
    #[test]
    fn prop_fast_path_accepts_only_what_candid_accepts_with_the_same_value(
        records in proptest::collection::vec(arb_record(), 0..4),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..4),
        reordered in any::<bool>(),
    ) {
        let mut bytes = if reordered {
            message(&table_with(4, [3, 1, 2, 0], |_| Vec::new()), &[3], &values(&records))
        } else {
            Encode!(&records).expect("encode")
        };
        for (at, byte, op) in edits {
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                2 => { bytes.remove(i); }
                _ => bytes.truncate(i),
            }
            if bytes.is_empty() {
                break;
            }
        }
        let generic = generic(&bytes);
        if let Some(fast) = decode_submit_arg_fast(&bytes) {
            prop_assert_eq!(Some(fast), generic.clone());
        }
        prop_assert_eq!(decode_submit_arg(&bytes).ok(), generic);
    }
}
