mod common;

use candid::{Decode, Encode};
use common::*;
use proptest::prelude::*;
use stratros_confirmation::*;
use stratros_verify::*;

fn verify(r: &Receipt, net: &Network) -> Result<VerifiedReceipt, VerifyError> {
    verify_receipt(r, &net.anchors(), NOW, FIVE_MINUTES)
}

#[test]
fn should_verify_every_receipt_of_a_batch_confirmed_by_all_four_schemes() {
    let net = Network::new();
    let batch = seal(&net, 7, QuorumPolicy::one_of_each_scheme(policy_nodes()));
    for i in 0..7 {
        let v = verify(&batch.receipt(i), &net).unwrap();
        assert_eq!(v.record_id, i as u64 + 1);
        assert_eq!(v.height, 1);
        assert_eq!(v.confirmed_by.len(), 4);
    }
}

#[test]
fn should_verify_receipts_through_their_json_form() {
    let net = Network::new();
    let batch = seal(&net, 3, QuorumPolicy::one_of_each_scheme(policy_nodes()));
    let json = batch.receipt(2).to_json();
    let parsed = Receipt::from_json(&json).unwrap();
    verify(&parsed, &net).unwrap();
    let anchors = TrustAnchors::from_json(&net.anchors().to_json()).unwrap();
    verify_receipt(&parsed, &anchors, NOW, FIVE_MINUTES).unwrap();
}

#[test]
fn should_fail_for_every_changed_hex_digit_or_number_of_a_json_receipt() {
    let net = Network::new();
    let batch = seal(&net, 2, QuorumPolicy::one_of_each_scheme(policy_nodes()));
    let json = batch.receipt(1).to_json();
    let bytes = json.as_bytes();
    let mut changed = 0;
    for i in 0..bytes.len() {
        let c = bytes[i];
        let replacement = match c {
            b'0'..=b'8' | b'a'..=b'e' => c + 1,
            b'9' => b'0',
            b'f' => b'a',
            _ => continue,
        };
        let mut m = bytes.to_vec();
        m[i] = replacement;
        let text = String::from_utf8(m).unwrap();
        if let Ok(r) = Receipt::from_json(&text) {
            changed += 1;
            assert!(
                verify(&r, &net).is_err(),
                "changing byte {i} ({:?}) still verifies",
                &json[i.saturating_sub(20)..(i + 5).min(json.len())]
            );
        }
    }
    assert!(changed > 1000, "only {changed} changes parsed");
}

#[test]
fn should_fail_for_every_single_bit_flip_of_a_candid_receipt() {
    let net = Network::new();
    let batch = seal(&net, 3, QuorumPolicy::k_of_n(2, policy_nodes()));
    let original = batch.receipt(0);
    let bytes = Encode!(&original).unwrap();
    for i in 0..bytes.len() {
        let mut m = bytes.clone();
        m[i] ^= 0x01;
        // A flip in Candid's type table can decode to the very same receipt (e.g. the type of
        // an absent `opt` field): that is not a changed receipt. Every other change must fail.
        if let Ok(r) = Decode!(&m, Receipt) {
            assert!(
                r == original || verify(&r, &net).is_err(),
                "flipping byte {i} still verifies"
            );
        }
    }
}

#[test]
fn should_name_the_confirmation_whose_key_is_not_derived_for_its_node() {
    let net = Network::new();
    let batch = seal(&net, 2, QuorumPolicy::one_of_each_scheme(policy_nodes()));
    let mut r = batch.receipt(0);
    // A key and signature from another node of the same scheme: valid signature, wrong key.
    let other = principal(999);
    let digest = signing_digest(
        Scheme::SchnorrEd25519,
        &r.confirmations[2].node,
        &r.header.hub,
        1,
        &header_hash(&r.header),
    );
    let (pk, sig) = net.sign(Scheme::SchnorrEd25519, &other, &digest);
    r.confirmations[2].public_key = Blob(pk);
    r.confirmations[2].signature = Blob(sig);
    match verify(&r, &net) {
        Err(VerifyError::Confirmation {
            index: 2,
            scheme: Scheme::SchnorrEd25519,
            failure: ConfirmationFailure::PublicKeyNotDerived { .. },
            ..
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn should_reject_a_signature_over_another_header_for_each_scheme() {
    let net = Network::new();
    let batch = seal(&net, 2, QuorumPolicy::one_of_each_scheme(policy_nodes()));
    let mut other = batch.header.clone();
    other.end_time_nanos += 1;
    for (i, node) in policy_nodes().iter().enumerate() {
        let mut r = batch.receipt(0);
        r.confirmations[i] = net.confirm(node, &other);
        match verify(&r, &net) {
            Err(VerifyError::Confirmation {
                index,
                failure: ConfirmationFailure::InvalidSignature,
                ..
            }) => assert_eq!(index, i),
            res => panic!("{:?}: unexpected {res:?}", node.scheme),
        }
    }
}

#[test]
fn should_apply_the_quorum_policy() {
    let net = Network::new();
    let batch = seal(&net, 2, QuorumPolicy::one_of_each_scheme(policy_nodes()));
    let mut r = batch.receipt(0);
    r.confirmations.remove(3);
    assert_eq!(
        verify(&r, &net),
        Err(VerifyError::QuorumNotReached { confirmed: 3 })
    );

    let batch = seal(&net, 2, QuorumPolicy::k_of_n(3, policy_nodes()));
    let mut r = batch.receipt(1);
    r.confirmations.remove(0);
    verify(&r, &net).unwrap();
    r.confirmations.remove(0);
    assert_eq!(
        verify(&r, &net),
        Err(VerifyError::QuorumNotReached { confirmed: 2 })
    );
    let mut dup = batch.receipt(1);
    dup.confirmations[1] = dup.confirmations[0].clone();
    assert!(matches!(
        verify(&dup, &net),
        Err(VerifyError::Confirmation {
            index: 1,
            failure: ConfirmationFailure::DuplicateNode,
            ..
        })
    ));
}

#[test]
fn should_reject_a_receipt_whose_policy_was_swapped() {
    let net = Network::new();
    let batch = seal(&net, 2, QuorumPolicy::one_of_each_scheme(policy_nodes()));
    let mut r = batch.receipt(0);
    r.quorum_policy = QuorumPolicy::k_of_n(1, policy_nodes());
    r.confirmations.truncate(1);
    assert!(matches!(
        verify(&r, &net),
        Err(VerifyError::PolicyHashMismatch { .. })
    ));
}

#[test]
fn should_check_the_certificate_freshness_root_key_and_witness() {
    let net = Network::new();
    let batch = seal(&net, 2, QuorumPolicy::one_of_each_scheme(policy_nodes()));
    let r = batch.receipt(0);
    let anchors = net.anchors();
    assert!(matches!(
        verify_receipt(&r, &anchors, NOW + 2 * FIVE_MINUTES, FIVE_MINUTES),
        Err(VerifyError::CertificateInvalid(_))
    ));
    verify_receipt(&r, &anchors, NOW + 2 * FIVE_MINUTES, 3 * FIVE_MINUTES).unwrap();

    let mut wrong_root = anchors.clone();
    wrong_root.root_key = TrustAnchors::mainnet().root_key;
    assert!(matches!(
        verify_receipt(&r, &wrong_root, NOW, FIVE_MINUTES),
        Err(VerifyError::CertificateInvalid(_))
    ));

    // A certificate for other certified data.
    let mut other_cert = r.clone();
    other_cert.certificate = Blob(net.certificate(&hub(), &[0; 32], NOW));
    assert!(matches!(
        verify(&other_cert, &net),
        Err(VerifyError::CertifiedDataMismatch { .. })
    ));

    // A certificate for another canister.
    let mut other_hub = r.clone();
    other_hub.certificate =
        Blob(net.certificate(&principal(5), &witness(&batch.chain, 1).digest(), NOW));
    assert!(matches!(
        verify(&other_hub, &net),
        Err(VerifyError::CertifiedDataMissing(_))
    ));

    // A witness for the genesis header only.
    let tree0 = witness(&batch.chain, 0);
    let mut wrong_witness = r.clone();
    wrong_witness.witness = Blob(cbor(&tree0));
    wrong_witness.certificate = Blob(net.certificate(&hub(), &tree0.digest(), NOW));
    assert!(matches!(
        verify(&wrong_witness, &net),
        Err(VerifyError::HeaderNotInWitness { height: 1 })
    ));
}

#[test]
fn should_reject_records_outside_the_batch_and_bad_leaf_hashes() {
    let net = Network::new();
    let batch = seal(&net, 4, QuorumPolicy::one_of_each_scheme(policy_nodes()));
    let mut r = batch.receipt(1);
    r.record.reference.push('x');
    assert!(matches!(
        verify(&r, &net),
        Err(VerifyError::LeafHashMismatch { .. })
    ));
    r.leaf_hash = leaf_hash(&r.record);
    assert_eq!(verify(&r, &net), Err(VerifyError::MerkleProofInvalid));
    let mut out = batch.receipt(1);
    out.leaf_index = 4;
    assert!(matches!(
        verify(&out, &net),
        Err(VerifyError::LeafIndexOutOfRange { .. })
    ));
}

#[test]
fn should_verify_equivocation_and_reject_honest_or_forged_evidence() {
    let net = Network::new();
    let batch = seal(&net, 2, QuorumPolicy::one_of_each_scheme(policy_nodes()));
    let mut second = batch.header.clone();
    second.merkle_root = Hash32([0x42; 32]);
    for node in policy_nodes() {
        let a = net.confirm(&node, &batch.header);
        let b = net.confirm(&node, &second);
        let evidence = EquivocationEvidence {
            node: node.node,
            scheme: node.scheme,
            key_name: node.key_name.clone(),
            first: SignedHeader {
                header: batch.header.clone(),
                signature: a.signature.clone(),
            },
            second: SignedHeader {
                header: second.clone(),
                signature: b.signature.clone(),
            },
        };
        let pk = net
            .anchors()
            .derive_node_key(node.scheme, KEY_NAME, &node.node)
            .unwrap();
        verify_equivocation(&evidence, &pk, node.scheme).unwrap();

        let mut same = evidence.clone();
        same.second = same.first.clone();
        assert_eq!(
            verify_equivocation(&same, &pk, node.scheme),
            Err(VerifyError::Evidence(EvidenceError::SameHeader))
        );

        let mut forged = evidence.clone();
        forged.second.signature = a.signature.clone();
        assert_eq!(
            verify_equivocation(&forged, &pk, node.scheme),
            Err(VerifyError::EvidenceSignatureInvalid { which: "second" })
        );
        let other_pk = net
            .anchors()
            .derive_node_key(node.scheme, KEY_NAME, &principal(1))
            .unwrap();
        assert_eq!(
            verify_equivocation(&evidence, &other_pk, node.scheme),
            Err(VerifyError::EvidenceSignatureInvalid { which: "first" })
        );
    }
}

#[test]
fn should_derive_mainnet_keys_as_the_ic_crates_do() {
    let anchors = TrustAnchors::mainnet();
    assert_eq!(anchors.master_keys.len(), 8);
    let canister = candid::Principal::from_text("ryjl3-tyaaa-aaaaa-aaaba-cai").unwrap();
    let (ecdsa, _) = ic_secp256k1::PublicKey::derive_mainnet_key(
        ic_secp256k1::MasterPublicKeyId::EcdsaKey1,
        &canister,
        &[],
    );
    assert_eq!(
        anchors
            .derive_node_key(Scheme::EcdsaSecp256k1, "key_1", &canister)
            .unwrap(),
        ecdsa.serialize_sec1(true)
    );
    let (ed, _) = ic_ed25519::PublicKey::derive_mainnet_key(
        ic_ed25519::MasterPublicKeyId::TestKey1,
        &canister,
        &[],
    );
    assert_eq!(
        anchors
            .derive_node_key(Scheme::SchnorrEd25519, "test_key_1", &canister)
            .unwrap(),
        ed.serialize_raw().to_vec()
    );
    assert_eq!(
        anchors
            .derive_node_key(Scheme::Bls12_381, "key_1", &canister)
            .unwrap()
            .len(),
        96
    );
    assert!(
        anchors
            .derive_node_key(Scheme::Bls12_381, "dfx_test_key", &canister)
            .is_err()
    );
    let json = anchors.to_json();
    assert!(json.contains("\"schnorr_bip340\""));
    assert_eq!(TrustAnchors::from_json(&json).unwrap(), anchors);
}

#[test]
fn should_load_trust_anchors_in_the_documented_json_form() {
    let json = r#"{ "root_key": "00ff", "master_keys": [
        { "scheme": "vetkd_bls12_381", "key_name": "dfx_test_key", "public_key": "ab" },
        { "scheme": "ecdsa_secp256k1", "key_name": "key_1", "public_key": "02", "chain_code": "00" } ] }"#;
    let a = TrustAnchors::from_json(json).unwrap();
    assert_eq!(a.root_key.as_slice(), &[0x00, 0xff]);
    assert_eq!(a.master_keys[0].scheme, Scheme::Bls12_381);
    assert_eq!(
        a.master_keys[1].chain_code.as_ref().unwrap().as_slice(),
        &[0]
    );
    assert!(matches!(
        TrustAnchors::from_json("{}"),
        Err(VerifyError::TrustAnchors(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn prop_any_change_to_the_header_fails(field in 0usize..10, delta in 1u64..1000) {
        let net = Network::new();
        let batch = seal(&net, 3, QuorumPolicy::one_of_each_scheme(policy_nodes()));
        let mut r = batch.receipt(2);
        let h = &mut r.header;
        match field {
            0 => h.hub = principal(delta),
            1 => h.height = h.height.wrapping_add(delta),
            2 => h.prev_header_hash.0[(delta % 32) as usize] ^= 1,
            3 => h.merkle_root.0[(delta % 32) as usize] ^= 1,
            4 => h.leaf_count = h.leaf_count.wrapping_add(delta),
            5 => h.first_record_id = h.first_record_id.wrapping_add(delta),
            6 => h.last_record_id = h.last_record_id.wrapping_add(delta),
            7 => h.start_time_nanos = h.start_time_nanos.wrapping_add(delta),
            8 => h.end_time_nanos = h.end_time_nanos.wrapping_add(delta),
            _ => h.quorum_policy_hash.0[(delta % 32) as usize] ^= 1,
        }
        prop_assert!(verify(&r, &net).is_err());
    }

    #[test]
    fn prop_every_leaf_of_every_batch_size_verifies_up_to_the_merkle_check(n in 1u64..=300) {
        // Signatures and the certificate are covered above; here the record/proof/header path
        // of verify_receipt for every index.
        let leaves: Vec<Hash32> = (1..=n).map(|i| leaf_hash(&record(i))).collect();
        let levels = merkle::levels_from_leaves(&leaves);
        let root = levels.last().unwrap()[0];
        for i in 0..n {
            let proof = merkle::proof_from_levels(|l, j| levels[l as usize][j as usize], n, i);
            prop_assert!(merkle::verify_proof(&root, &leaves[i as usize], i, n, &proof));
            let mut r = record(i + 1);
            r.kind.push('!');
            prop_assert!(!merkle::verify_proof(&root, &leaf_hash(&r), i, n, &proof));
        }
    }
}

#[test]
fn should_accept_self_describing_certificates_and_reject_lenient_cbor() {
    let net = Network::new();
    let batch = seal(&net, 2, QuorumPolicy::one_of_each_scheme(policy_nodes()));
    let mut tagged = batch.receipt(0);
    tagged.certificate = Blob([[0xd9, 0xd9, 0xf7].as_slice(), &batch.certificate].concat());
    tagged.witness = Blob([[0xd9, 0xd9, 0xf7].as_slice(), &batch.witness].concat());
    verify(&tagged, &net).unwrap();

    // ic-cbor alone accepts a map that declares more entries than it has; we do not.
    let mut lenient = batch.receipt(0);
    assert_eq!(lenient.certificate.0[0], 0xa2);
    lenient.certificate.0[0] = 0xa3;
    assert!(matches!(
        verify(&lenient, &net),
        Err(VerifyError::CertificateMalformed(_))
    ));
    let mut trailing = batch.receipt(0);
    trailing.witness.0.push(0);
    assert!(matches!(
        verify(&trailing, &net),
        Err(VerifyError::WitnessMalformed(_))
    ));
}

#[test]
fn should_verify_certificates_delegated_to_the_hubs_subnet_only() {
    let net = Network::new();
    let batch = seal(&net, 2, QuorumPolicy::one_of_each_scheme(policy_nodes()));
    let cd = witness(&batch.chain, 1).digest();
    let lo = candid::Principal::from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0, 1, 1]);
    let hi = candid::Principal::from_slice(&[0, 0, 0, 0, 0, 0x10, 0xff, 0xff, 1, 1]);
    let mut r = batch.receipt(0);
    r.certificate = Blob(net.delegated_certificate(&hub(), &cd, NOW, (lo, hi)));
    verify(&r, &net).unwrap();

    // A subnet that is not authorized for the hub's id.
    let elsewhere = candid::Principal::from_slice(&[0, 0, 0, 0, 0, 0x20, 0, 0, 1, 1]);
    r.certificate = Blob(net.delegated_certificate(&hub(), &cd, NOW, (elsewhere, elsewhere)));
    assert!(matches!(
        verify(&r, &net),
        Err(VerifyError::CertificateInvalid(_))
    ));
}
