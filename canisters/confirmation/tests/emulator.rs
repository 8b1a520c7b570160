//! The real `confirmation` hub Wasm with four real `confirmation_node`s (one per scheme, on two
//! subnets) on the project's IC emulator. Every receipt is verified with stratros-verify against
//! the emulator's trust anchors.
//!
//! Needs `out/confirmation.wasm` and `out/confirmation_node.wasm`:
//! `bash scripts/build.sh confirmation confirmation_node`.

mod common;

use std::time::Duration;

use candid::{Encode, Principal};
use common::*;
use confirmation::{
    AdminError, Arg, BatchError, ConfigUpdate, ReceiptError, SubmitError, UpgradeArgs,
};
use stratros_confirmation::{Blob, Hash32, Receipt, Scheme, header_hash};
use stratros_verify::{TrustAnchors, verify_receipt};

const MAX_CERT_AGE: u64 = 300_000_000_000;

fn verify(suite: &Suite, anchors: &TrustAnchors, receipt: &Receipt) {
    let verified = verify_receipt(receipt, anchors, suite.now(), MAX_CERT_AGE)
        .unwrap_or_else(|e| panic!("receipt {} does not verify: {e}", receipt.record.id));
    assert_eq!(verified.hub, suite.hub);
}

/// Every byte position class a tamperer could touch: each must fail verification.
fn assert_tampering_fails(suite: &Suite, anchors: &TrustAnchors, receipt: &Receipt) {
    let now = suite.now();
    let mut cases: Vec<(&str, Receipt)> = Vec::new();
    let mut r = receipt.clone();
    r.record.content_hash.0[0] ^= 1;
    cases.push(("content hash", r));
    let mut r = receipt.clone();
    r.record.reference.push('x');
    cases.push(("reference", r));
    let mut r = receipt.clone();
    r.leaf_hash.0[5] ^= 0x80;
    cases.push(("leaf hash", r));
    if !receipt.proof.is_empty() {
        let mut r = receipt.clone();
        r.proof[0].0[31] ^= 1;
        cases.push(("proof", r));
    }
    let mut r = receipt.clone();
    r.header.merkle_root.0[3] ^= 4;
    cases.push(("root", r));
    let mut r = receipt.clone();
    r.header.end_time_nanos += 1;
    cases.push(("header", r));
    let mut r = receipt.clone();
    r.confirmations[0].signature.0[10] ^= 1;
    cases.push(("signature", r));
    let mut r = receipt.clone();
    let last = r.certificate.0.len() - 1;
    r.certificate.0[last] ^= 1;
    cases.push(("certificate", r));
    let mut r = receipt.clone();
    let mid = r.witness.0.len() / 2;
    r.witness.0[mid] ^= 1;
    cases.push(("witness", r));
    let mut r = receipt.clone();
    r.confirmations.truncate(1);
    cases.push(("quorum", r));
    for (what, r) in cases {
        assert!(
            verify_receipt(&r, anchors, now, MAX_CERT_AGE).is_err(),
            "a changed {what} must fail verification"
        );
    }
}

#[test]
fn should_confirm_records_of_several_submitters_and_verify_every_receipt() {
    let config = ConfigUpdate {
        max_batch_records: Some(50),
        max_batch_age_seconds: Some(10),
        ..Default::default()
    };
    let mut suite = Suite::new(
        "dfx_test_key",
        config,
        vec![submitter(1), submitter(2), submitter(3)],
    );
    let anchors = anchors(&suite.emu);

    // Submitter 1: 100 records in one call: two batches sealed by size.
    let inputs: Vec<_> = (0..100).map(|i| record(i, format!("one-{i}"))).collect();
    let ids: Vec<u64> = suite
        .submit(submitter(1), &inputs)
        .expect("accepted")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, (0..100).collect::<Vec<_>>(), "ids at once, in order");
    suite.emu.run_until_idle();
    let page = suite.batches(0, 10);
    assert_eq!(page.total, 2, "sealed by size");
    assert!(page.batches.iter().all(|b| b.header.leaf_count == 50));

    // Submitters 2 and 3: a few records each, sealed by age.
    let two: Vec<_> = (100..107).map(|i| record(i, String::new())).collect();
    suite.submit(submitter(2), &two).expect("accepted");
    let three: Vec<_> = (0..3)
        .map(|i| record(200 + i, format!("three-{i}")))
        .collect();
    let first = suite.submit(submitter(3), &three).expect("accepted");
    let again = suite.submit(submitter(3), &three).expect("accepted");
    assert_eq!(
        again.iter().map(|s| s.id).collect::<Vec<_>>(),
        first.iter().map(|s| s.id).collect::<Vec<_>>(),
        "the same references give the same ids"
    );
    assert!(again.iter().all(|s| s.duplicate));
    suite.emu.run_until_idle();
    assert_eq!(suite.status().pending_records, 10, "not old enough yet");
    assert!(suite.run_until(Duration::from_secs(1), 20, |s| s.status().batches == 3));
    let status = suite.status();
    assert_eq!(
        (
            status.pending_records,
            status.next_record_id,
            status.open_batches
        ),
        (0, 110, 0)
    );

    // Headers chain; every batch is confirmed by all four nodes.
    let page = suite.batches(0, 10);
    let mut prev = Hash32::ZERO;
    for b in &page.batches {
        assert_eq!(b.header.prev_header_hash, prev);
        prev = header_hash(&b.header);
        assert!(b.confirmed_at_nanos.is_some());
        assert_eq!(b.confirmations().len(), 4);
    }
    assert_eq!(page.batches[2].header.leaf_count, 10);

    // Every receipt verifies offline; tampering fails.
    for id in 0..110 {
        let receipt = suite.receipt(id).expect("receipt");
        verify(&suite, &anchors, &receipt);
        let json = receipt.to_json();
        assert_eq!(Receipt::from_json(&json).expect("JSON round trip"), receipt);
        if id % 37 == 0 {
            assert_tampering_fails(&suite, &anchors, &receipt);
        }
    }

    // Typed errors.
    assert_eq!(
        suite.submit(stranger(), &inputs[..1]),
        Err(SubmitError::Unauthorized { caller: stranger() })
    );
    assert_eq!(
        suite.submit(submitter(1), &[]),
        Err(SubmitError::EmptySubmission)
    );
    let mut big = record(1, String::new());
    big.payload = Some(Blob(vec![7; 1025]));
    assert_eq!(
        suite.submit(submitter(1), &[big]),
        Err(SubmitError::RecordTooLarge {
            index: 0,
            field: "payload".into(),
            max: 1024,
            got: 1025
        })
    );
    assert_eq!(
        suite.receipt(5_000),
        Err(ReceiptError::UnknownRecord {
            id: 5_000,
            next_id: 110
        })
    );
    assert_eq!(
        suite.batch(9),
        Err(BatchError::UnknownHeight {
            height: 9,
            next_height: 3
        })
    );
    let refused: Result<(), AdminError> = suite.update(
        stranger(),
        "add_submitter",
        Encode!(&stranger()).expect("encode"),
    );
    assert_eq!(
        refused,
        Err(AdminError::NotController { caller: stranger() })
    );
    // A receipt needs the certificate, which only a non-replicated query gets.
    let replicated: Result<Receipt, ReceiptError> =
        suite.update(stranger(), "get_receipt", Encode!(&0u64).expect("encode"));
    assert_eq!(replicated, Err(ReceiptError::CertificateUnavailable));
}

#[test]
fn should_confirm_later_after_node_failures_and_a_hub_upgrade_mid_round() {
    let config = ConfigUpdate {
        max_batch_records: Some(1_000),
        max_batch_age_seconds: Some(5),
        call_timeout_seconds: Some(30),
        retry_base_seconds: Some(5),
        retry_max_seconds: Some(60),
        ..Default::default()
    };
    let mut suite = Suite::new("key_1", config, vec![submitter(1)]);
    let anchors = anchors(&suite.emu);
    let ecdsa = suite.node(Scheme::EcdsaSecp256k1);
    let bip340 = suite.node(Scheme::SchnorrBip340);
    let ed25519 = suite.node(Scheme::SchnorrEd25519);
    let bls = suite.node(Scheme::Bls12_381);

    // ECDSA cannot pay for a key_1 signature; BIP340 does not answer (its calls time out);
    // Ed25519 is stopped (calls rejected); the BLS node has no code (calls fail as a trap).
    suite.emu.set_cycle_balance(ecdsa, 50_000_000_000);
    suite.emu.hold_messages(bip340);
    suite.emu.stop_canister(ed25519, None).expect("stops");
    suite
        .emu
        .uninstall_code(controller(), bls)
        .expect("uninstalls");

    let inputs: Vec<_> = (0..5).map(|i| record(i, format!("r{i}"))).collect();
    suite.submit(submitter(1), &inputs).expect("accepted");
    suite.emu.advance_time(Duration::from_secs(6));
    suite.emu.run_until_idle();
    let b = suite.batch(0).expect("sealed by age");
    assert!(b.confirmed_at_nanos.is_none());
    assert!(b.confirmations().is_empty());
    let errors: Vec<_> = b.nodes.iter().map(|n| n.last_error.clone()).collect();
    assert!(
        errors[0]
            .as_deref()
            .is_some_and(|e| e.contains("InsufficientCycles")),
        "{errors:?}"
    );
    assert!(errors[2].is_some() && errors[3].is_some(), "{errors:?}");
    assert!(errors[1].is_none(), "the BIP340 call is still in flight");
    assert!(matches!(
        suite.receipt(0),
        Err(ReceiptError::NotConfirmed { height: 0, .. })
    ));

    // The hub is upgraded while the BIP340 call is outstanding, with new records pending.
    let more: Vec<_> = (5..8).map(|i| record(i, format!("r{i}"))).collect();
    suite.submit(submitter(1), &more).expect("accepted");
    let before = suite.batches(0, 10);
    let certified = suite.emu.certified_data(suite.hub);
    suite.upgrade_hub(Arg::Upgrade(Some(UpgradeArgs::default())));
    assert_eq!(suite.batches(0, 10), before, "nothing lost");
    assert_eq!(suite.emu.certified_data(suite.hub), certified);
    assert_eq!(suite.status().pending_records, 3);

    // The nodes recover.
    suite.emu.set_cycle_balance(ecdsa, 100_000_000_000_000);
    suite.emu.release_messages(bip340);
    suite.emu.start_canister(ed25519, None).expect("starts");
    let arg = NodeArg::Init(NodeInit {
        scheme: Scheme::Bls12_381,
        key_name: "key_1".into(),
        hub: suite.hub,
    });
    let node_wasm = suite.node_wasm.clone();
    suite
        .emu
        .install_canister(bls, &node_wasm, Encode!(&arg).expect("encode"), None)
        .expect("reinstalls");

    // Retries (with backoff) confirm both batches, every node signs.
    let done = suite.run_until(Duration::from_secs(5), 100, |s| {
        let page = s.batches(0, 10);
        page.total == 2
            && page
                .batches
                .iter()
                .all(|b| b.confirmed_at_nanos.is_some() && b.confirmations().len() == 4)
    });
    assert!(done, "{:#?}", suite.batches(0, 10));
    let page = suite.batches(0, 10);
    // The three failing nodes were retried; the BIP340 call that was outstanding during the
    // upgrade was simply asked again by the upgraded hub (a node returns its stored signature
    // for a header it already signed).
    for n in [0, 2, 3] {
        assert!(
            page.batches[0].nodes[n].attempts >= 1,
            "{:?}",
            page.batches[0].nodes[n]
        );
    }
    assert_eq!(
        page.batches[1].header.prev_header_hash,
        header_hash(&page.batches[0].header)
    );
    for id in 0..8 {
        let receipt = suite.receipt(id).expect("receipt");
        verify(&suite, &anchors, &receipt);
    }
    // Resubmitting after all that still returns the original ids.
    let again = suite.submit(submitter(1), &inputs).expect("accepted");
    assert!(
        again
            .iter()
            .enumerate()
            .all(|(i, s)| s.duplicate && s.id == i as u64)
    );
    assert_eq!(suite.status().open_batches, 0);
}

#[test]
fn should_refuse_install_with_bad_arguments() {
    let hub_wasm = wasm("confirmation");
    let mut emu = ic_emulator::Emulator::new();
    let hub = emu.create_canister();
    assert!(
        emu.install_canister(
            hub,
            &hub_wasm,
            Encode!(&Arg::Upgrade(None)).expect("e"),
            None
        )
        .is_err()
    );
    let bad = Arg::Init(confirmation::InitArgs {
        config: Some(ConfigUpdate {
            max_batch_records: Some(1_000_000_000),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert!(
        emu.install_canister(hub, &hub_wasm, Encode!(&bad).expect("e"), None)
            .is_err()
    );
    let good = Arg::Init(confirmation::InitArgs::default());
    emu.install_canister(hub, &hub_wasm, Encode!(&good).expect("e"), None)
        .expect("installs");
    assert!(
        emu.upgrade_canister(hub, &hub_wasm, Encode!(&good).expect("e"), None)
            .is_err()
    );
    let _ = Principal::anonymous();
}
