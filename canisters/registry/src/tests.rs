//! Native unit tests: the stub runtime drives the logic without a replica.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use candid::Principal;
use candid_parser::utils::{CandidSource, service_equal};
use sha2::{Digest, Sha256};

use crate::runtime::{
    CallError, CmcCreateCanisterArg, CmcCreateCanisterError, HubAdminError, InstallMode, Runtime,
    StatusReading,
};
use crate::state::{mutate_state, read_state, reset_state};
use crate::storage::reset_memory;
use crate::types::*;
use crate::{lifecycle, modules, rollout, services};

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the stub runtime never suspends"),
    }
}

fn p(i: u8) -> Principal {
    Principal::from_slice(&[i, 1, 1])
}

fn controller() -> Principal {
    p(1)
}

fn hub() -> Principal {
    p(2)
}

fn cmc() -> Principal {
    p(3)
}

/// What the stub answers and what it saw.
#[derive(Default)]
struct Stub {
    caller: Option<Principal>,
    balance: u128,
    next_canister: u8,
    /// Answers of install calls, in order (default: Ok).
    install_results: VecDeque<Result<(), CallError>>,
    /// Answers of add_submitter, in order (default: Ok).
    hub_results: VecDeque<Result<Result<(), HubAdminError>, CallError>>,
    create_results: VecDeque<Result<(), CallError>>,
    installs: Vec<(Principal, InstallMode, usize)>,
    chunks_uploaded: usize,
    chunked_installs: usize,
    created: Vec<Principal>,
    cmc_selections: Vec<String>,
    timers: Vec<u64>,
    module_hashes: std::collections::BTreeMap<Principal, Vec<u8>>,
    /// `stop`, `install` and `start` calls, in order.
    lifecycle_calls: Vec<(&'static str, Principal)>,
    /// Answers of a service's `get_status` subnet, in order (default: `Ok(None)`, a service
    /// version that does not report it).
    subnet_answers: VecDeque<Result<Option<Principal>, CallError>>,
    /// Services asked for their subnet, in order.
    subnet_lookups: Vec<Principal>,
}

struct StubRuntime(RefCell<Stub>);

impl StubRuntime {
    fn new() -> Self {
        StubRuntime(RefCell::new(Stub {
            caller: Some(controller()),
            balance: 100_000_000_000_000,
            next_canister: 100,
            ..Default::default()
        }))
    }

    fn as_caller(&self, p: Principal) {
        self.0.borrow_mut().caller = Some(p);
    }
}

impl Runtime for StubRuntime {
    fn caller(&self) -> Principal {
        self.0.borrow().caller.unwrap_or(Principal::anonymous())
    }
    fn time(&self) -> u64 {
        1_000
    }
    fn is_controller(&self, p: &Principal) -> bool {
        *p == controller()
    }
    fn canister_self(&self) -> Principal {
        p(9)
    }
    fn subnet_self(&self) -> Principal {
        p(50)
    }
    fn cycle_balance(&self) -> u128 {
        self.0.borrow().balance
    }
    fn create_canister_fee(&self) -> u128 {
        500_000_000_000
    }
    fn instruction_counter(&self) -> u64 {
        0
    }
    fn schedule_tick(&self, seconds: u64) {
        self.0.borrow_mut().timers.push(seconds);
    }
    async fn create_canister(
        &self,
        _controllers: Vec<Principal>,
        _cycles: u128,
    ) -> Result<Principal, CallError> {
        let mut s = self.0.borrow_mut();
        s.create_results.pop_front().unwrap_or(Ok(()))?;
        s.next_canister += 1;
        let id = p(s.next_canister);
        s.created.push(id);
        Ok(id)
    }
    async fn cmc_create_canister(
        &self,
        _cmc: Principal,
        arg: CmcCreateCanisterArg,
        cycles: u128,
    ) -> Result<Result<Principal, CmcCreateCanisterError>, CallError> {
        let mut s = self.0.borrow_mut();
        s.cmc_selections.push(format!("{:?}", arg.subnet_selection));
        if let Some(r) = s.create_results.pop_front()
            && let Err(e) = r
        {
            return Err(e);
        }
        if cycles == 0 {
            return Ok(Err(CmcCreateCanisterError::Refunded {
                refund_amount: 0u8.into(),
                create_error: "no cycles".into(),
            }));
        }
        s.next_canister += 1;
        let id = p(s.next_canister);
        s.created.push(id);
        Ok(Ok(id))
    }
    async fn install_code(
        &self,
        canister: Principal,
        mode: InstallMode,
        module: Vec<u8>,
        _arg: Vec<u8>,
    ) -> Result<(), CallError> {
        let mut s = self.0.borrow_mut();
        s.installs.push((canister, mode, module.len()));
        s.lifecycle_calls.push(("install", canister));
        let r = s.install_results.pop_front().unwrap_or(Ok(()));
        if r.is_ok() {
            s.module_hashes
                .insert(canister, Sha256::digest(&module).to_vec());
        }
        r
    }
    async fn upload_chunk(&self, _c: Principal, chunk: Vec<u8>) -> Result<Vec<u8>, CallError> {
        self.0.borrow_mut().chunks_uploaded += 1;
        Ok(Sha256::digest(&chunk).to_vec())
    }
    async fn install_chunked_code(
        &self,
        canister: Principal,
        mode: InstallMode,
        _hashes: Vec<Vec<u8>>,
        module_hash: Vec<u8>,
        _arg: Vec<u8>,
    ) -> Result<(), CallError> {
        let mut s = self.0.borrow_mut();
        s.chunked_installs += 1;
        s.installs.push((canister, mode, 0));
        s.lifecycle_calls.push(("install", canister));
        let r = s.install_results.pop_front().unwrap_or(Ok(()));
        if r.is_ok() {
            s.module_hashes.insert(canister, module_hash);
        }
        r
    }
    async fn clear_chunk_store(&self, _c: Principal) -> Result<(), CallError> {
        Ok(())
    }
    async fn canister_status(&self, canister: Principal) -> Result<StatusReading, CallError> {
        Ok(StatusReading {
            cycles: 42,
            module_hash: self.0.borrow().module_hashes.get(&canister).cloned(),
        })
    }
    async fn stop_canister(&self, c: Principal) -> Result<(), CallError> {
        self.0.borrow_mut().lifecycle_calls.push(("stop", c));
        Ok(())
    }
    async fn start_canister(&self, c: Principal) -> Result<(), CallError> {
        self.0.borrow_mut().lifecycle_calls.push(("start", c));
        Ok(())
    }
    async fn delete_canister(&self, _c: Principal) -> Result<(), CallError> {
        Ok(())
    }
    async fn hub_add_submitter(
        &self,
        _hub: Principal,
        _submitter: Principal,
    ) -> Result<Result<(), HubAdminError>, CallError> {
        self.0
            .borrow_mut()
            .hub_results
            .pop_front()
            .unwrap_or(Ok(Ok(())))
    }
    async fn service_subnet(&self, service: Principal) -> Result<Option<Principal>, CallError> {
        let mut s = self.0.borrow_mut();
        s.subnet_lookups.push(service);
        s.subnet_answers.pop_front().unwrap_or(Ok(None))
    }
}

fn install_registry(rt: &StubRuntime, with_cmc: bool) {
    reset_state();
    reset_memory();
    lifecycle::init(
        rt,
        Arg::Init(InitArgs {
            hub: hub(),
            cmc: with_cmc.then(cmc),
            kinds: vec!["ai-module".into()],
            config: None,
        }),
    )
    .expect("init");
}

fn wasm(tag: u8, len: usize) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    m.resize(len.max(9), tag);
    m
}

fn publish(rt: &StubRuntime, module: &[u8]) -> Result<VersionInfo, ModuleError> {
    let upload = modules::start_upload(
        rt,
        StartUploadArgs {
            kind: "ai-module".into(),
            sha256: serde_bytes::ByteBuf::from(Sha256::digest(module).to_vec()),
            size: module.len() as u64,
        },
    )?;
    for (i, chunk) in module.chunks(700_000).enumerate() {
        modules::upload_chunk(
            rt,
            UploadChunkArgs {
                upload,
                offset: (i * 700_000) as u64,
                bytes: serde_bytes::ByteBuf::from(chunk.to_vec()),
            },
        )?;
    }
    modules::publish_module(rt, upload)
}

fn err(code: u32, message: &str) -> CallError {
    CallError {
        reject_code: Some(code),
        message: message.into(),
    }
}

#[test]
fn should_publish_chunked_modules_as_versions_and_refuse_bad_ones() {
    let rt = StubRuntime::new();
    install_registry(&rt, false);
    let v1 = publish(&rt, &wasm(1, 1_500_000)).expect("v1");
    assert_eq!(v1.version, 1);
    let v2 = publish(&rt, &wasm(2, 3_000_000)).expect("v2 (over one message)");
    assert_eq!(v2.version, 2);
    let kind = read_state(|s| s.kind("ai-module")).expect("kind");
    assert_eq!(
        kind.current_version,
        Some(1),
        "publishing does not roll out"
    );
    assert_eq!(
        publish(&rt, &wasm(1, 1_500_000)),
        Err(ModuleError::AlreadyPublished {
            kind: "ai-module".into(),
            version: 1
        })
    );
    assert_eq!(
        publish(&rt, b"not a wasm module"),
        Err(ModuleError::NotWasm)
    );
    // A hash that does not match the bytes.
    let upload = modules::start_upload(
        &rt,
        StartUploadArgs {
            kind: "ai-module".into(),
            sha256: serde_bytes::ByteBuf::from(vec![0; 32]),
            size: 9,
        },
    )
    .expect("start");
    modules::upload_chunk(
        &rt,
        UploadChunkArgs {
            upload,
            offset: 0,
            bytes: serde_bytes::ByteBuf::from(wasm(3, 9)),
        },
    )
    .expect("chunk");
    assert!(matches!(
        modules::publish_module(&rt, upload),
        Err(ModuleError::HashMismatch { .. })
    ));
    let start = |kind: &str, size: u64, hash_len: usize| {
        modules::start_upload(
            &rt,
            StartUploadArgs {
                kind: kind.into(),
                sha256: serde_bytes::ByteBuf::from(vec![0; hash_len]),
                size,
            },
        )
    };
    assert_eq!(start("ai-module", 0, 32), Err(ModuleError::EmptyModule));
    assert!(matches!(
        start("ai-module", 51 * 1024 * 1024, 32),
        Err(ModuleError::TooLarge { .. })
    ));
    assert_eq!(start("ai-module", 10, 31), Err(ModuleError::InvalidHash));
    assert_eq!(
        start("nope", 10, 32),
        Err(ModuleError::UnknownKind {
            kind: "nope".into()
        })
    );
    rt.as_caller(p(77));
    assert_eq!(
        start("ai-module", 10, 32),
        Err(ModuleError::NotController { caller: p(77) })
    );
}

#[test]
fn should_accept_a_resent_chunk_and_refuse_gaps_and_overflow() {
    let rt = StubRuntime::new();
    install_registry(&rt, false);
    let module = wasm(5, 100);
    let upload = modules::start_upload(
        &rt,
        StartUploadArgs {
            kind: "ai-module".into(),
            sha256: serde_bytes::ByteBuf::from(Sha256::digest(&module).to_vec()),
            size: 100,
        },
    )
    .expect("start");
    let chunk = |offset: u64, bytes: &[u8]| {
        modules::upload_chunk(
            &rt,
            UploadChunkArgs {
                upload,
                offset,
                bytes: serde_bytes::ByteBuf::from(bytes.to_vec()),
            },
        )
    };
    assert_eq!(chunk(0, &module[..60]).expect("first").received, 60);
    assert_eq!(chunk(0, &module[..60]).expect("resent").received, 60);
    assert_eq!(
        chunk(0, &module[1..61]),
        Err(ModuleError::ChunkMismatch { offset: 0 })
    );
    assert_eq!(
        chunk(70, &module[70..]),
        Err(ModuleError::OutOfOrder {
            expected_offset: 60,
            got: 70
        })
    );
    assert_eq!(
        chunk(60, &[0; 50]),
        Err(ModuleError::BeyondSize {
            end: 110,
            size: 100
        })
    );
    assert_eq!(
        modules::publish_module(&rt, upload),
        Err(ModuleError::Incomplete {
            received: 60,
            size: 100
        })
    );
    chunk(60, &module[60..]).expect("rest");
    assert_eq!(
        modules::publish_module(&rt, upload)
            .expect("publish")
            .version,
        1
    );
}

#[test]
fn should_create_install_register_and_record_a_service() {
    let rt = StubRuntime::new();
    install_registry(&rt, false);
    publish(&rt, &wasm(1, 1_000)).expect("v1");
    let info = block_on(services::create_service(
        &rt,
        "ai-module".into(),
        "Service 1".into(),
        Placement::OwnSubnet,
    ))
    .expect("created");
    assert_eq!(info.state, ServiceState::Active);
    assert_eq!(info.subnet, Some(p(50)));
    assert_eq!(info.owner, controller());
    assert_eq!(info.version, 1);
    assert_eq!(rt.0.borrow().installs.len(), 1);
    assert!(read_state(|s| s.creations().is_empty()));
    let page = read_state(|s| {
        s.page(&ServiceFilter {
            kind: Some("ai-module".into()),
            ..Default::default()
        })
    });
    assert_eq!(page.services.len(), 1);
}

#[test]
fn should_refuse_bad_creations_with_typed_errors_and_create_nothing() {
    let rt = StubRuntime::new();
    install_registry(&rt, false);
    let create = |kind: &str, name: &str, placement: Placement| {
        block_on(services::create_service(
            &rt,
            kind.into(),
            name.into(),
            placement,
        ))
    };
    assert_eq!(
        create("nope", "x", Placement::OwnSubnet),
        Err(CreateError::UnknownKind {
            kind: "nope".into()
        })
    );
    assert_eq!(
        create("ai-module", "x", Placement::OwnSubnet),
        Err(CreateError::NoVersion {
            kind: "ai-module".into()
        })
    );
    publish(&rt, &wasm(1, 1_000)).expect("v1");
    assert!(matches!(
        create("ai-module", "", Placement::OwnSubnet),
        Err(CreateError::InvalidName { .. })
    ));
    assert!(matches!(
        create("ai-module", "x", Placement::SubnetType("fiduciary".into())),
        Err(CreateError::PlacementUnavailable { .. })
    ));
    rt.0.borrow_mut().balance = 1_000;
    assert!(matches!(
        create("ai-module", "x", Placement::OwnSubnet),
        Err(CreateError::InsufficientCycles { balance: 1_000, .. })
    ));
    rt.0.borrow_mut().balance = 100_000_000_000_000;
    rt.0.borrow_mut()
        .create_results
        .push_back(Err(err(4, "subnet full")));
    assert!(matches!(
        create("ai-module", "x", Placement::OwnSubnet),
        Err(CreateError::CreateFailed { .. })
    ));
    rt.as_caller(p(77));
    assert_eq!(
        create("ai-module", "x", Placement::OwnSubnet),
        Err(CreateError::NotAuthorized { caller: p(77) })
    );
    assert!(rt.0.borrow().created.is_empty());
    assert_eq!(read_state(|s| s.service_count()), 0);
    assert!(read_state(|s| s.creations().is_empty()));
}

#[test]
fn should_record_a_failed_install_and_finish_it_on_retry() {
    let rt = StubRuntime::new();
    install_registry(&rt, false);
    publish(&rt, &wasm(1, 1_000)).expect("v1");
    rt.0.borrow_mut()
        .install_results
        .push_back(Err(err(5, "init trapped")));
    let e = block_on(services::create_service(
        &rt,
        "ai-module".into(),
        "S".into(),
        Placement::OwnSubnet,
    ))
    .expect_err("install fails");
    let CreateError::StepFailed {
        canister,
        step: Step::Install,
        ..
    } = e
    else {
        panic!("unexpected {e:?}")
    };
    let s = read_state(|s| s.service(&canister)).expect("recorded");
    assert!(matches!(
        s.state,
        ServiceState::Failed {
            step: Step::Install,
            attempts: 1,
            ..
        }
    ));
    let done = block_on(services::retry_service(&rt, canister)).expect("retried");
    assert_eq!(done.state, ServiceState::Active);
}

#[test]
fn should_retry_a_failed_hub_registration_from_the_timer() {
    let rt = StubRuntime::new();
    install_registry(&rt, false);
    publish(&rt, &wasm(1, 1_000)).expect("v1");
    rt.0.borrow_mut()
        .hub_results
        .push_back(Err(err(3, "hub stopped")));
    let e = block_on(services::create_service(
        &rt,
        "ai-module".into(),
        "S".into(),
        Placement::OwnSubnet,
    ))
    .expect_err("hub unreachable");
    let CreateError::StepFailed { canister, .. } = e else {
        panic!("{e:?}")
    };
    assert!(rt.0.borrow().timers.contains(&60), "a retry is scheduled");
    // Not due yet at the same time; due once retry_seconds passed (the stub's clock is fixed,
    // so move the record back in time).
    crate::state::mutate_state(|s| {
        let mut info = s.service(&canister).expect("service");
        info.updated_at_nanos = 0;
        s.put_service(info);
    });
    // The due check uses time 1_000 ns < 60 s: make retry_seconds count from 0.
    let due = read_state(|s| s.due_registrations(61_000_000_000, 5));
    assert_eq!(due, vec![canister]);
}

#[test]
fn should_place_services_through_the_cmc() {
    let rt = StubRuntime::new();
    install_registry(&rt, true);
    publish(&rt, &wasm(1, 1_000)).expect("v1");
    let info = block_on(services::create_service(
        &rt,
        "ai-module".into(),
        "S".into(),
        Placement::SubnetType("fiduciary".into()),
    ))
    .expect("created");
    assert_eq!(info.subnet, None);
    let info = block_on(services::create_service(
        &rt,
        "ai-module".into(),
        "S2".into(),
        Placement::Subnet(p(60)),
    ))
    .expect("created");
    assert_eq!(info.subnet, Some(p(60)));
    let sel = rt.0.borrow().cmc_selections.clone();
    assert!(
        sel[0].contains("fiduciary") && sel[1].contains("Subnet"),
        "{sel:?}"
    );
    // A CMC call that trapped may have created a canister: kept as an unknown outcome.
    rt.0.borrow_mut()
        .create_results
        .push_back(Err(err(5, "trapped")));
    let e = block_on(services::create_service(
        &rt,
        "ai-module".into(),
        "S3".into(),
        Placement::Subnet(p(60)),
    ))
    .expect_err("unknown");
    assert!(matches!(e, CreateError::OutcomeUnknown { .. }));
    assert_eq!(read_state(|s| s.creations()).len(), 1);
}

#[test]
fn should_learn_the_subnet_of_a_service_placed_by_subnet_type() {
    let rt = StubRuntime::new();
    install_registry(&rt, true);
    publish(&rt, &wasm(1, 1_000)).expect("v1");
    rt.0.borrow_mut().subnet_answers.push_back(Ok(Some(p(61))));
    let info = block_on(services::create_service(
        &rt,
        "ai-module".into(),
        "S".into(),
        Placement::SubnetType("fiduciary".into()),
    ))
    .expect("created");
    assert_eq!(info.subnet, Some(p(61)));
    assert_eq!(info.state, ServiceState::Active);
    assert_eq!(rt.0.borrow().subnet_lookups, vec![info.canister]);
    let learned = read_state(|s| s.events(0, 100))
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::SubnetLearned { .. }))
        .count();
    assert_eq!(learned, 1);
    // A known subnet is never asked for.
    let own = block_on(services::create_service(
        &rt,
        "ai-module".into(),
        "S2".into(),
        Placement::OwnSubnet,
    ))
    .expect("created");
    assert_eq!(own.subnet, Some(p(50)));
    assert_eq!(rt.0.borrow().subnet_lookups.len(), 1);
}

#[test]
fn should_ask_again_for_a_subnet_the_service_could_not_report_at_creation() {
    let rt = StubRuntime::new();
    install_registry(&rt, true);
    publish(&rt, &wasm(1, 1_000)).expect("v1");
    rt.0.borrow_mut()
        .subnet_answers
        .push_back(Err(err(2, "busy")));
    let info = block_on(services::create_service(
        &rt,
        "ai-module".into(),
        "S".into(),
        Placement::SubnetType("fiduciary".into()),
    ))
    .expect("created: the subnet is only read by the directory");
    assert_eq!(info.subnet, None);
    assert_eq!(info.state, ServiceState::Active);
    // The next cycle reading asks again.
    rt.0.borrow_mut().subnet_answers.push_back(Ok(Some(p(61))));
    block_on(services::background(&rt));
    assert_eq!(rt.0.borrow().subnet_lookups.len(), 2);
    let info = read_state(|s| s.service(&info.canister)).expect("known");
    assert_eq!(info.subnet, Some(p(61)));
    // Known now: not asked again.
    mutate_state(|s| {
        let mut x = s.service(&info.canister).expect("known");
        x.cycles_checked_at_nanos = None;
        s.put_service(x);
    });
    block_on(services::background(&rt));
    assert_eq!(rt.0.borrow().subnet_lookups.len(), 2);
}

#[test]
fn should_roll_out_one_instance_per_step_stop_on_failure_and_resume() {
    let rt = StubRuntime::new();
    install_registry(&rt, false);
    publish(&rt, &wasm(1, 1_000)).expect("v1");
    for i in 0..3 {
        block_on(services::create_service(
            &rt,
            "ai-module".into(),
            format!("S{i}"),
            Placement::OwnSubnet,
        ))
        .expect("created");
    }
    publish(&rt, &wasm(2, 3_000_000)).expect("v2, chunked");
    let r = rollout::upgrade_services(&rt, "ai-module".into(), 2).expect("started");
    assert_eq!(r.instances.len(), 3);
    assert_eq!(
        rollout::upgrade_services(&rt, "ai-module".into(), 2),
        Err(RolloutError::InProgress {
            kind: "ai-module".into(),
            version: 2
        })
    );
    rt.0.borrow_mut().lifecycle_calls.clear();
    assert!(block_on(rollout::step(&rt)), "first instance upgraded");
    // Stopped for the upgrade (a running service refuses it) and started again.
    let first = r.instances[0].canister;
    let calls = std::mem::take(&mut rt.0.borrow_mut().lifecycle_calls);
    assert_eq!(calls.first(), Some(&("stop", first)), "{calls:?}");
    assert_eq!(calls.last(), Some(&("start", first)), "{calls:?}");
    assert!(calls.contains(&("install", first)), "{calls:?}");
    rt.0.borrow_mut()
        .install_results
        .push_back(Err(err(5, "post_upgrade trapped")));
    assert!(!block_on(rollout::step(&rt)), "stops at the failure");
    // A failed upgrade leaves the old module: the service is started again all the same.
    let second = r.instances[1].canister;
    let calls = std::mem::take(&mut rt.0.borrow_mut().lifecycle_calls);
    assert_eq!(calls.last(), Some(&("start", second)), "{calls:?}");
    let r = read_state(|s| s.rollout()).expect("rollout");
    assert!(matches!(r.state, RolloutState::Failed { .. }));
    assert_eq!(r.instances[0].status, InstanceStatus::Done);
    assert!(matches!(
        r.instances[1].status,
        InstanceStatus::Failed { .. }
    ));
    assert_eq!(r.instances[2].status, InstanceStatus::Pending);
    // Simulate a registry upgrade, then resume.
    reset_state();
    lifecycle::post_upgrade(&rt, None).expect("upgrade");
    rollout::resume_rollout(&rt).expect("resumed");
    while block_on(rollout::step(&rt)) {}
    let r = read_state(|s| s.rollout()).expect("rollout");
    assert_eq!(r.state, RolloutState::Done);
    assert!(r.instances.iter().all(|i| i.status == InstanceStatus::Done));
    assert!(rt.0.borrow().chunked_installs >= 3, "3 MB goes in chunks");
    let versions: Vec<u32> = read_state(|s| s.services_where(|_| true))
        .iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(versions, vec![2, 2, 2]);
}

#[test]
fn should_reconcile_an_upgrade_interrupted_by_a_registry_upgrade() {
    let rt = StubRuntime::new();
    install_registry(&rt, false);
    publish(&rt, &wasm(1, 1_000)).expect("v1");
    let s = block_on(services::create_service(
        &rt,
        "ai-module".into(),
        "S".into(),
        Placement::OwnSubnet,
    ))
    .expect("created");
    let v2 = wasm(2, 2_000);
    publish(&rt, &v2).expect("v2");
    rollout::upgrade_services(&rt, "ai-module".into(), 2).expect("started");
    // The upgrade happened but its answer was lost with the registry's upgrade.
    crate::state::mutate_state(|st| {
        let mut r = st.rollout().expect("rollout");
        r.instances[0].status = InstanceStatus::Upgrading;
        st.set_rollout(r);
    });
    rt.0.borrow_mut()
        .module_hashes
        .insert(s.canister, Sha256::digest(&v2).to_vec());
    reset_state();
    lifecycle::post_upgrade(&rt, None).expect("upgrade");
    let installs_before = rt.0.borrow().installs.len();
    block_on(rollout::step(&rt));
    assert_eq!(
        rt.0.borrow().installs.len(),
        installs_before,
        "not installed twice"
    );
    // It may have been interrupted before it was started again.
    assert_eq!(
        rt.0.borrow().lifecycle_calls.last(),
        Some(&("start", s.canister))
    );
    assert_eq!(
        read_state(|st| st.service(&s.canister)).expect("s").version,
        2
    );
}

#[test]
fn should_refuse_bad_lifecycle_arguments() {
    let rt = StubRuntime::new();
    reset_state();
    reset_memory();
    assert!(lifecycle::init(&rt, Arg::Upgrade(None)).is_err());
    assert!(
        lifecycle::init(
            &rt,
            Arg::Init(InitArgs {
                hub: Principal::anonymous(),
                cmc: None,
                kinds: vec![],
                config: None
            })
        )
        .is_err()
    );
    assert!(
        lifecycle::init(
            &rt,
            Arg::Init(InitArgs {
                hub: hub(),
                cmc: None,
                kinds: vec![],
                config: Some(ConfigUpdate {
                    retry_seconds: Some(0),
                    ..Default::default()
                })
            })
        )
        .is_err()
    );
}

#[test]
fn should_match_the_checked_in_candid_interface() {
    let generated = super::__export_service();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../candid/registry.did");
    if std::env::var_os("UPDATE_CANDID").is_some() {
        std::fs::write(&path, &generated).expect("cannot write candid/registry.did");
    }
    let checked_in = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    service_equal(
        CandidSource::Text(&generated),
        CandidSource::Text(&checked_in),
    )
    .unwrap_or_else(|e| {
        panic!(
            "candid/registry.did differs from the generated interface \
             (regenerate with UPDATE_CANDID=1 cargo test -p registry --lib): {e}\n{generated}"
        )
    });
}

#[test]
fn should_refuse_a_held_service_and_keep_the_holders_lock() {
    let rt = StubRuntime::new();
    install_registry(&rt, false);
    let canister = Principal::from_slice(&[0x33; 10]);
    let held = services::ServiceLock::take(canister).expect("free");
    assert!(services::ServiceLock::take(canister).is_none(), "held");
    assert!(
        services::ServiceLock::take(canister).is_none(),
        "a refused attempt did not release the holder's lock"
    );
    drop(held);
    assert!(
        services::ServiceLock::take(canister).is_some(),
        "free again"
    );
}
