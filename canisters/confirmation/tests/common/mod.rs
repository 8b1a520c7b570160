//! Shared set-up of the hub's emulator scenarios: one hub and four nodes (one per scheme) on
//! two subnets, typed calls, trust anchors.
//!
//! Needs `out/confirmation.wasm` and `out/confirmation_node.wasm`:
//! `bash scripts/build.sh confirmation confirmation_node`.

#![allow(dead_code)]

use candid::{CandidType, Encode, Principal};
use confirmation::{
    AdminError, Arg, Batch, BatchError, BatchPage, ConfigUpdate, InitArgs, ListBatchesArgs,
    ReceiptError, Status, SubmitError, Submitted,
};
use ic_emulator::{Emulator, SubnetKind};
use stratros_confirmation::{Blob, Hash32, PolicyNode, Receipt, RecordInput, Scheme};
use stratros_verify::{MasterKey, TrustAnchors, verify_receipt};

pub fn wasm(name: &str) -> Vec<u8> {
    // STRATROS_WASM_DIR runs the scenarios on another build of the modules (as the testkit does).
    let dir = std::env::var_os("STRATROS_WASM_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out"));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nbuild it first, from the workspace root: \
             bash scripts/build.sh confirmation confirmation_node",
            path.display()
        )
    })
}

pub fn anchors(emu: &Emulator) -> TrustAnchors {
    let master_keys = emu
        .keys()
        .master_public_keys()
        .into_iter()
        .map(|info| MasterKey {
            scheme: *Scheme::ALL
                .iter()
                .find(|s| s.name() == info.scheme)
                .unwrap_or_else(|| panic!("unknown scheme {}", info.scheme)),
            key_name: info.key_name,
            public_key: Blob(hex::decode(info.public_key_hex).expect("hex")),
            chain_code: info
                .chain_code_hex
                .map(|c| Blob(hex::decode(c).expect("hex"))),
        })
        .collect();
    TrustAnchors {
        root_key: Blob(emu.root_key()),
        master_keys,
    }
}

/// The confirmation node's lifecycle argument (a mirror: linking the node's crate next to
/// the hub's would clash on the canister entry points).
#[derive(CandidType)]
pub enum NodeArg {
    Init(NodeInit),
    Upgrade(Option<NodeUpgrade>),
}

#[derive(CandidType)]
pub struct NodeInit {
    pub scheme: Scheme,
    pub key_name: String,
    pub hub: Principal,
}

#[derive(CandidType)]
pub struct NodeUpgrade {
    pub hub: Option<Principal>,
}

pub fn submitter(i: u8) -> Principal {
    Principal::self_authenticating([b's', i])
}

pub fn stranger() -> Principal {
    Principal::self_authenticating(b"stranger")
}

/// The harness (anonymous) controls every canister it creates.
pub fn controller() -> Principal {
    Principal::anonymous()
}

pub struct Suite {
    pub emu: Emulator,
    pub hub: Principal,
    /// One per scheme, in `Scheme::ALL` order: ECDSA and BIP340 on the application subnet,
    /// Ed25519 and BLS on the fiduciary subnet.
    pub nodes: Vec<(Principal, Scheme)>,
    pub hub_wasm: Vec<u8>,
    pub node_wasm: Vec<u8>,
    pub key_name: String,
}

impl Suite {
    pub fn new(key_name: &str, config: ConfigUpdate, submitters: Vec<Principal>) -> Suite {
        let hub_wasm = wasm("confirmation");
        let node_wasm = wasm("confirmation_node");
        let mut emu = Emulator::new();
        let app = emu.subnet_of_kind(SubnetKind::Application);
        let fid = emu.subnet_of_kind(SubnetKind::Fiduciary);
        let cycles = 1_000_000_000_000_000;
        let hub = emu
            .create_canister_on_subnet(app, vec![controller()], cycles)
            .expect("hub created");
        let mut nodes = Vec::new();
        for (i, scheme) in Scheme::ALL.into_iter().enumerate() {
            let subnet = if i < 2 { app } else { fid };
            let node = emu
                .create_canister_on_subnet(subnet, vec![controller()], cycles)
                .expect("node created");
            let arg = NodeArg::Init(NodeInit {
                scheme,
                key_name: key_name.into(),
                hub,
            });
            emu.install_canister(node, &node_wasm, Encode!(&arg).expect("encode"), None)
                .unwrap_or_else(|e| panic!("install {scheme}: {e:?}"));
            nodes.push((node, scheme));
        }
        emu.run_until_idle();
        let arg = Arg::Init(InitArgs {
            submitters,
            nodes: nodes
                .iter()
                .map(|(node, scheme)| PolicyNode {
                    node: *node,
                    scheme: *scheme,
                    key_name: key_name.into(),
                })
                .collect(),
            quorum_rule: None,
            config: Some(config),
            ..Default::default()
        });
        emu.install_canister(hub, &hub_wasm, Encode!(&arg).expect("encode"), None)
            .expect("hub installs");
        Suite {
            emu,
            hub,
            nodes,
            hub_wasm,
            node_wasm,
            key_name: key_name.into(),
        }
    }

    pub fn node(&self, scheme: Scheme) -> Principal {
        self.nodes
            .iter()
            .find(|(_, s)| *s == scheme)
            .map(|(n, _)| *n)
            .expect("node of scheme")
    }

    pub fn update<T: CandidType + for<'de> serde::Deserialize<'de>>(
        &mut self,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> T {
        let bytes = self
            .emu
            .update_call(self.hub, sender, method, arg)
            .unwrap_or_else(|e| panic!("{method} was rejected: {e:?}"));
        candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: bad reply: {e}"))
    }

    pub fn query<T: CandidType + for<'de> serde::Deserialize<'de>>(
        &mut self,
        method: &str,
        arg: Vec<u8>,
    ) -> T {
        let bytes = self
            .emu
            .query_call(self.hub, stranger(), method, arg)
            .unwrap_or_else(|e| panic!("{method} was rejected: {e:?}"));
        candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: bad reply: {e}"))
    }

    pub fn submit(
        &mut self,
        sender: Principal,
        records: &[RecordInput],
    ) -> Result<Vec<Submitted>, SubmitError> {
        self.update(sender, "submit", Encode!(&records).expect("encode"))
    }

    pub fn submit_packed(
        &mut self,
        sender: Principal,
        records: &[RecordInput],
    ) -> Result<Vec<Submitted>, SubmitError> {
        let blob = Blob(stratros_confirmation::encode_packed(records));
        self.update(sender, "submit_packed", Encode!(&blob).expect("encode"))
    }

    pub fn seal_now(&mut self) -> Result<u64, AdminError> {
        self.update(controller(), "seal_now", Encode!().expect("encode"))
    }

    pub fn receipt(&mut self, id: u64) -> Result<Receipt, ReceiptError> {
        self.query("get_receipt", Encode!(&id).expect("encode"))
    }

    pub fn batch(&mut self, height: u64) -> Result<Batch, BatchError> {
        self.query("get_batch", Encode!(&height).expect("encode"))
    }

    pub fn batches(&mut self, start: u64, limit: u64) -> BatchPage {
        self.query(
            "list_batches",
            Encode!(&ListBatchesArgs { start, limit }).expect("encode"),
        )
    }

    pub fn status(&mut self) -> Status {
        self.query("get_status", Encode!().expect("encode"))
    }

    pub fn upgrade_hub(&mut self, arg: Arg) {
        let wasm = self.hub_wasm.clone();
        self.emu
            .upgrade_canister(self.hub, &wasm, Encode!(&arg).expect("encode"), None)
            .expect("hub upgrades");
    }

    /// Advances time in steps, running every round, until `done` or `max_steps`.
    pub fn run_until(
        &mut self,
        step: std::time::Duration,
        max_steps: usize,
        mut done: impl FnMut(&mut Suite) -> bool,
    ) -> bool {
        for _ in 0..max_steps {
            self.emu.run_until_idle();
            if done(self) {
                return true;
            }
            self.emu.advance_time(step);
        }
        self.emu.run_until_idle();
        done(self)
    }

    /// Instructions `canister` spent since execution-log index `mark`.
    pub fn instructions_since(&self, canister: Principal, mark: usize) -> u64 {
        self.emu.executions()[mark..]
            .iter()
            .filter(|e| e.canister == canister)
            .map(|e| e.instructions)
            .sum()
    }

    pub fn now(&self) -> u64 {
        self.emu.time_nanos()
    }
}

pub fn record(i: u64, reference: String) -> RecordInput {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&i.to_be_bytes());
    hash[31] = 0x5a;
    RecordInput {
        content_hash: Hash32(hash),
        kind: "inference".into(),
        reference,
        payload: i
            .is_multiple_of(3)
            .then(|| Blob(format!("payload {i}").into_bytes())),
    }
}

pub const MAX_CERT_AGE: u64 = 300_000_000_000;

/// Verifies `receipt` offline at `now` and checks it is `hub`'s.
pub fn check_receipt(hub: Principal, now: u64, anchors: &TrustAnchors, receipt: &Receipt) {
    let verified = verify_receipt(receipt, anchors, now, MAX_CERT_AGE)
        .unwrap_or_else(|e| panic!("receipt {} does not verify: {e}", receipt.record.id));
    assert_eq!(verified.hub, hub);
}

/// Every byte position class a tamperer could touch: each must fail verification.
pub fn assert_tampering_fails(now: u64, anchors: &TrustAnchors, receipt: &Receipt) {
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
