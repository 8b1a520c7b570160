//! The real `confirmation` hub Wasm with four real `confirmation_node`s (one per scheme, on two
//! subnets), in what only the project's IC emulator can do: nodes out of cycles, held messages,
//! uninstalled code. Every receipt is verified with stratros-verify against the emulator's trust
//! anchors. The main scenario, on both backends, is in `scenarios.rs`.
//!
//! Needs `out/confirmation.wasm` and `out/confirmation_node.wasm`:
//! `bash scripts/build.sh confirmation confirmation_node`.

mod common;

use std::time::Duration;

use candid::{Encode, Principal};
use common::*;
use confirmation::{Arg, ConfigUpdate, ReceiptError, UpgradeArgs};
use stratros_confirmation::{Receipt, Scheme, header_hash};
use stratros_verify::TrustAnchors;

fn verify(suite: &Suite, anchors: &TrustAnchors, receipt: &Receipt) {
    check_receipt(suite.hub, suite.now(), anchors, receipt);
}

#[test]
fn should_confirm_later_after_node_failures_and_upgrades_of_the_hub_and_every_node_mid_round() {
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

    // Upgraded in place, while running, it refuses: the BIP340 node's answer would reach the
    // new module's heap through the old module's callback. Nothing changes.
    let upgrade = Encode!(&Arg::Upgrade(Some(UpgradeArgs::default()))).expect("encode");
    let hub_wasm = suite.hub_wasm.clone();
    let refused = suite
        .emu
        .install_code(
            controller(),
            suite.hub,
            &hub_wasm,
            upgrade,
            ic_emulator::InstallMode::Upgrade,
        )
        .expect_err("a running hub refuses the upgrade");
    assert!(
        refused.reject_message.contains("stop it first"),
        "{refused:?}"
    );
    assert_eq!(suite.batches(0, 10), before);

    // The production procedure: stopping waits for the BIP340 call, which times out (the
    // emulator jumps to its deadline, as time passes on the IC); upgrade; start.
    suite.upgrade_hub(Arg::Upgrade(Some(UpgradeArgs::default())));
    let after = suite.batches(0, 10);
    assert_eq!(after.total, before.total);
    for (a, b) in after.batches.iter().zip(&before.batches) {
        assert_eq!(a.header, b.header, "nothing lost");
        assert_eq!(a.confirmations(), b.confirmations());
        for n in [0, 2, 3] {
            assert_eq!(a.nodes[n], b.nodes[n]);
        }
    }
    let bip340_progress = &after.batches[0].nodes[1];
    assert_eq!(bip340_progress.attempts, 1, "{bip340_progress:?}");
    assert!(bip340_progress.last_error.is_some(), "{bip340_progress:?}");
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
    // Every node is upgraded in the middle of the round, the way `scripts/deploy.sh` does it
    // (stop, upgrade, start): the BIP340 node while it answers the request it was holding.
    let node_upgrade = Encode!(&NodeArg::Upgrade(None)).expect("encode");
    assert!(
        suite
            .batches(0, 10)
            .batches
            .iter()
            .all(|b| b.confirmed_at_nanos.is_none()),
        "the round is still open"
    );
    for node in [ecdsa, bip340, ed25519, bls] {
        suite
            .emu
            .upgrade_canister(node, &node_wasm, node_upgrade.clone(), None)
            .expect("a node upgrades mid-round");
    }

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

/// `submit` as other Candid encoders may send it: an extra field goes through the generic
/// decoder and gives the same records (here: the same ids, as duplicates of the same
/// references), the hub's limits apply as before, and a malformed argument is rejected with
/// nothing stored.
#[test]
fn should_accept_every_candid_form_of_submit_and_reject_malformed_ones() {
    #[derive(candid::CandidType)]
    struct WithNote {
        content_hash: stratros_confirmation::Hash32,
        kind: String,
        reference: String,
        payload: Option<stratros_confirmation::Blob>,
        note: String,
    }
    let config = ConfigUpdate {
        max_records_per_call: Some(10),
        max_kind_bytes: Some(16),
        ..Default::default()
    };
    let mut suite = Suite::new("key_1", config, vec![submitter(1)]);
    let records: Vec<_> = (0..5).map(|i| record(i, format!("ref-{i}"))).collect();
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
    let first: Result<Vec<confirmation::Submitted>, confirmation::SubmitError> =
        suite.update(submitter(1), "submit", Encode!(&wire).expect("encode"));
    let first = first.expect("accepted through the generic decoder");
    assert!(
        first
            .iter()
            .enumerate()
            .all(|(i, s)| !s.duplicate && s.id == i as u64)
    );
    let again = suite.submit(submitter(1), &records).expect("accepted");
    assert_eq!(
        again
            .iter()
            .map(|s| (s.id, s.duplicate))
            .collect::<Vec<_>>(),
        (0..5).map(|i| (i, true)).collect::<Vec<_>>()
    );

    // The hub's limits, through the fast path, as before.
    let many: Vec<_> = (10..21).map(|i| record(i, format!("ref-{i}"))).collect();
    assert_eq!(
        suite.submit(submitter(1), &many),
        Err(confirmation::SubmitError::TooManyRecords { max: 10, got: 11 })
    );
    let mut long = record(30, "ref-30".into());
    long.kind = "k".repeat(17);
    assert!(matches!(
        suite.submit(submitter(1), &[record(31, "ref-31".into()), long]),
        Err(confirmation::SubmitError::RecordTooLarge { index: 1, .. })
    ));
    assert!(matches!(
        suite.submit(stranger(), &records),
        Err(confirmation::SubmitError::Unauthorized { .. })
    ));

    // Malformed arguments: rejected, nothing stored.
    let good = Encode!(&vec![record(40, "ref-40".into())]).expect("encode");
    let mut trailing = good.clone();
    trailing.push(0);
    let mut bad_utf8 = good.clone();
    let at = good
        .windows(9)
        .position(|w| w == b"inference")
        .expect("kind");
    bad_utf8[at] = 0xff;
    for bad in [
        good[..good.len() - 1].to_vec(),
        trailing,
        bad_utf8,
        Vec::new(),
    ] {
        let reject = suite
            .emu
            .update_call(suite.hub, submitter(1), "submit", bad)
            .expect_err("rejected");
        assert!(
            reject.reject_message.contains("decode") || reject.reject_message.contains("Deserial"),
            "{}",
            reject.reject_message
        );
    }
    assert_eq!(suite.status().pending_records, 5);
}
