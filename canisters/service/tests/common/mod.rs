//! The suite the service's emulator tests and bench share: the real hub, four nodes and two
//! services on the emulator.
#![allow(dead_code)]

use std::time::Duration;

use candid::{CandidType, Encode, Principal};
use ic_emulator::{Emulator, SubnetKind};
use serde::Deserialize;
use service::{AddError, Arg, InitArgs, RecordBody, RecordView, ServiceStatus};
use stratros_confirmation::hub::{
    Arg as HubArg, ConfigUpdate as HubConfig, FeeConfig, InitArgs as HubInit, ReceiptError,
};
use stratros_confirmation::{Blob, Hash32, PolicyNode, Receipt, Scheme};
use stratros_verify::{MasterKey, TrustAnchors};

pub const KEY_NAME: &str = "dfx_test_key";
pub const CYCLES: u128 = 1_000_000_000_000_000;

pub fn wasm(name: &str) -> Vec<u8> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../out/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nbuild first: bash scripts/build.sh service confirmation confirmation_node",
            path.display()
        )
    })
}

// Mirrors of the hub's and the node's lifecycle arguments (their crates cannot be linked
// next to this one: the canister entry points would clash).
#[derive(CandidType)]
pub enum NodeArg {
    Init(NodeInit),
}
#[derive(CandidType)]
pub struct NodeInit {
    scheme: Scheme,
    key_name: String,
    hub: Principal,
}
pub fn controller() -> Principal {
    Principal::anonymous()
}
pub fn owner(i: u8) -> Principal {
    Principal::self_authenticating([b'o', i])
}
pub fn stranger() -> Principal {
    Principal::self_authenticating(b"stranger")
}

pub struct Suite {
    pub emu: Emulator,
    pub hub: Principal,
    pub s1: Principal,
    pub s2: Principal,
    pub service_wasm: Vec<u8>,
}

#[allow(clippy::new_without_default)]
impl Suite {
    pub fn new() -> Suite {
        Suite::with_fees(None)
    }

    /// The suite with the hub charging fees as `fees` says.
    pub fn with_fees(fees: Option<FeeConfig>) -> Suite {
        let mut emu = Emulator::new();
        let app = emu.subnet_of_kind(SubnetKind::Application);
        let fid = emu.subnet_of_kind(SubnetKind::Fiduciary);
        let hub = emu
            .create_canister_on_subnet(app, vec![controller()], CYCLES)
            .expect("hub");
        let node_wasm = wasm("confirmation_node");
        let mut nodes = Vec::new();
        for (i, scheme) in Scheme::ALL.into_iter().enumerate() {
            let node = emu
                .create_canister_on_subnet(
                    if i < 2 { app } else { fid },
                    vec![controller()],
                    CYCLES,
                )
                .expect("node");
            let arg = NodeArg::Init(NodeInit {
                scheme,
                key_name: KEY_NAME.into(),
                hub,
            });
            emu.install_canister(node, &node_wasm, Encode!(&arg).expect("encode"), None)
                .expect("node installs");
            nodes.push(PolicyNode {
                node,
                scheme,
                key_name: KEY_NAME.into(),
            });
        }
        let service_wasm = wasm("service");
        let s1 = emu
            .create_canister_on_subnet(app, vec![controller()], CYCLES)
            .expect("s1");
        let s2 = emu
            .create_canister_on_subnet(fid, vec![controller()], CYCLES)
            .expect("s2");
        emu.run_until_idle();
        let arg = HubArg::Init(HubInit {
            submitters: vec![s1, s2],
            nodes,
            quorum_rule: None,
            config: Some(HubConfig {
                max_batch_records: Some(100),
                max_batch_age_seconds: Some(2),
                ..Default::default()
            }),
            fees,
            registrars: None,
        });
        emu.install_canister(
            hub,
            &wasm("confirmation"),
            Encode!(&arg).expect("encode"),
            None,
        )
        .expect("hub installs");
        for (i, s) in [(1u8, s1), (2, s2)] {
            let arg = Arg::Init(InitArgs {
                owner: owner(i),
                hub,
                writers: vec![],
                kind: "ai-module".into(),
                name: format!("Service {i}"),
                config: None,
            });
            emu.install_canister(s, &service_wasm, Encode!(&arg).expect("encode"), None)
                .expect("service installs");
        }
        Suite {
            emu,
            hub,
            s1,
            s2,
            service_wasm,
        }
    }

    pub fn update<T: CandidType + for<'de> Deserialize<'de>>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> T {
        let bytes = self
            .emu
            .update_call(canister, sender, method, arg)
            .unwrap_or_else(|e| panic!("{method} was rejected: {e:?}"));
        candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: bad reply: {e}"))
    }

    pub fn query<T: CandidType + for<'de> Deserialize<'de>>(
        &mut self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> T {
        let bytes = self
            .emu
            .query_call(canister, stranger(), method, arg)
            .unwrap_or_else(|e| panic!("{method} was rejected: {e:?}"));
        candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: bad reply: {e}"))
    }

    pub fn add(
        &mut self,
        service: Principal,
        sender: Principal,
        records: Vec<RecordBody>,
    ) -> Result<Vec<RecordView>, AddError> {
        self.update(
            service,
            sender,
            "add_records",
            Encode!(&records).expect("encode"),
        )
    }

    pub fn record(&mut self, service: Principal, id: u64) -> RecordView {
        let r: Option<RecordView> = self.query(service, "get_record", Encode!(&id).expect("e"));
        r.expect("record exists")
    }

    pub fn status(&mut self, service: Principal) -> ServiceStatus {
        self.query(service, "get_status", Encode!().expect("e"))
    }

    /// Runs rounds and advances time until `service` has no record left unconfirmed.
    pub fn settle(&mut self, service: Principal) -> bool {
        for _ in 0..60 {
            self.emu.run_until_idle();
            let s = self.status(service);
            if s.pending + s.submitted + s.sealed == 0 {
                return true;
            }
            self.emu.advance_time(Duration::from_secs(1));
        }
        false
    }

    pub fn receipt(&mut self, hub_id: u64) -> Result<Receipt, ReceiptError> {
        self.query(self.hub, "get_receipt", Encode!(&hub_id).expect("e"))
    }

    pub fn mark(&self) -> usize {
        self.emu.executions().len()
    }

    pub fn instructions_since(&self, canister: Principal, mark: usize) -> u64 {
        self.emu.executions()[mark..]
            .iter()
            .filter(|e| e.canister == canister)
            .map(|e| e.instructions)
            .sum()
    }
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
                .expect("scheme"),
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

pub fn model(i: u8) -> RecordBody {
    RecordBody::ModelAttestation {
        model_id: format!("llama-{i}"),
        version: "3.1".into(),
        weights_hash: Hash32([i; 32]),
        metadata: r#"{"params":"8B"}"#.into(),
    }
}

pub fn inference(i: u8) -> RecordBody {
    RecordBody::Inference {
        model: "llama-1".into(),
        input_hash: Hash32([i; 32]),
        output: None,
        output_hash: Hash32([i.wrapping_add(1); 32]),
        executor: "node-a".into(),
    }
}

pub fn dataset(i: u8) -> RecordBody {
    RecordBody::Dataset {
        hash: Hash32([i; 32]),
        licence: "CC-BY-4.0".into(),
        source: "https://example.org/data".into(),
    }
}
