//! Shared set-up of the registry's scenarios on the real Wasm: the confirmation hub with its
//! four nodes (ECDSA and BIP340 on the application subnet, Ed25519 and vetKD BLS on the
//! fiduciary subnet), the registry, typed calls, and helpers to publish modules and follow
//! records. Written against `ic_testkit::IcBackend`, so it runs on the emulator and on
//! PocketIC.
//!
//! Needs `out/{registry,service,confirmation,confirmation_node}.wasm`:
//! `bash scripts/build.sh registry service confirmation confirmation_node`.

#![allow(dead_code)]

use std::time::Duration;

use candid::{CandidType, Principal};
use ic_testkit::{CanisterSpec, IcBackend, IcBackendExt, SubnetKind};
use registry::{
    Arg, ConfigUpdate, CreateError, InitArgs, ModuleError, Placement, Rollout, RolloutState,
    ServiceInfo, StartUploadArgs, UploadChunkArgs, UploadProgress, VersionInfo,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use stratros_confirmation::hub::{
    Arg as HubArg, ConfigUpdate as HubConfigUpdate, InitArgs as HubInitArgs,
};
use stratros_confirmation::{Blob, PolicyNode, Scheme};

pub const KIND: &str = "ai-module";
pub const KEY_NAME: &str = "dfx_test_key";
/// Bytes per `upload_chunk` message (under the 2 MiB ingress limit).
pub const UPLOAD_CHUNK: usize = 1024 * 1024;

pub fn admin() -> Principal {
    Principal::self_authenticating(b"stratros registry admin")
}

pub fn stranger() -> Principal {
    Principal::self_authenticating(b"stranger")
}

/// The confirmation node's lifecycle argument (a mirror: the node is a canister crate).
#[derive(CandidType)]
pub enum NodeArg {
    Init(NodeInit),
}

#[derive(CandidType)]
pub struct NodeInit {
    pub scheme: Scheme,
    pub key_name: String,
    pub hub: Principal,
}

pub use stratros_service_api::{RecordBody, ServiceStatus};

pub struct Suite<B: IcBackend + ?Sized = dyn IcBackend> {
    pub ic: Box<B>,
    pub hub: Principal,
    pub nodes: Vec<Principal>,
    pub registry: Principal,
    pub registry_wasm: Vec<u8>,
    pub service_wasm: Vec<u8>,
}

impl<B: IcBackend + ?Sized> Suite<B> {
    /// Hub, nodes and registry; the registry is a registrar of the hub (allowed to call
    /// `add_submitter`), the admin controls both. With `cmc`, the registry creates
    /// services through the cycles minting canister at its mainnet id.
    pub fn new(ic: Box<B>, cmc: Option<Principal>) -> Suite<B> {
        let hub_wasm = ic_testkit::wasm("confirmation");
        let node_wasm = ic_testkit::wasm("confirmation_node");
        let registry_wasm = ic_testkit::wasm("registry");
        let service_wasm = ic_testkit::wasm("service");
        let spec = |subnet| {
            CanisterSpec::on(subnet)
                .controller(admin())
                .cycles(1_000_000_000_000_000)
        };
        let registry = ic
            .create_canister(&spec(SubnetKind::Application))
            .expect("registry created");
        let hub = ic
            .create_canister(&spec(SubnetKind::Application))
            .expect("hub created");
        let mut nodes = Vec::new();
        let mut policy = Vec::new();
        for (i, scheme) in Scheme::ALL.into_iter().enumerate() {
            let subnet = if i < 2 {
                SubnetKind::Application
            } else {
                SubnetKind::Fiduciary
            };
            let node = ic
                .deploy(
                    &spec(subnet),
                    node_wasm.clone(),
                    NodeArg::Init(NodeInit {
                        scheme,
                        key_name: KEY_NAME.into(),
                        hub,
                    }),
                )
                .unwrap_or_else(|e| panic!("node {scheme:?} installs: {e}"));
            nodes.push(node);
            policy.push(PolicyNode {
                node,
                scheme,
                key_name: KEY_NAME.into(),
            });
        }
        let hub_arg = HubArg::Init(HubInitArgs {
            submitters: vec![],
            nodes: policy,
            quorum_rule: None,
            config: Some(HubConfigUpdate {
                max_batch_age_seconds: Some(2),
                ..Default::default()
            }),
            fees: None,
            registrars: Some(vec![registry]),
        });
        ic.install(
            hub,
            ic_testkit::InstallMode::Install,
            hub_wasm,
            candid::encode_one(&hub_arg).expect("encode"),
            Some(admin()),
        )
        .expect("hub installs");
        let arg = Arg::Init(InitArgs {
            hub,
            cmc,
            kinds: vec![KIND.into()],
            config: Some(ConfigUpdate {
                retry_seconds: Some(30),
                ..Default::default()
            }),
        });
        ic.install(
            registry,
            ic_testkit::InstallMode::Install,
            registry_wasm.clone(),
            candid::encode_one(&arg).expect("encode"),
            Some(admin()),
        )
        .expect("registry installs");
        Suite {
            ic,
            hub,
            nodes,
            registry,
            registry_wasm,
            service_wasm,
        }
    }

    pub fn registry_update<A: CandidType, R: CandidType + for<'de> Deserialize<'de>>(
        &self,
        method: &str,
        arg: A,
    ) -> R {
        self.ic
            .update_as(self.registry, Some(admin()), method, arg)
            .unwrap_or_else(|e| panic!("registry {method} was rejected: {e}"))
    }

    pub fn registry_query<A: CandidType, R: CandidType + for<'de> Deserialize<'de>>(
        &self,
        method: &str,
        arg: A,
    ) -> R {
        self.ic
            .query_as(self.registry, Some(admin()), method, arg)
            .unwrap_or_else(|e| panic!("registry {method} was rejected: {e}"))
    }

    /// Uploads `module` in 1 MiB chunks and publishes it.
    pub fn publish(&self, kind: &str, module: &[u8]) -> Result<VersionInfo, ModuleError> {
        self.publish_claiming(kind, module, &Sha256::digest(module))
    }

    pub fn publish_claiming(
        &self,
        kind: &str,
        module: &[u8],
        sha256: &[u8],
    ) -> Result<VersionInfo, ModuleError> {
        let upload: Result<u64, ModuleError> = self.registry_update(
            "start_upload",
            StartUploadArgs {
                kind: kind.into(),
                sha256: serde_bytes::ByteBuf::from(sha256.to_vec()),
                size: module.len() as u64,
            },
        );
        let upload = upload?;
        for (i, chunk) in module.chunks(UPLOAD_CHUNK).enumerate() {
            let progress: Result<UploadProgress, ModuleError> = self.registry_update(
                "upload_chunk",
                UploadChunkArgs {
                    upload,
                    offset: (i * UPLOAD_CHUNK) as u64,
                    bytes: serde_bytes::ByteBuf::from(chunk.to_vec()),
                },
            );
            progress?;
        }
        self.registry_update("publish_module", upload)
    }

    pub fn create(
        &self,
        kind: &str,
        name: &str,
        placement: Placement,
    ) -> Result<ServiceInfo, CreateError> {
        self.ic
            .update_args::<_, (Result<ServiceInfo, CreateError>,)>(
                self.registry,
                Some(admin()),
                "create_service",
                (kind.to_string(), name.to_string(), placement),
            )
            .unwrap_or_else(|e| panic!("create_service was rejected: {e}"))
            .0
    }

    pub fn rollout(&self) -> Option<Rollout> {
        self.registry_query("get_rollout", ())
    }

    pub fn service(&self, canister: Principal) -> Option<ServiceInfo> {
        self.registry_query("get_service", canister)
    }

    /// Like [`Suite::add_records`], but a service stopped for an upgrade (the rollout stops
    /// each instance around its `install_code`) rejects the call: `None`, as a client that
    /// retries later would see it.
    pub fn add_records_unless_stopped(
        &self,
        service: Principal,
        tag: &str,
        n: usize,
    ) -> Option<usize> {
        let records: Vec<RecordBody> = (0..n)
            .map(|i| RecordBody::Transaction {
                kind: "inference".into(),
                payload: Blob(format!("{tag}-{i}").into_bytes()),
            })
            .collect();
        let reply: Result<Result<Vec<candid::Reserved>, candid::Reserved>, _> =
            self.ic
                .update_as(service, Some(admin()), "add_records", records);
        match reply {
            Ok(Ok(v)) => Some(v.len()),
            Ok(Err(_)) => panic!("add_records refused by {service}"),
            Err(e) if e.message.contains("is stopped") || e.message.contains("is stopping") => None,
            Err(e) => panic!("add_records to {service} was rejected: {e}"),
        }
    }

    /// The owner (admin) adds `n` records to a service; returns how many it accepted.
    pub fn add_records(&self, service: Principal, tag: &str, n: usize) -> usize {
        let records: Vec<RecordBody> = (0..n)
            .map(|i| RecordBody::Transaction {
                kind: "inference".into(),
                payload: Blob(format!("{tag}-{i}").into_bytes()),
            })
            .collect();
        let reply: Result<Result<Vec<candid::Reserved>, candid::Reserved>, _> =
            self.ic
                .update_as(service, Some(admin()), "add_records", records);
        match reply {
            Ok(Ok(v)) => v.len(),
            Ok(Err(_)) => panic!("add_records refused by {service}"),
            Err(e) => panic!("add_records to {service} was rejected: {e}"),
        }
    }

    pub fn service_status(&self, service: Principal) -> ServiceStatus {
        self.ic
            .query_as(service, Some(admin()), "get_status", ())
            .unwrap_or_else(|e| panic!("get_status of {service}: {e}"))
    }

    /// Advances time in 2-second steps, running rounds, until `done` or about `max_seconds`.
    pub fn run_until(&self, max_seconds: u64, mut done: impl FnMut(&Suite<B>) -> bool) -> bool {
        for _ in 0..max_seconds.div_ceil(2) {
            if done(self) {
                return true;
            }
            self.ic.advance_time(Duration::from_secs(2));
            self.ic.tick_n(8);
        }
        done(self)
    }

    /// Runs rounds until the rollout is no longer `Running` (or `max_rounds`).
    pub fn run_rollout(&self, max_rounds: usize) -> Rollout {
        for _ in 0..max_rounds {
            let r = self.rollout().expect("a rollout");
            if r.state != RolloutState::Running {
                return r;
            }
            self.ic.tick();
        }
        self.rollout().expect("a rollout")
    }

    pub fn upgrade_registry(&self) {
        self.ic
            .upgrade(
                self.registry,
                self.registry_wasm.clone(),
                Arg::Upgrade(None),
                Some(admin()),
            )
            .expect("the registry upgrades");
    }
}

/// `module` with a custom section of `extra` bytes appended: a distinct, valid version,
/// and over the 2 MiB message limit when `extra` is large enough (chunked install).
pub fn padded(module: &[u8], name: &str, extra: usize) -> Vec<u8> {
    let mut payload = Vec::new();
    leb128(&mut payload, name.len() as u64);
    payload.extend_from_slice(name.as_bytes());
    payload.resize(payload.len() + extra, 0x5a);
    let mut out = module.to_vec();
    out.push(0);
    leb128(&mut out, payload.len() as u64);
    out.extend_from_slice(&payload);
    out
}

fn leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A module whose `canister_init` traps.
pub fn trapping_module() -> Vec<u8> {
    wat::parse_str(
        r#"(module
             (import "ic0" "trap" (func $trap (param i32 i32)))
             (memory 1)
             (data (i32.const 0) "init refuses")
             (func $init (call $trap (i32.const 0) (i32.const 12)))
             (export "canister_init" (func $init)))"#,
    )
    .expect("valid WAT")
}
