//! The emulator's conformance suite: the probe canister (real Wasm built with
//! ic-cdk 0.20, ic-cdk-timers 1.0 and ic-stable-structures 0.7) exercises each
//! behaviour, and each test asserts what the IC Interface Specification says.

use candid::{Decode, Encode, Principal};
use ic_cbor::CertificateToCbor;
use ic_certificate_verification::VerifyCertificate;
use ic_certification::{Certificate, LookupResult};
use ic_emulator::{CanisterRunStatus, Emulator, ErrorCode, RejectCode, RejectResponse, SubnetKind};
use probe::*;
use serde_bytes::ByteBuf;
use std::time::Duration;
use stratros_integration::wasm;

const USER: Principal = Principal::from_slice(&[0xAA; 29]);

struct Probe {
    emu: Emulator,
    id: Principal,
}

impl Probe {
    fn new() -> Self {
        let mut emu = Emulator::new();
        let id = emu.create_canister();
        emu.install_canister(
            id,
            &wasm("probe"),
            Encode!(&Some("init".to_string())).unwrap(),
            None,
        )
        .expect("the probe installs");
        Self { emu, id }
    }
    fn update(&mut self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, RejectResponse> {
        self.emu.update_call(self.id, USER, method, arg)
    }
    fn query(&mut self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, RejectResponse> {
        self.emu.query_call(self.id, USER, method, arg)
    }
    fn state(&mut self) -> ProbeState {
        Decode!(
            &self.query("get_state", Encode!().unwrap()).unwrap(),
            ProbeState
        )
        .unwrap()
    }
}

fn assert_code(
    result: Result<Vec<u8>, RejectResponse>,
    code: ErrorCode,
    needle: &str,
) -> RejectResponse {
    let err = result.expect_err("the call must fail");
    assert_eq!(err.error_code, Some(code), "{err}");
    assert_eq!(err.reject_code, code.reject_code(), "{err}");
    assert!(
        err.reject_message.contains(needle),
        "'{}' does not contain '{needle}'",
        err.reject_message
    );
    err
}

// ----- System API contexts -------------------------------------------------------

#[test]
fn should_trap_when_a_query_sets_certified_data() {
    let mut p = Probe::new();
    let r = p.query("query_certified_data_set", Encode!().unwrap());
    assert_code(
        r,
        ErrorCode::CanisterContractViolation,
        "\"ic0_certified_data_set\" cannot be executed in non replicated query mode",
    );
}

#[test]
fn should_trap_when_a_query_makes_a_call() {
    let mut p = Probe::new();
    let r = p.query("query_call_new", Encode!().unwrap());
    assert_code(
        r,
        ErrorCode::CanisterContractViolation,
        "\"ic0_call_new\" cannot be executed in non replicated query mode",
    );
}

#[test]
fn should_trap_when_a_replicated_query_sets_certified_data() {
    let mut p = Probe::new();
    // A query method called as an update runs in replicated mode: still forbidden.
    let r = p.update("query_certified_data_set", Encode!().unwrap());
    assert_code(
        r,
        ErrorCode::CanisterContractViolation,
        "cannot be executed in replicated query mode",
    );
}

#[test]
fn should_offer_a_certificate_only_in_non_replicated_queries() {
    let mut p = Probe::new();
    let present = Decode!(
        &p.update("certificate_present_in_update", Encode!().unwrap())
            .unwrap(),
        u32
    )
    .unwrap();
    assert_eq!(present, 0);
    let cert = Decode!(
        &p.query("certificate_in_query", Encode!().unwrap()).unwrap(),
        Option<ByteBuf>
    )
    .unwrap();
    assert!(cert.is_some());
    let replicated = Decode!(
        &p.update("replicated_in_update", Encode!().unwrap())
            .unwrap(),
        bool
    )
    .unwrap();
    let non_replicated = Decode!(
        &p.query("replicated_in_query", Encode!().unwrap()).unwrap(),
        bool
    )
    .unwrap();
    assert!(replicated);
    assert!(!non_replicated);
}

#[test]
fn should_serve_a_certificate_that_verifies_against_the_root_key_with_a_delegation() {
    let mut p = Probe::new();
    p.update(
        "set_certified_data",
        Encode!(&ByteBuf::from(vec![7u8; 32])).unwrap(),
    )
    .unwrap();
    let cert = Decode!(
        &p.query("certificate_in_query", Encode!().unwrap()).unwrap(),
        Option<ByteBuf>
    )
    .unwrap()
    .expect("a certificate in a query");
    let cert = Certificate::from_cbor(&cert).expect("CBOR certificate");
    assert!(
        cert.delegation.is_some(),
        "an application subnet certifies through a delegation"
    );
    let now = u128::from(p.emu.time_nanos());
    cert.verify(p.id.as_slice(), &p.emu.root_key(), &now, &300_000_000_000)
        .expect("the certificate verifies with the emulator's root key");
    let data = cert
        .tree
        .lookup_path([b"canister".as_slice(), p.id.as_slice(), b"certified_data"]);
    assert_eq!(data, LookupResult::Found(&[7u8; 32][..]));
    let root_key = Decode!(&p.update("root_key", Encode!().unwrap()).unwrap(), ByteBuf).unwrap();
    assert_eq!(root_key.into_vec(), p.emu.root_key());
}

#[test]
fn should_trap_when_certified_data_exceeds_32_bytes() {
    let mut p = Probe::new();
    let r = p.update(
        "set_certified_data",
        Encode!(&ByteBuf::from(vec![1u8; 33])).unwrap(),
    );
    assert_code(
        r,
        ErrorCode::CanisterContractViolation,
        "no larger than 32 bytes",
    );
}

#[test]
fn should_report_canister_identity_status_version_and_subnet() {
    let mut p = Probe::new();
    let me = Decode!(
        &p.query("canister_self", Encode!().unwrap()).unwrap(),
        Principal
    )
    .unwrap();
    assert_eq!(me, p.id);
    let caller = Decode!(&p.query("caller", Encode!().unwrap()).unwrap(), Principal).unwrap();
    assert_eq!(caller, USER);
    let status = Decode!(
        &p.update("canister_status_code", Encode!().unwrap())
            .unwrap(),
        u32
    )
    .unwrap();
    assert_eq!(status, 1);
    let v1 = Decode!(
        &p.query("canister_version", Encode!().unwrap()).unwrap(),
        u64
    )
    .unwrap();
    p.emu
        .upgrade_canister(
            p.id,
            &wasm("probe"),
            Encode!(&None::<String>).unwrap(),
            None,
        )
        .unwrap();
    let v2 = Decode!(
        &p.query("canister_version", Encode!().unwrap()).unwrap(),
        u64
    )
    .unwrap();
    assert!(v2 > v1);
    let subnet = Decode!(&p.update("subnet", Encode!().unwrap()).unwrap(), SubnetInfo).unwrap();
    assert_eq!(subnet.id, p.emu.subnet_of_kind(SubnetKind::Application));
    assert_eq!(subnet.node_count, 13);
    assert!(
        Decode!(
            &p.query("is_controller", Encode!(&Principal::anonymous()).unwrap())
                .unwrap(),
            bool
        )
        .unwrap()
    );
    assert!(
        !Decode!(
            &p.query("is_controller", Encode!(&USER).unwrap()).unwrap(),
            bool
        )
        .unwrap()
    );
}

#[test]
fn should_count_instructions_in_the_message_and_the_call_context() {
    let mut p = Probe::new();
    let small = Decode!(
        &p.update("performance_counters", Encode!(&10u64).unwrap())
            .unwrap(),
        PerformanceCounters
    )
    .unwrap();
    let large = Decode!(
        &p.update("performance_counters", Encode!(&100_000u64).unwrap())
            .unwrap(),
        PerformanceCounters
    )
    .unwrap();
    assert!(
        large.instructions > small.instructions + 100_000,
        "{small:?} {large:?}"
    );
    assert!(large.call_context_instructions >= large.instructions);
    let metered = p.emu.executions().last().unwrap().instructions;
    assert!(
        metered >= large.instructions,
        "the emulator's count covers what the canister saw"
    );
}

#[test]
fn should_price_calls_canister_creation_and_threshold_signatures_like_the_ic() {
    let mut p = Probe::new();
    let args = CostArgs {
        method_name_size: 10,
        payload_size: 90,
        request_size: 0,
        max_res_bytes: 0,
        key_name: "key_1".into(),
    };
    let costs = Decode!(&p.query("costs", Encode!(&args).unwrap()).unwrap(), Costs).unwrap();
    assert_eq!(costs.call, 260_000 + 1_000 * 100);
    assert_eq!(costs.create_canister, 500_000_000_000);
    assert_eq!(costs.sign_with_ecdsa, Ok(26_153_846_153));
    assert_eq!(costs.sign_with_schnorr_bip340, Ok(26_153_846_153));
    assert_eq!(costs.sign_with_schnorr_ed25519, Ok(26_153_846_153));
    assert_eq!(costs.vetkd_derive_key, Ok(26_153_846_153));
    let unknown = CostArgs {
        key_name: "no_such_key".into(),
        ..args
    };
    let costs = Decode!(
        &p.query("costs", Encode!(&unknown).unwrap()).unwrap(),
        Costs
    )
    .unwrap();
    assert_eq!(
        costs.sign_with_ecdsa,
        Err(2),
        "an unknown key name is error code 2"
    );
}

#[test]
fn should_keep_time_and_let_tests_control_it() {
    let mut p = Probe::new();
    let t0 = Decode!(
        &p.update("time_in_update", Encode!().unwrap()).unwrap(),
        u64
    )
    .unwrap();
    p.emu.advance_time(Duration::from_secs(60));
    let t1 = Decode!(&p.query("time_in_query", Encode!().unwrap()).unwrap(), u64).unwrap();
    assert!(t1 >= t0 + 60_000_000_000);
}

// ----- Message atomicity -----------------------------------------------------------

#[test]
fn should_roll_back_heap_stable_memory_certified_data_timers_and_calls_on_a_trap() {
    let mut p = Probe::new();
    p.update("increment", Encode!().unwrap()).unwrap();
    let before = p.state();
    let certified_before = p.emu.certified_data(p.id);
    let r = p.update("mutate_then_trap", Encode!().unwrap());
    assert_code(
        r,
        ErrorCode::CanisterCalledTrap,
        "Canister called `ic0.trap` with message: 'probe: mutate_then_trap traps",
    );
    p.emu.advance_time(Duration::from_secs(1));
    p.emu.run_until_idle();
    assert_eq!(p.state(), before, "nothing of the trapped message survives");
    assert_eq!(p.emu.certified_data(p.id), certified_before);
    let kv = Decode!(
        &p.query("kv_get", Encode!(&"atomicity".to_string()).unwrap())
            .unwrap(),
        Option<String>
    )
    .unwrap();
    assert_eq!(kv, None);
}

#[test]
fn should_discard_the_state_changes_of_queries() {
    let mut p = Probe::new();
    // `increment` is an update; calling `spin_query` as a query leaves nothing behind.
    p.query("spin_query", Encode!(&1_000u64).unwrap()).unwrap();
    let before = p.state();
    p.update("spin_query", Encode!(&1_000u64).unwrap()).unwrap();
    assert_eq!(p.state(), before);
}

#[test]
fn should_reject_a_call_context_that_never_replies() {
    let mut p = Probe::new();
    let r = p.update("never_reply", Encode!().unwrap());
    assert_code(r, ErrorCode::CanisterDidNotReply, "did not reply");
}

#[test]
fn should_trap_on_a_second_reply() {
    let mut p = Probe::new();
    let r = p.update("reply_twice", Encode!().unwrap());
    assert_code(r, ErrorCode::CanisterContractViolation, "already replied");
}

#[test]
fn should_deliver_an_explicit_reject_as_canister_reject() {
    let mut p = Probe::new();
    let err = p
        .update("reject_with", Encode!(&"nope".to_string()).unwrap())
        .unwrap_err();
    assert_eq!(err.reject_code, RejectCode::CanisterReject);
    assert_eq!(err.reject_message, "nope");
    assert_eq!(err.error_code, None);
}

// ----- Inter-canister calls ----------------------------------------------------------

fn two_probes() -> (Probe, Principal) {
    let mut p = Probe::new();
    let other = p.emu.create_canister();
    p.emu
        .install_canister(
            other,
            &wasm("probe"),
            Encode!(&None::<String>).unwrap(),
            None,
        )
        .unwrap();
    (p, other)
}

#[test]
fn should_call_another_canister_with_bounded_and_unbounded_wait() {
    let (mut p, other) = two_probes();
    for bounded in [false, true] {
        let r = Decode!(&p.update("call_increment", Encode!(&other, &bounded).unwrap()).unwrap(), Result<u64, String>).unwrap();
        assert!(r.is_ok(), "{r:?}");
    }
    let other_state = Decode!(
        &p.emu
            .query_call(other, USER, "get_state", Encode!().unwrap())
            .unwrap(),
        ProbeState
    )
    .unwrap();
    assert_eq!(other_state.counter, 2);
}

#[test]
fn should_commit_state_before_the_await_and_run_cleanup_when_the_reply_callback_traps() {
    let (mut p, other) = two_probes();
    let before = p.state();
    let r = p.update("trap_in_reply_callback", Encode!(&other).unwrap());
    assert_code(
        r,
        ErrorCode::CanisterCalledTrap,
        "probe: trap in reply callback",
    );
    let after = p.state();
    assert_eq!(
        after.counter,
        before.counter + 1,
        "the change before the await is committed, the callback's is not"
    );
    assert_eq!(
        after.cleanup_runs,
        before.cleanup_runs + 1,
        "call_on_cleanup ran"
    );
}

/// Submits (without running it) a `forward` of `increment` to `other` with a 10 s
/// bounded-wait timeout.
fn submit_bounded_increment(p: &mut Probe, other: Principal) -> ic_emulator::MessageId {
    let args = ForwardArgs {
        target: other,
        method: "increment".into(),
        arg: Encode!().unwrap(),
        cycles: 0,
        timeout_seconds: Some(10),
    };
    p.emu
        .submit_call(p.id, USER, "forward", Encode!(&args).unwrap())
        .unwrap()
}

fn forward(p: &mut Probe, args: ForwardArgs) -> ForwardResult {
    Decode!(
        &p.update("forward", Encode!(&args).unwrap()).unwrap(),
        ForwardResult
    )
    .unwrap()
}

#[test]
fn should_reject_calls_to_unknown_canisters_methods_and_stopped_canisters() {
    let (mut p, other) = two_probes();
    let unknown = ic_emulator::canister_id_from_index(0x200_0F00);
    let base = ForwardArgs {
        target: unknown,
        method: "increment".into(),
        arg: Encode!().unwrap(),
        cycles: 0,
        timeout_seconds: None,
    };
    match forward(&mut p, base.clone()) {
        ForwardResult::Reject { code, message, .. } => {
            assert_eq!(code, RejectCode::DestinationInvalid as u32);
            assert!(message.contains("not found"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match forward(
        &mut p,
        ForwardArgs {
            target: other,
            method: "no_such_method".into(),
            ..base.clone()
        },
    ) {
        ForwardResult::Reject { code, message, .. } => {
            assert_eq!(code, RejectCode::CanisterError as u32);
            assert!(
                message.contains("has no update method 'no_such_method'"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    p.emu.stop_canister(other, None).unwrap();
    match forward(
        &mut p,
        ForwardArgs {
            target: other,
            ..base
        },
    ) {
        ForwardResult::Reject { code, message, .. } => {
            assert_eq!(code, RejectCode::CanisterError as u32);
            assert!(message.contains("is stopped"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let r = p
        .emu
        .update_call(other, USER, "increment", Encode!().unwrap());
    assert_code(r, ErrorCode::CanisterStopped, "is stopped");
    p.emu.start_canister(other, None).unwrap();
    assert!(
        p.emu
            .update_call(other, USER, "increment", Encode!().unwrap())
            .is_ok()
    );
}

#[test]
fn should_transfer_accept_and_refund_cycles() {
    let (mut p, other) = two_probes();
    let before_other = p.emu.cycle_balance(other);
    let args = ForwardArgs {
        target: other,
        method: "accept_cycles".into(),
        arg: Encode!(&400u128).unwrap(),
        cycles: 1_000,
        timeout_seconds: None,
    };
    match forward(&mut p, args) {
        ForwardResult::Reply { bytes, refunded } => {
            let accepted = Decode!(&bytes, AcceptedCycles).unwrap();
            assert_eq!(
                accepted,
                AcceptedCycles {
                    available: 1_000,
                    accepted: 400
                }
            );
            assert_eq!(refunded, 600, "what is not accepted comes back");
        }
        other => panic!("{other:?}"),
    }
    let gained = p.emu.cycle_balance(other) as i128 - before_other as i128;
    assert!(
        gained < 400,
        "the callee keeps 400 cycles minus what it paid for the execution"
    );
}

#[test]
fn should_time_out_a_bounded_wait_call_with_sys_unknown() {
    let (mut p, other) = two_probes();
    p.emu.hold_messages(other);
    let id = submit_bounded_increment(&mut p, other);
    p.emu.tick();
    p.emu.tick();
    assert!(p.emu.ingress_status(id).is_none(), "still waiting");
    p.emu.advance_time(Duration::from_secs(11));
    let reply = p.emu.await_call(id).unwrap();
    match Decode!(&reply, ForwardResult).unwrap() {
        ForwardResult::Reject { code, .. } => assert_eq!(code, RejectCode::SysUnknown as u32),
        other => panic!("{other:?}"),
    }
    // The held request expired in the queue: it is never executed.
    p.emu.release_messages(other);
    p.emu.run_until_idle();
    let other_state = Decode!(
        &p.emu
            .query_call(other, USER, "get_state", Encode!().unwrap())
            .unwrap(),
        ProbeState
    )
    .unwrap();
    assert_eq!(other_state.counter, 0);
}

#[test]
fn should_deliver_a_response_queued_before_the_deadline_even_when_time_passes_it() {
    // The callee answered (its response is queued) before the deadline; time then passes the
    // deadline before the response is delivered: the caller gets the answer, exactly once,
    // and its call context closes (it used to stay open forever).
    let (mut p, other) = two_probes();
    let id = submit_bounded_increment(&mut p, other);
    assert!(p.emu.step(), "forward runs and calls");
    assert!(p.emu.step(), "the callee runs and answers");
    p.emu.advance_time(Duration::from_secs(11));
    match Decode!(&p.emu.await_call(id).unwrap(), ForwardResult).unwrap() {
        ForwardResult::Reply { .. } => {}
        other => panic!("{other:?}"),
    }
    p.emu
        .stop_canister(p.id, None)
        .expect("no call context left open");
}

#[test]
fn should_finish_stopping_a_canister_whose_bounded_wait_call_is_held() {
    // Stopping waits for the open call context; the held call times out as time passes, and
    // the emulator moves time to its deadline when nothing else can run.
    let (mut p, other) = two_probes();
    p.emu.hold_messages(other);
    let id = submit_bounded_increment(&mut p, other);
    p.emu.tick();
    let start = p.emu.time_nanos();
    p.emu.stop_canister(p.id, None).expect("stops");
    assert!(
        p.emu.time_nanos() >= start + 10_000_000_000,
        "the call's deadline passed"
    );
    assert_eq!(
        p.emu.canister_status(p.id).unwrap().status,
        CanisterRunStatus::Stopped
    );
    match Decode!(&p.emu.await_call(id).unwrap(), ForwardResult).unwrap() {
        ForwardResult::Reject { code, .. } => assert_eq!(code, RejectCode::SysUnknown as u32),
        other => panic!("{other:?}"),
    }
}

#[test]
fn should_stop_upgrade_and_start_a_running_canister_in_upgrade_canister() {
    let mut p = Probe::new();
    p.update("increment", Encode!().unwrap()).unwrap();
    let arg = Encode!(&None::<String>).unwrap();
    p.emu
        .upgrade_canister(p.id, &wasm("probe"), arg.clone(), None)
        .unwrap();
    assert_eq!(
        p.emu.canister_status(p.id).unwrap().status,
        CanisterRunStatus::Running,
        "started again"
    );
    // A stopped canister is upgraded and stays stopped.
    p.emu.stop_canister(p.id, None).unwrap();
    p.emu
        .upgrade_canister(p.id, &wasm("probe"), arg, None)
        .unwrap();
    assert_eq!(
        p.emu.canister_status(p.id).unwrap().status,
        CanisterRunStatus::Stopped
    );
}

#[test]
fn should_refuse_oversized_messages() {
    let mut p = Probe::new();
    let big = ByteBuf::from(vec![0u8; 2 * 1024 * 1024 + 1]);
    let r = p.update("arg_size", Encode!(&big).unwrap());
    assert_code(
        r,
        ErrorCode::CanisterContractViolation,
        "exceeds the ingress message limit",
    );
    let r = p.update("reply_bytes", Encode!(&(3u64 * 1024 * 1024)).unwrap());
    assert_code(
        r,
        ErrorCode::CanisterContractViolation,
        "cannot be larger than 2097152",
    );
}

// ----- Ingress -----------------------------------------------------------------------

#[test]
fn should_run_inspect_message_for_ingress_updates() {
    let mut p = Probe::new();
    let r = p.update("inspect_rejected", Encode!().unwrap());
    assert_code(
        r,
        ErrorCode::CanisterRejectedMessage,
        "rejected the message",
    );
    // Inter-canister calls do not go through inspect_message.
    let mut p2 = Probe::new();
    let args = ForwardArgs {
        target: p2.id,
        method: "inspect_rejected".into(),
        arg: Encode!().unwrap(),
        cycles: 0,
        timeout_seconds: None,
    };
    let id = p2.id;
    let _ = id;
    let other = p.emu.create_canister();
    p.emu
        .install_canister(
            other,
            &wasm("probe"),
            Encode!(&None::<String>).unwrap(),
            None,
        )
        .unwrap();
    match forward(
        &mut p,
        ForwardArgs {
            target: other,
            ..args
        },
    ) {
        ForwardResult::Reply { .. } => {}
        other => panic!("{other:?}"),
    }
    let _ = p2.state();
}

#[test]
fn should_submit_step_and_await_an_ingress_call() {
    let mut p = Probe::new();
    let id = p
        .emu
        .submit_call(p.id, USER, "increment", Encode!().unwrap())
        .unwrap();
    assert!(p.emu.ingress_status(id).is_none());
    assert!(p.emu.step());
    let reply = p.emu.await_call(id).unwrap();
    assert_eq!(Decode!(&reply, u64).unwrap(), 1);
}

// ----- Instruction limits ------------------------------------------------------------

#[test]
fn should_stop_a_query_at_the_5b_instruction_limit() {
    let mut p = Probe::new();
    let r = p.query("spin_query", Encode!(&2_000_000_000u64).unwrap());
    assert_code(
        r,
        ErrorCode::CanisterInstructionLimitExceeded,
        "exceeded the limit of 5000000000 instructions",
    );
}

// ----- Timers ------------------------------------------------------------------------

#[test]
fn should_fire_ic_cdk_timers_and_the_raw_global_timer() {
    let mut p = Probe::new();
    p.update("set_timer", Encode!(&5u64).unwrap()).unwrap();
    p.update("set_timer_interval", Encode!(&10u64).unwrap())
        .unwrap();
    p.emu.run_until_idle();
    assert_eq!(p.state().timer_runs, 0, "not due yet");
    p.emu.advance_time(Duration::from_secs(6));
    p.emu.run_until_idle();
    assert_eq!(p.state().timer_runs, 1);
    for _ in 0..3 {
        p.emu.advance_time(Duration::from_secs(10));
        p.emu.run_until_idle();
    }
    assert_eq!(p.state().interval_runs, 3);
    p.update("clear_timer_interval", Encode!().unwrap())
        .unwrap();
    p.emu.advance_time(Duration::from_secs(30));
    p.emu.run_until_idle();
    assert_eq!(p.state().interval_runs, 3);
}

// ----- Stable memory and lifecycle ---------------------------------------------------

#[test]
fn should_keep_stable_memory_and_reset_the_heap_across_upgrades() {
    let mut p = Probe::new();
    p.update(
        "kv_put",
        Encode!(&"k".to_string(), &"v".to_string()).unwrap(),
    )
    .unwrap();
    for _ in 0..3 {
        p.update("increment", Encode!().unwrap()).unwrap();
    }
    p.emu
        .upgrade_canister(
            p.id,
            &wasm("probe"),
            Encode!(&Some("up".to_string())).unwrap(),
            None,
        )
        .unwrap();
    let lifecycle = Decode!(
        &p.query("lifecycle", Encode!().unwrap()).unwrap(),
        Lifecycle
    )
    .unwrap();
    assert_eq!(lifecycle.pre_upgrade_runs, 1);
    assert_eq!(lifecycle.post_upgrade_runs, 1);
    assert_eq!(lifecycle.restored_counter, Some(3));
    assert_eq!(lifecycle.init_arg, None, "the heap starts afresh");
    assert_eq!(lifecycle.post_upgrade_arg, Some("up".into()));
    let kv = Decode!(
        &p.query("kv_get", Encode!(&"k".to_string()).unwrap())
            .unwrap(),
        Option<String>
    )
    .unwrap();
    assert_eq!(kv.as_deref(), Some("v"));
}

#[test]
fn should_leave_the_canister_untouched_when_an_upgrade_traps() {
    let mut p = Probe::new();
    p.update(
        "kv_put",
        Encode!(&"k".to_string(), &"v".to_string()).unwrap(),
    )
    .unwrap();
    p.update("increment", Encode!().unwrap()).unwrap();
    let before = p.state();
    let r = p.emu.upgrade_canister(
        p.id,
        &wasm("probe"),
        Encode!(&Some("trap".to_string())).unwrap(),
        None,
    );
    let err = r.expect_err("post_upgrade traps");
    assert_eq!(err.error_code, Some(ErrorCode::CanisterCalledTrap));
    assert_eq!(
        p.state(),
        before,
        "heap and stable memory are as before the upgrade"
    );
    let lifecycle = Decode!(
        &p.query("lifecycle", Encode!().unwrap()).unwrap(),
        Lifecycle
    )
    .unwrap();
    assert_eq!(
        lifecycle.pre_upgrade_runs, 0,
        "the pre_upgrade of the failed upgrade left nothing"
    );
}

#[test]
fn should_wipe_everything_on_reinstall_and_refuse_install_on_a_non_empty_canister() {
    let mut p = Probe::new();
    p.update(
        "kv_put",
        Encode!(&"k".to_string(), &"v".to_string()).unwrap(),
    )
    .unwrap();
    let err = p
        .emu
        .install_canister(
            p.id,
            &wasm("probe"),
            Encode!(&None::<String>).unwrap(),
            None,
        )
        .unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterNonEmpty));
    p.emu
        .reinstall_canister(
            p.id,
            &wasm("probe"),
            Encode!(&None::<String>).unwrap(),
            None,
        )
        .unwrap();
    assert_eq!(p.state().kv_len, 0);
}

#[test]
fn should_trap_on_stable_memory_access_out_of_bounds() {
    let mut p = Probe::new();
    let size = Decode!(&p.query("stable_size", Encode!().unwrap()).unwrap(), u64).unwrap();
    let r = p.query("stable_read", Encode!(&(size * 65_536), &1u64).unwrap());
    assert_code(r, ErrorCode::CanisterTrapped, "stable memory out of bounds");
}

#[test]
fn should_check_controllers_for_install_and_status() {
    let mut p = Probe::new();
    let err = p
        .emu
        .upgrade_canister(
            p.id,
            &wasm("probe"),
            Encode!(&None::<String>).unwrap(),
            Some(USER),
        )
        .unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterInvalidController));
    // A canister that is not a controller cannot read another canister's status.
    let other = p.emu.create_canister();
    let r = Decode!(&p.update("mgmt_canister_status", Encode!(&other).unwrap()).unwrap(), Result<StatusSummary, String>).unwrap();
    assert!(r.unwrap_err().contains("Only controllers"));
}

// ----- Management canister -------------------------------------------------------------

#[test]
fn should_create_and_install_a_canister_from_a_canister() {
    let mut p = Probe::new();
    let args = CreateAndInstallArgs {
        wasm_module: wasm("probe"),
        arg: Encode!(&None::<String>).unwrap(),
        cycles: 1_000_000_000_000,
    };
    let created = Decode!(&p.update("mgmt_create_and_install", Encode!(&args).unwrap()).unwrap(), Result<Principal, String>)
        .unwrap()
        .expect("created");
    assert_eq!(
        p.emu.get_subnet(created),
        p.emu.get_subnet(p.id),
        "created on the caller's subnet"
    );
    let status = p.emu.canister_status(created).unwrap();
    assert_eq!(status.controllers, vec![p.id]);
    // ic-cdk attaches the creation fee on top of the requested cycles; the new
    // canister keeps those, less what its installation cost.
    assert!(
        status.cycles <= 1_000_000_000_000 && status.cycles > 999_000_000_000,
        "{}",
        status.cycles
    );
    let r = Decode!(&p.update("mgmt_canister_status", Encode!(&created).unwrap()).unwrap(), Result<StatusSummary, String>).unwrap();
    assert_eq!(r.unwrap().status, "running");
}

#[test]
fn should_derive_and_sign_exactly_as_the_ic_so_signatures_verify_offline() {
    let mut p = Probe::new();
    let path = vec![ByteBuf::from(b"stratros".to_vec())];
    let pk = Decode!(
        &p.update("mgmt_ecdsa_public_key", Encode!(&PublicKeyArgs { key_name: "key_1".into(), derivation_path: path.clone() }).unwrap()).unwrap(),
        Result<ByteBuf, String>
    )
    .unwrap()
    .unwrap();
    let digest = [9u8; 32];
    let sig = Decode!(
        &p.update("mgmt_sign_with_ecdsa", Encode!(&SignArgs { key_name: "key_1".into(), derivation_path: path.clone(), message: digest.to_vec() }).unwrap()).unwrap(),
        Result<ByteBuf, String>
    )
    .unwrap()
    .unwrap();
    let key = ic_secp256k1::PublicKey::deserialize_sec1(&pk).unwrap();
    assert!(key.verify_ecdsa_signature_prehashed(&digest, &sig));

    // The same key, derived offline from the emulator's master public key.
    let master = p
        .emu
        .keys()
        .master_public_keys()
        .into_iter()
        .find(|k| k.scheme == "ecdsa_secp256k1" && k.key_name == "key_1")
        .unwrap();
    let master =
        ic_secp256k1::PublicKey::deserialize_sec1(&hex::decode(master.public_key_hex).unwrap())
            .unwrap();
    let derivation = ic_secp256k1::DerivationPath::from_canister_id_and_path(
        p.id.as_slice(),
        &[b"stratros".to_vec()],
    );
    let (derived, _) = master.derive_subkey(&derivation);
    assert_eq!(derived.serialize_sec1(true), pk.into_vec());

    // Ed25519.
    let pk = Decode!(
        &p.update("mgmt_schnorr_public_key", Encode!(&SchnorrAlgo::Ed25519, &PublicKeyArgs { key_name: "test_key_1".into(), derivation_path: path.clone() }).unwrap()).unwrap(),
        Result<ByteBuf, String>
    ).unwrap().unwrap();
    let sig = Decode!(
        &p.update("mgmt_sign_with_schnorr", Encode!(&SchnorrAlgo::Ed25519, &SignArgs { key_name: "test_key_1".into(), derivation_path: path.clone(), message: b"hello".to_vec() }).unwrap()).unwrap(),
        Result<ByteBuf, String>
    ).unwrap().unwrap();
    let key = ic_ed25519::PublicKey::deserialize_raw(&pk).unwrap();
    assert!(key.verify_signature(b"hello", &sig).is_ok());

    // BIP340.
    let pk = Decode!(
        &p.update("mgmt_schnorr_public_key", Encode!(&SchnorrAlgo::Bip340Secp256k1, &PublicKeyArgs { key_name: "dfx_test_key".into(), derivation_path: path.clone() }).unwrap()).unwrap(),
        Result<ByteBuf, String>
    ).unwrap().unwrap();
    let sig = Decode!(
        &p.update("mgmt_sign_with_schnorr", Encode!(&SchnorrAlgo::Bip340Secp256k1, &SignArgs { key_name: "dfx_test_key".into(), derivation_path: path, message: digest.to_vec() }).unwrap()).unwrap(),
        Result<ByteBuf, String>
    ).unwrap().unwrap();
    let key = ic_secp256k1::PublicKey::deserialize_sec1(&pk).unwrap();
    assert!(key.verify_bip340_signature(&digest, &sig));
}

#[test]
fn should_refuse_unknown_key_names_and_charge_the_signature_fee() {
    let mut p = Probe::new();
    let r = Decode!(
        &p.update("mgmt_sign_with_ecdsa", Encode!(&SignArgs { key_name: "nope".into(), derivation_path: vec![], message: vec![0; 32] }).unwrap()).unwrap(),
        Result<ByteBuf, String>
    ).unwrap();
    assert!(r.is_err(), "{r:?}");
    let before = p.emu.cycle_balance(p.id);
    let r = Decode!(
        &p.update("mgmt_sign_with_ecdsa", Encode!(&SignArgs { key_name: "key_1".into(), derivation_path: vec![], message: vec![0; 32] }).unwrap()).unwrap(),
        Result<ByteBuf, String>
    ).unwrap();
    assert!(r.is_ok(), "{r:?}");
    let spent = before - p.emu.cycle_balance(p.id);
    assert!(
        spent >= 26_153_846_153,
        "key_1 signatures cost 26_153_846_153 cycles, spent {spent}"
    );
}

#[test]
fn should_derive_vetkd_keys_that_verify_as_bls_signatures() {
    let mut p = Probe::new();
    let context = b"ctx".to_vec();
    let pk = Decode!(
        &p.update("mgmt_vetkd_public_key", Encode!(&VetKdPublicKeyArgs { key_name: "key_1".into(), context: context.clone() }).unwrap()).unwrap(),
        Result<ByteBuf, String>
    ).unwrap().unwrap();
    let mut identity = vec![0u8; 48];
    identity[0] = 0xc0;
    let encrypted = Decode!(
        &p.update("mgmt_vetkd_derive_key", Encode!(&VetKdDeriveArgs { key_name: "key_1".into(), input: b"msg".to_vec(), context, transport_public_key: identity }).unwrap()).unwrap(),
        Result<ByteBuf, String>
    ).unwrap().unwrap();
    assert_eq!(encrypted.len(), 192);
    let key = ic_vetkeys::DerivedPublicKey::deserialize(&pk).unwrap();
    assert!(ic_vetkeys::verify_bls_signature(
        &key,
        b"msg",
        &encrypted[144..192]
    ));
}

#[test]
fn should_give_each_subnet_its_own_canister_range() {
    let mut emu = Emulator::new();
    let fiduciary = emu.subnet_of_kind(SubnetKind::Fiduciary);
    let a = emu.create_canister();
    let b = emu
        .create_canister_on_subnet(fiduciary, vec![Principal::anonymous()], 1_000_000_000_000)
        .unwrap();
    assert_ne!(emu.get_subnet(a), emu.get_subnet(b));
    assert_eq!(emu.get_subnet(b), Some(fiduciary));
}
