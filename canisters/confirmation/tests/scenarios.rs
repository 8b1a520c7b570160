//! The hub's main scenario on the real Wasm, written against `ic-testkit`: the emulator always,
//! PocketIC too when `POCKET_IC_BIN` is set. One hub and four nodes (one per scheme; ECDSA and
//! BIP340 on an application subnet, Ed25519 and vetKD BLS on the fiduciary subnet), records
//! from three submitters sealed by size and by age, every receipt verified offline (against the
//! emulator's master keys, or PocketIC's), tampering refused, typed errors.
//!
//! Needs `out/confirmation.wasm` and `out/confirmation_node.wasm`:
//! `bash scripts/build.sh confirmation confirmation_node`.

mod common;

use std::time::Duration;

use candid::{CandidType, Encode, Principal};
use common::*;
use confirmation::{
    AdminError, Arg, Batch, BatchError, BatchPage, ConfigUpdate, InitArgs, ListBatchesArgs,
    ReceiptError, Status, SubmitError, Submitted,
};
use ic_testkit::{
    CanisterSpec, IcBackend, IcBackendExt, InstallMode, SubnetKind, backends_for_test,
};
use stratros_confirmation::{Blob, Hash32, PolicyNode, Receipt, RecordInput, Scheme, header_hash};
use stratros_verify::TrustAnchors;

/// The hub and its nodes on a backend.
struct Net {
    ic: Box<dyn IcBackend>,
    hub: Principal,
}

impl Net {
    fn new(
        ic: Box<dyn IcBackend>,
        key_name: &str,
        config: ConfigUpdate,
        submitters: Vec<Principal>,
    ) -> Net {
        let hub_wasm = wasm("confirmation");
        let node_wasm = wasm("confirmation_node");
        let app = CanisterSpec::on(SubnetKind::Application);
        let fiduciary = CanisterSpec::on(SubnetKind::Fiduciary);
        let hub = ic.create_canister(&app).expect("hub created");
        let mut nodes = Vec::new();
        for (i, scheme) in Scheme::ALL.into_iter().enumerate() {
            let spec = if i < 2 { &app } else { &fiduciary };
            let arg = NodeArg::Init(NodeInit {
                scheme,
                key_name: key_name.into(),
                hub,
            });
            let node = ic
                .deploy(spec, node_wasm.clone(), arg)
                .unwrap_or_else(|e| panic!("install {scheme} on {}: {e}", ic.name()));
            nodes.push(PolicyNode {
                node,
                scheme,
                key_name: key_name.into(),
            });
        }
        ic.run_until_idle();
        let arg = Arg::Init(InitArgs {
            submitters,
            nodes,
            config: Some(config),
            ..Default::default()
        });
        ic.install(
            hub,
            InstallMode::Install,
            hub_wasm,
            Encode!(&arg).expect("encode"),
            None,
        )
        .expect("hub installs");
        Net { ic, hub }
    }

    /// The network's trust anchors: the emulator's master keys, or PocketIC's.
    fn anchors(&self) -> TrustAnchors {
        match self.ic.as_emulator() {
            Some(emu) => anchors(&emu.borrow()),
            None => TrustAnchors::pocketic(self.ic.root_key()),
        }
    }

    fn update<T: CandidType + for<'de> serde::Deserialize<'de>>(
        &mut self,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> T {
        let bytes = self
            .ic
            .update_call(self.hub, Some(sender), method, arg)
            .unwrap_or_else(|e| panic!("{method} was rejected on {}: {e}", self.ic.name()));
        candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: bad reply: {e}"))
    }

    fn query<T: CandidType + for<'de> serde::Deserialize<'de>>(
        &mut self,
        method: &str,
        arg: Vec<u8>,
    ) -> T {
        let bytes = self
            .ic
            .query_call(self.hub, Some(stranger()), method, arg)
            .unwrap_or_else(|e| panic!("{method} was rejected on {}: {e}", self.ic.name()));
        candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: bad reply: {e}"))
    }

    fn submit(
        &mut self,
        sender: Principal,
        records: &[RecordInput],
    ) -> Result<Vec<Submitted>, SubmitError> {
        self.update(sender, "submit", Encode!(&records).expect("encode"))
    }

    fn receipt(&mut self, id: u64) -> Result<Receipt, ReceiptError> {
        self.query("get_receipt", Encode!(&id).expect("encode"))
    }

    fn batch(&mut self, height: u64) -> Result<Batch, BatchError> {
        self.query("get_batch", Encode!(&height).expect("encode"))
    }

    fn batches(&mut self, start: u64, limit: u64) -> BatchPage {
        self.query(
            "list_batches",
            Encode!(&ListBatchesArgs { start, limit }).expect("encode"),
        )
    }

    fn status(&mut self) -> Status {
        self.query("get_status", Encode!().expect("encode"))
    }

    /// Advances time in steps, settling every step, until `done` or `max_steps`.
    fn run_until(
        &mut self,
        step: Duration,
        max_steps: usize,
        mut done: impl FnMut(&mut Net) -> bool,
    ) -> bool {
        for _ in 0..max_steps {
            self.ic.run_until_idle();
            if done(self) {
                return true;
            }
            self.ic.advance_time(step);
        }
        self.ic.run_until_idle();
        done(self)
    }

    fn now(&self) -> u64 {
        self.ic.time()
    }
}

#[test]
fn should_confirm_records_of_several_submitters_and_verify_every_receipt() {
    for ic in
        backends_for_test("should_confirm_records_of_several_submitters_and_verify_every_receipt")
    {
        scenario_several_submitters(ic);
    }
}

fn scenario_several_submitters(ic: Box<dyn IcBackend>) {
    let config = ConfigUpdate {
        max_batch_records: Some(50),
        max_batch_age_seconds: Some(10),
        ..Default::default()
    };
    let mut suite = Net::new(
        ic,
        "dfx_test_key",
        config,
        vec![submitter(1), submitter(2), submitter(3)],
    );
    let anchors = suite.anchors();

    // Submitter 1: 100 records in one call: two batches sealed by size.
    let inputs: Vec<_> = (0..100).map(|i| record(i, format!("one-{i}"))).collect();
    let ids: Vec<u64> = suite
        .submit(submitter(1), &inputs)
        .expect("accepted")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, (0..100).collect::<Vec<_>>(), "ids at once, in order");
    suite.ic.run_until_idle();
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
    suite.ic.run_until_idle();
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
        check_receipt(suite.hub, suite.now(), &anchors, &receipt);
        let json = receipt.to_json();
        assert_eq!(Receipt::from_json(&json).expect("JSON round trip"), receipt);
        if id % 37 == 0 {
            assert_tampering_fails(suite.now(), &anchors, &receipt);
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
