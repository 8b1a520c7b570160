// Index loops read better here: each index is both a leaf position and a proof argument.
#![allow(clippy::needless_range_loop)]

use crate::encoding::*;
use crate::merkle::*;
use crate::*;
use candid::{Decode, Encode, Principal};
use proptest::prelude::*;
use rs_merkle::{Hasher, MerkleTree};

fn leaves(n: usize) -> Vec<Hash32> {
    (0..n)
        .map(|i| hash_leaf_bytes(&(i as u64).to_be_bytes()))
        .collect()
}

fn record(id: u64) -> Record {
    Record {
        id,
        submitter: Principal::from_slice(&[1, 2, 3]),
        content_hash: Hash32([7; 32]),
        kind: "inference".into(),
        reference: format!("ref-{id}"),
        payload: Some(Blob(vec![1, 2, 3])),
    }
}

fn header() -> BatchHeader {
    BatchHeader {
        hub: Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 1, 1]),
        height: 5,
        prev_header_hash: Hash32([1; 32]),
        merkle_root: Hash32([2; 32]),
        leaf_count: 3,
        first_record_id: 10,
        last_record_id: 12,
        start_time_nanos: 1,
        end_time_nanos: 2,
        quorum_policy_hash: Hash32([3; 32]),
    }
}

#[test]
fn should_match_rs_merkle_root_and_proofs_for_every_index_of_sizes_1_to_130() {
    for n in 1..=130usize {
        let ls = leaves(n);
        let raw: Vec<[u8; 32]> = ls.iter().map(|h| h.0).collect();
        let tree = MerkleTree::<StratrosHasher>::from_leaves(&raw);
        let levels = levels_from_leaves(&ls);
        let root = merkle_root(&ls).unwrap();
        assert_eq!(tree.root(), Some(root.0), "root differs for n = {n}");
        assert_eq!(levels.len() as u32, level_count(n as u64));
        for (l, level) in levels.iter().enumerate() {
            assert_eq!(level.len() as u64, level_len(n as u64, l as u32));
        }
        for i in 0..n {
            let proof =
                proof_from_levels(|l, j| levels[l as usize][j as usize], n as u64, i as u64);
            let rs_proof = tree.proof(&[i]);
            assert_eq!(
                rs_proof.proof_hashes().to_vec(),
                proof.iter().map(|h| h.0).collect::<Vec<_>>(),
                "proof differs for n = {n}, i = {i}"
            );
            assert!(verify_proof(&root, &ls[i], i as u64, n as u64, &proof));
            assert!(to_rs_merkle_proof(&proof).verify(root.0, &[i], &[ls[i].0], n));
        }
    }
}

#[test]
fn should_read_one_node_per_proof_entry() {
    let n = 1000u64;
    let ls = leaves(n as usize);
    let levels = levels_from_leaves(&ls);
    let reads = std::cell::Cell::new(0);
    let proof = proof_from_levels(
        |l, j| {
            reads.set(reads.get() + 1);
            levels[l as usize][j as usize]
        },
        n,
        999,
    );
    assert_eq!(reads.get(), proof.len());
    assert!(proof.len() <= 10);
}

#[test]
fn should_reject_proofs_with_extra_or_missing_hashes_and_out_of_range_indices() {
    let ls = leaves(5);
    let levels = levels_from_leaves(&ls);
    let root = merkle_root(&ls).unwrap();
    let proof = proof_from_levels(|l, j| levels[l as usize][j as usize], 5, 2);
    let mut longer = proof.clone();
    longer.push(Hash32([0; 32]));
    assert!(!verify_proof(&root, &ls[2], 2, 5, &longer));
    assert!(!verify_proof(
        &root,
        &ls[2],
        2,
        5,
        &proof[..proof.len() - 1]
    ));
    assert!(!verify_proof(&root, &ls[2], 5, 5, &proof));
    // The leaf count comes from the signed header; a different count changes the proof's shape.
    let last = proof_from_levels(|l, j| levels[l as usize][j as usize], 5, 4);
    assert!(verify_proof(&root, &ls[4], 4, 5, &last));
    assert!(!verify_proof(&root, &ls[4], 4, 6, &last));
}

#[test]
fn should_never_accept_an_inner_node_as_a_leaf() {
    let ls = leaves(4);
    let levels = levels_from_leaves(&ls);
    let root = merkle_root(&ls).unwrap();
    // The inner node over leaves 0 and 1, with the proof of that subtree, would be a valid
    // "leaf" of a 2-leaf tree; but a leaf hash is SHA-256(0x00 || bytes) and that node is
    // SHA-256(0x01 || l || r), so no record bytes hash to it.
    let inner = levels[1][0];
    let forged_leaf_bytes = [ls[0].0, ls[1].0].concat();
    assert_ne!(hash_leaf_bytes(&forged_leaf_bytes), inner);
    assert_eq!(
        StratrosHasher::hash(&forged_leaf_bytes),
        hash_leaf_bytes(&forged_leaf_bytes).0
    );
    assert!(verify_proof(&root, &inner, 0, 2, &[levels[1][1]]));
    assert!(!verify_proof(
        &root,
        &hash_leaf_bytes(&forged_leaf_bytes),
        0,
        2,
        &[levels[1][1]]
    ));
}

#[test]
fn should_encode_leaves_unambiguously() {
    let mut a = record(1);
    let mut b = record(1);
    a.kind = "ab".into();
    a.reference = "c".into();
    b.kind = "a".into();
    b.reference = "bc".into();
    assert_ne!(encode_leaf(&a), encode_leaf(&b));
    let mut c = record(1);
    c.payload = None;
    assert_ne!(leaf_hash(&c), leaf_hash(&record(1)));
    let mut d = record(1);
    d.payload = Some(Blob(vec![]));
    assert_ne!(leaf_hash(&c), leaf_hash(&d));
}

#[test]
fn should_pin_the_leaf_layout() {
    let r = Record {
        id: 0x0102,
        submitter: Principal::from_slice(&[0xaa]),
        content_hash: Hash32([0x11; 32]),
        kind: "k".into(),
        reference: "".into(),
        payload: None,
    };
    let mut expected = vec![0x01, 0, 0, 0, 0, 0, 0, 0x01, 0x02, 0x01, 0xaa];
    expected.extend_from_slice(&[0x11; 32]);
    expected.extend_from_slice(&[0, 0, 0, 1, b'k', 0, 0, 0, 0, 0x00]);
    assert_eq!(encode_leaf(&r), expected);
    let mut pre = vec![0x00];
    pre.extend_from_slice(&expected);
    assert_eq!(leaf_hash(&r), sha256(&pre));
}

#[test]
fn should_pin_the_header_hash_and_signing_digest_layouts() {
    let h = header();
    let enc = encode_header(&h);
    assert_eq!(enc.len(), 1 + 10 + 8 + 32 + 32 + 8 * 5 + 32);
    let mut pre = vec![18u8];
    pre.extend_from_slice(b"stratros-header-v1");
    pre.extend_from_slice(&enc);
    assert_eq!(header_hash(&h), sha256(&pre));

    let node = Principal::from_slice(&[9; 10]);
    let hh = header_hash(&h);
    let mut m = vec![24u8];
    m.extend_from_slice(b"stratros-confirmation-v1");
    m.push(4);
    m.push(10);
    m.extend_from_slice(&[9; 10]);
    m.push(10);
    m.extend_from_slice(h.hub.as_slice());
    m.extend_from_slice(&5u64.to_be_bytes());
    m.extend_from_slice(&hh.0);
    assert_eq!(
        header_signing_digest(Scheme::Bls12_381, &node, &h),
        sha256(&m)
    );
}

#[test]
fn should_bind_every_signing_digest_input() {
    let h = header();
    let node = Principal::from_slice(&[9; 10]);
    let base = header_signing_digest(Scheme::EcdsaSecp256k1, &node, &h);
    for s in &Scheme::ALL[1..] {
        assert_ne!(header_signing_digest(*s, &node, &h), base);
    }
    assert_ne!(
        header_signing_digest(Scheme::EcdsaSecp256k1, &Principal::from_slice(&[8; 10]), &h),
        base
    );
    let mut h2 = h.clone();
    h2.height += 1;
    assert_ne!(
        header_signing_digest(Scheme::EcdsaSecp256k1, &node, &h2),
        base
    );
    let mut h3 = h.clone();
    h3.end_time_nanos += 1;
    assert_ne!(
        header_signing_digest(Scheme::EcdsaSecp256k1, &node, &h3),
        base
    );
}

#[test]
fn should_chain_headers_from_a_zero_genesis() {
    let mut g = header();
    g.height = 0;
    g.prev_header_hash = chain_next(None);
    assert_eq!(g.prev_header_hash, Hash32::ZERO);
    let mut next = header();
    next.height = 1;
    next.prev_header_hash = chain_next(Some(&g));
    assert!(extends(&g, &next));
    let mut bad = next.clone();
    bad.prev_header_hash = Hash32([0xff; 32]);
    assert!(!extends(&g, &bad));
    let mut wrong_height = next.clone();
    wrong_height.height = 2;
    assert!(!extends(&g, &wrong_height));
}

fn policy_nodes() -> Vec<PolicyNode> {
    Scheme::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| PolicyNode {
            node: Principal::from_slice(&[i as u8 + 1]),
            scheme: *s,
            key_name: "key_1".into(),
        })
        .collect()
}

#[test]
fn should_require_one_node_of_each_scheme() {
    let p = QuorumPolicy::one_of_each_scheme(policy_nodes());
    p.validate().unwrap();
    let ids: Vec<Principal> = p.nodes.iter().map(|n| n.node).collect();
    assert!(p.is_satisfied(&ids));
    assert!(!p.is_satisfied(&ids[..3]));
    let outsider = Principal::from_slice(&[99]);
    let with_outsider = [ids[0], ids[1], ids[2], outsider];
    assert!(!p.is_satisfied(&with_outsider));
}

#[test]
fn should_count_distinct_listed_nodes_for_k_of_n() {
    let p = QuorumPolicy::k_of_n(3, policy_nodes());
    p.validate().unwrap();
    let ids: Vec<Principal> = p.nodes.iter().map(|n| n.node).collect();
    assert!(p.is_satisfied(&ids[..3]));
    assert!(!p.is_satisfied(&[ids[0], ids[0], ids[0]]));
    assert!(!p.is_satisfied(&[ids[0], ids[1], Principal::from_slice(&[99])]));
}

#[test]
fn should_reject_invalid_policies() {
    assert_eq!(
        QuorumPolicy::k_of_n(5, policy_nodes()).validate(),
        Err(PolicyError::InvalidThreshold { k: 5, n: 4 })
    );
    assert_eq!(
        QuorumPolicy::k_of_n(0, policy_nodes()).validate(),
        Err(PolicyError::InvalidThreshold { k: 0, n: 4 })
    );
    assert_eq!(
        QuorumPolicy::one_of_each_scheme(vec![]).validate(),
        Err(PolicyError::NoNodes)
    );
    let mut dup = policy_nodes();
    dup.push(dup[0].clone());
    assert!(matches!(
        QuorumPolicy::one_of_each_scheme(dup).validate(),
        Err(PolicyError::DuplicateNode(_))
    ));
    assert_ne!(
        quorum_policy_hash(&QuorumPolicy::k_of_n(2, policy_nodes())),
        quorum_policy_hash(&QuorumPolicy::k_of_n(3, policy_nodes()))
    );
}

#[test]
fn should_accept_only_two_different_headers_of_one_hub_and_height_as_equivocation() {
    let signed = |h: BatchHeader| SignedHeader {
        header: h,
        signature: Blob(vec![0; 64]),
    };
    let mut other = header();
    other.merkle_root = Hash32([9; 32]);
    let ev = |a: BatchHeader, b: BatchHeader| EquivocationEvidence {
        node: Principal::from_slice(&[1]),
        scheme: Scheme::SchnorrEd25519,
        key_name: "key_1".into(),
        first: signed(a),
        second: signed(b),
    };
    assert_eq!(
        check_equivocation_structure(&ev(header(), other.clone())),
        Ok(())
    );
    assert_eq!(
        check_equivocation_structure(&ev(header(), header())),
        Err(EvidenceError::SameHeader)
    );
    let mut higher = other.clone();
    higher.height += 1;
    assert!(matches!(
        check_equivocation_structure(&ev(header(), higher)),
        Err(EvidenceError::DifferentHeights { .. })
    ));
    let mut elsewhere = other;
    elsewhere.hub = Principal::from_slice(&[4]);
    assert!(matches!(
        check_equivocation_structure(&ev(header(), elsewhere)),
        Err(EvidenceError::DifferentHubs { .. })
    ));
}

fn receipt() -> Receipt {
    Receipt {
        record: record(3),
        leaf_index: 1,
        leaf_hash: leaf_hash(&record(3)),
        proof: vec![Hash32([5; 32]), Hash32([6; 32])],
        header: header(),
        confirmations: vec![Confirmation {
            node: Principal::from_slice(&[1]),
            scheme: Scheme::Bls12_381,
            key_name: "key_1".into(),
            public_key: Blob(vec![0xab; 96]),
            signature: Blob(vec![0xcd; 48]),
        }],
        quorum_policy: QuorumPolicy::one_of_each_scheme(policy_nodes()),
        certificate: Blob(vec![1, 2, 3]),
        witness: Blob(vec![4, 5]),
    }
}

#[test]
fn should_round_trip_receipts_through_json_with_hex_bytes() {
    let r = receipt();
    let json = r.to_json();
    assert!(json.contains(&"05".repeat(32)));
    assert!(json.contains("\"vetkd_bls12_381\""));
    assert!(json.contains("\"one_of_each_scheme\""));
    assert!(json.contains(&format!("\"{}\"", Principal::from_slice(&[1]))));
    assert_eq!(Receipt::from_json(&json).unwrap(), r);
}

#[test]
fn should_round_trip_receipts_through_candid_as_blobs() {
    let r = receipt();
    let bytes = Encode!(&r).unwrap();
    assert_eq!(Decode!(&bytes, Receipt).unwrap(), r);
    let h = Encode!(&Hash32([1; 32])).unwrap();
    // DIDL, one type (vec nat8 = 0x6d 0x7b), length 32 then the bytes: a blob.
    assert_eq!(&h[..7], &[b'D', b'I', b'D', b'L', 1, 0x6d, 0x7b]);
}

#[test]
fn should_reject_json_hashes_of_the_wrong_length() {
    let json = receipt()
        .to_json()
        .replace(&"05".repeat(32), &"05".repeat(31));
    assert!(Receipt::from_json(&json).is_err());
}

proptest! {
    #[test]
    fn prop_every_leaf_proof_verifies_and_any_tampering_fails(
        n in 1usize..=300,
        seed in any::<u64>(),
        flip_byte in 0usize..32,
        flip_bit in 0u8..8,
    ) {
        let ls: Vec<Hash32> = (0..n)
            .map(|i| hash_leaf_bytes(&[seed.to_be_bytes(), (i as u64).to_be_bytes()].concat()))
            .collect();
        let levels = levels_from_leaves(&ls);
        let root = merkle_root(&ls).unwrap();
        for i in 0..n {
            let proof = proof_from_levels(|l, j| levels[l as usize][j as usize], n as u64, i as u64);
            prop_assert!(verify_proof(&root, &ls[i], i as u64, n as u64, &proof));

            let mut leaf = ls[i];
            leaf.0[flip_byte] ^= 1 << flip_bit;
            prop_assert!(!verify_proof(&root, &leaf, i as u64, n as u64, &proof));

            let mut bad_root = root;
            bad_root.0[flip_byte] ^= 1 << flip_bit;
            prop_assert!(!verify_proof(&bad_root, &ls[i], i as u64, n as u64, &proof));

            for k in 0..proof.len() {
                let mut p = proof.clone();
                p[k].0[flip_byte] ^= 1 << flip_bit;
                prop_assert!(!verify_proof(&root, &ls[i], i as u64, n as u64, &p));
            }
            if n > 1 {
                let j = (i + 1) % n;
                prop_assert!(!verify_proof(&root, &ls[i], j as u64, n as u64, &proof));
            }
        }
    }
}

#[test]
fn should_name_schemes_identically_in_candid_and_json() {
    use candid::CandidType;
    let candid_type = Scheme::ty().to_string();
    for s in Scheme::ALL {
        assert!(candid_type.contains(s.name()), "{candid_type}");
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            format!("\"{}\"", s.name())
        );
    }
}

mod packed_form {
    use crate::{Blob, Hash32, RecordInput, decode_packed, encode_packed};

    #[test]
    fn should_round_trip_packed_records_and_refuse_malformed_ones() {
        let records = vec![
            RecordInput {
                content_hash: Hash32([1; 32]),
                kind: "inference".into(),
                reference: "r-1".into(),
                payload: Some(Blob(vec![1, 2, 3])),
            },
            RecordInput {
                content_hash: Hash32([2; 32]),
                kind: String::new(),
                reference: String::new(),
                payload: None,
            },
        ];
        let bytes = encode_packed(&records);
        assert_eq!(decode_packed(&bytes, 10), Ok(records.clone()));
        assert!(decode_packed(&bytes, 1).is_err(), "count over the limit");
        assert!(
            decode_packed(&bytes[..bytes.len() - 1], 10).is_err(),
            "truncated"
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_packed(&trailing, 10).is_err(), "trailing bytes");
        assert_eq!(decode_packed(&encode_packed(&[]), 10), Ok(vec![]));
    }
}
