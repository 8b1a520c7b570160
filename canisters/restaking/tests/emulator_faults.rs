//! Failures that need the emulator's message control (`hold_messages`), which PocketIC's
//! API does not offer for inter-canister messages: staking applies an op but restaking's
//! bounded-wait call times out (`SYS_UNKNOWN`), and staking is upgraded while the request is
//! in its queue. Restaking must settle each op exactly once, reading `get_hook(op_id)` rather
//! than assuming the call did nothing. The suite itself is the backend-neutral one of
//! `scenarios.rs`, run on the emulator backend; `Suite::check` (the locked amounts agree,
//! counting the pending ops staking applied) runs after every step.
//!
//! How a call is made to time out after its callee applied it: the callee's inbox is held
//! until the very round of the call's deadline, then released. In that round the caller's
//! callback expires first (`SYS_UNKNOWN`), the request (not past its deadline) still executes
//! on the callee, and its reply comes too late and is dropped, as on the IC. Holding the
//! *caller* instead does not work: the emulator holds requests, not responses.
//!
//! Needs `bash scripts/build.sh restaking staking icrc_ledger`.

mod common;

use std::time::Duration;

use candid::{Encode, Nat, Principal};
use common::*;
use ic_testkit::{EmulatorBackend, IcBackendExt};
use icrc_ledger_types::icrc1::account::Account;
use restaking::types::{
    AvsView, DelegateArgs, DepositRewardsArgs, RequestSlashArgs, RestakingError,
};
use stratros_confirmation::Blob;
use stratros_staking_api::HookKindView;

fn delegate_args(s: &Suite, amount: u128) -> Vec<u8> {
    Encode!(&DelegateArgs {
        operator: operator(),
        ledger: s.eth,
        amount: Nat::from(amount),
    })
    .expect("encode")
}

/// Staking is upgraded while restaking's lock request waits in its queue: the new version
/// executes it and restaking settles it normally.
#[test]
fn should_settle_a_lock_sent_to_staking_before_an_upgrade() {
    let backend = EmulatorBackend::new();
    let s = Suite::new(&backend, 1);
    let amount = 10 * E18;
    s.stake(s.users[0], amount);
    let emu = backend.emulator();
    emu.borrow_mut().hold_messages(s.staking);
    let call = emu
        .borrow_mut()
        .submit_call(
            s.restaking,
            s.users[0],
            "delegate",
            delegate_args(&s, amount),
        )
        .expect("submit");
    emu.borrow_mut().tick();
    emu.borrow_mut().tick();
    s.upgrade_staking();
    emu.borrow_mut().release_messages(s.staking);
    let reply = emu.borrow_mut().await_call(call).expect("delegate replied");
    let r: Result<u64, RestakingError> = candid::decode_one(&reply).expect("decode");
    r.expect("delegated through the upgraded staking");
    s.check_settled();
    assert_eq!(s.staking_locked(s.users[0]), amount);
}

/// The bounded-wait timeout of restaking's calls (the IC's default for `Call::bounded_wait`).
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

fn now_ns(backend: &EmulatorBackend) -> u64 {
    let t = backend.emulator().borrow().time();
    t.duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64
}

fn deposit_args(s: &Suite, amount: u128, key: Option<(u64, &[u8])>) -> Vec<u8> {
    Encode!(&DepositRewardsArgs {
        avs: "confirmation".into(),
        token: s.eth,
        amount: Nat::from(amount),
        period_seconds: None,
        created_at_time: key.map(|(t, _)| t),
        memo: key.map(|(_, m)| Blob(m.to_vec())),
    })
    .expect("encode")
}

fn deposited(s: &Suite) -> u128 {
    let v: Option<AvsView> =
        s.ic.query(s.restaking, "get_avs", "confirmation".to_string())
            .expect("get_avs");
    v.expect("avs")
        .rewards_deposited
        .iter()
        .map(|t| nat(&t.amount))
        .sum()
}

/// One delegator, the confirmation AVS allocated, the funder's allowance for `amount`.
fn funded_suite(backend: &EmulatorBackend, amount: u128) -> Suite<'_> {
    let s = Suite::new(backend, 1);
    s.stake(s.users[0], 10 * E18);
    s.delegate(s.users[0], 10 * E18).expect("delegate");
    s.allocate(10_000);
    s.ic.advance_time(DAY);
    s.ic.tick();
    s.approve(funder(), s.restaking, amount + FEE);
    s
}

/// The ledger is unreachable (its inbox held) until restaking's bounded wait expires:
/// `deposit_rewards` answers `Pending`, with the op journaled and nothing credited. Once the
/// ledger is back, the caller repeats the request with the same `created_at_time` and memo:
/// restaking retries the same journaled pull and credits it once; a further repeat credits
/// nothing and pulls nothing.
#[test]
fn should_credit_a_deposit_once_when_its_pull_was_lost_and_the_caller_repeats_it() {
    let backend = EmulatorBackend::new();
    let amount = 6 * E18;
    let s = funded_suite(&backend, amount);
    let restaking_account = Account::from(s.restaking);
    let held = s.balance(restaking_account);
    let key = (now_ns(&backend), &b"hub forward 1"[..]);
    let emu = backend.emulator();
    emu.borrow_mut().hold_messages(s.eth);
    let call = emu
        .borrow_mut()
        .submit_call(
            s.restaking,
            funder(),
            "deposit_rewards",
            deposit_args(&s, amount, Some(key)),
        )
        .expect("submit");
    emu.borrow_mut().tick();
    emu.borrow_mut()
        .advance_time(CALL_TIMEOUT + Duration::from_secs(1));
    emu.borrow_mut().tick();
    let reply = emu.borrow_mut().await_call(call).expect("deposit replied");
    let r: Result<(), RestakingError> = candid::decode_one(&reply).expect("decode");
    assert!(matches!(r, Err(RestakingError::Pending { .. })), "{r:?}");
    // The ledger is still unreachable: nothing moved, the pull stays journaled.
    assert_eq!(s.balance(restaking_account), held);
    assert_eq!(deposited(&s), 0);
    assert_eq!(s.pending_ops(), 1, "the pull stays journaled");
    emu.borrow_mut().release_messages(s.eth);

    // The caller repeats the request with the same key until it settles: the journaled pull
    // is retried (by the repeat, or by restaking's timer when it comes first: the repeat then
    // answers `Pending` while that retry is in flight), the same ledger transaction each
    // time, and the tokens are credited once.
    let repeat = || -> Result<(), RestakingError> {
        s.update(
            funder(),
            "deposit_rewards",
            candid::decode_one::<DepositRewardsArgs>(&deposit_args(&s, amount, Some(key)))
                .expect("decode"),
        )
    };
    let mut r = repeat();
    for _ in 0..3 {
        if r.is_ok() {
            break;
        }
        assert!(matches!(r, Err(RestakingError::Pending { .. })), "{r:?}");
        s.ic.tick_n(3);
        r = repeat();
    }
    r.expect("the repeated deposit settles");
    assert_eq!(s.balance(restaking_account), held + amount, "pulled once");
    assert_eq!(deposited(&s), amount);
    assert_eq!(s.pending_ops(), 0);
    // Once more: already credited, nothing pulled.
    repeat().expect("an idempotent repeat");
    assert_eq!(s.balance(restaking_account), held + amount);
    assert_eq!(deposited(&s), amount);
    s.check_settled();
}

/// The ledger applies restaking's pull but the answer comes too late (the bounded wait
/// expires at the very round the ledger executes it: `SYS_UNKNOWN`), as the hub's forwarding
/// calls it (no idempotency key). Restaking answers `Pending` with the tokens already in its
/// account; its timer retries the journaled pull with the same `created_at_time` and memo,
/// the ledger answers `Duplicate`, and the tokens are credited exactly once.
#[test]
fn should_credit_a_deposit_once_when_the_ledger_applied_it_but_the_answer_was_lost() {
    let backend = EmulatorBackend::new();
    let amount = 6 * E18;
    let s = funded_suite(&backend, amount);
    let restaking_account = Account::from(s.restaking);
    let held = s.balance(restaking_account);
    let emu = backend.emulator();
    emu.borrow_mut().hold_messages(s.eth);
    let call = emu
        .borrow_mut()
        .submit_call(
            s.restaking,
            funder(),
            "deposit_rewards",
            deposit_args(&s, amount, None),
        )
        .expect("submit");
    // Restaking runs in this round, at `sent`: its call's deadline is `sent + 300 s`.
    let sent = now_ns(&backend);
    emu.borrow_mut().tick();
    let elapsed = now_ns(&backend) - sent;
    emu.borrow_mut()
        .advance_time(CALL_TIMEOUT - Duration::from_nanos(elapsed));
    // At the deadline exactly: the callback expires (SYS_UNKNOWN first in the queue) and the
    // request, not yet past its deadline, still executes on the ledger.
    emu.borrow_mut().release_messages(s.eth);
    let reply = emu.borrow_mut().await_call(call).expect("deposit replied");
    let r: Result<(), RestakingError> = candid::decode_one(&reply).expect("decode");
    let Err(RestakingError::Pending { message, .. }) = r else {
        panic!("expected Pending, got {r:?}");
    };
    assert!(
        message.contains("imeout") || message.contains("nknown"),
        "{message}"
    );
    assert_eq!(
        s.balance(restaking_account),
        held + amount,
        "the ledger applied it"
    );
    assert_eq!(deposited(&s), 0, "not credited while unknown");

    // The timer's retry: the same transaction, answered `Duplicate`, credited once.
    s.process();
    assert_eq!(s.pending_ops(), 0);
    assert_eq!(deposited(&s), amount);
    assert_eq!(s.balance(restaking_account), held + amount, "pulled once");
    let owed = s.owed(s.users[0]) + s.commission_owed();
    assert!(owed <= amount && owed + 2 >= amount, "{owed}");
    // An upgrade replays the same single credit.
    s.upgrade_restaking();
    assert_eq!(deposited(&s), amount);
    s.check_settled();
}

/// Submits `method` to restaking with `callee`'s inbox held, runs restaking's round (it sends
/// its bounded-wait call to `callee`), then releases `callee` in the round of that call's
/// deadline: the callee applies the request, restaking's callback gets `SYS_UNKNOWN`.
fn call_applied_but_timed_out(
    backend: &EmulatorBackend,
    callee: Principal,
    restaking: Principal,
    sender: Principal,
    method: &str,
    arg: Vec<u8>,
) -> Vec<u8> {
    let emu = backend.emulator();
    emu.borrow_mut().run_until_idle();
    emu.borrow_mut().hold_messages(callee);
    let call = emu
        .borrow_mut()
        .submit_call(restaking, sender, method, arg)
        .expect("submit");
    let sent = now_ns(backend);
    emu.borrow_mut().tick();
    let elapsed = now_ns(backend) - sent;
    emu.borrow_mut()
        .advance_time(CALL_TIMEOUT - Duration::from_nanos(elapsed));
    emu.borrow_mut().release_messages(callee);
    emu.borrow_mut().await_call(call).expect("replied")
}

/// The lock is applied by staking, its answer is lost (restaking's callback times out):
/// restaking reports `Pending`, then settles the op from staking's record, once.
#[test]
fn should_settle_a_lock_from_stakings_record_after_a_timeout() {
    let backend = EmulatorBackend::new();
    let s = Suite::new(&backend, 2);
    let amount = 10 * E18;
    s.stake(s.users[0], amount);
    s.check_settled();
    let reply = call_applied_but_timed_out(
        &backend,
        s.staking,
        s.restaking,
        s.users[0],
        "delegate",
        delegate_args(&s, amount),
    );
    let r: Result<u64, RestakingError> = candid::decode_one(&reply).expect("decode");
    let Err(RestakingError::Pending { op_id, message }) = r else {
        panic!("expected Pending, got {r:?}");
    };
    assert!(
        message.contains("imeout") || message.contains("nknown"),
        "{message}"
    );
    // Staking applied it; restaking does not count it yet, and keeps the op journaled.
    assert_eq!(s.staking_locked(s.users[0]), amount);
    assert_eq!(s.restaking_locked(s.users[0]), 0);
    assert_eq!(s.pending_ops(), 1);
    let applied = s.hook(op_id).expect("staking applied the lock");
    assert_eq!(applied.kind, HookKindView::Lock);
    s.check();
    // Settled from staking's record: the delegation takes effect, and staking's record is
    // still the first and only one (the lock was not applied again).
    s.process();
    s.check_settled();
    assert_eq!(s.restaking_locked(s.users[0]), amount);
    assert_eq!(s.staking_locked(s.users[0]), amount);
    assert_eq!(
        s.hook(op_id).map(|h| h.event_index),
        Some(applied.event_index)
    );
    let d = s.staker(s.users[0]).delegations;
    assert_eq!(d.len(), 1);
    assert_eq!(nat(&d[0].amount), amount);
    // Retrying again changes nothing, also after an upgrade (the journal is replayed).
    s.process();
    s.upgrade_restaking();
    s.process();
    s.check_settled();
    assert_eq!(s.staking_locked(s.users[0]), amount);
}

/// A batch of slashes is applied by staking but the answer times out: the next run reads
/// each op's record and settles it without sending the batch again; staking took each loss
/// once, and the losses it took equal the slash restaking recorded.
#[test]
fn should_settle_a_slash_batch_once_after_a_timeout() {
    let backend = EmulatorBackend::new();
    let s = Suite::new(&backend, 3);
    let amount = 10 * E18;
    for u in &s.users {
        s.stake(*u, amount);
        s.delegate(*u, amount).expect("delegate");
        s.check_settled();
    }
    s.allocate(10_000);
    s.pass_time(DAY);
    s.check_settled();
    let r: Result<u64, RestakingError> = s.update(
        admin(),
        "request_slash",
        RequestSlashArgs {
            avs: "confirmation".into(),
            operator: operator(),
            bps: 1_000,
            reason: "test".into(),
        },
    );
    let id = r.expect("request");
    let r: Result<(), RestakingError> = s.update(admin(), "execute_slash", id);
    r.expect("execute");
    // Slashed in restaking, nothing settled yet: staking still holds everything.
    s.check();
    assert_eq!(s.slashes_recorded(), 3 * (amount / 10));
    assert_eq!(s.slashes_taken_by_staking(), 0);
    let reply = call_applied_but_timed_out(
        &backend,
        s.staking,
        s.restaking,
        Principal::anonymous(),
        "process",
        Encode!().expect("encode"),
    );
    let () = candid::decode_one(&reply).expect("decode");
    // Staking took the losses; restaking still has them journaled, as unknown.
    let ops = s.pending_op_views();
    assert_eq!(ops.len(), 3, "{ops:?}");
    assert!(ops.iter().all(|o| o.kind == "slash"), "{ops:?}");
    let after_slash = amount - amount / 10;
    for u in &s.users {
        assert_eq!(s.staking_staked(*u), after_slash);
        assert_eq!(s.staking_locked(*u), after_slash);
        assert_eq!(
            s.restaking_locked(*u),
            amount,
            "the loss is still journaled"
        );
    }
    let records: Vec<_> = ops
        .iter()
        .map(|o| s.hook(o.op_id).expect("staking applied the slash"))
        .collect();
    s.check();
    s.process();
    s.check_settled();
    for (u, h) in s.users.iter().zip(&records) {
        assert_eq!(s.staking_staked(*u), after_slash, "a loss was taken twice");
        assert_eq!(s.staking_locked(*u), after_slash);
        assert_eq!(s.restaking_locked(*u), after_slash);
        assert_eq!(s.hook(h.op_id).map(|x| x.event_index), Some(h.event_index));
    }
    assert_eq!(s.slashes_taken_by_staking(), 3 * (amount / 10));
    // An upgrade of restaking replays the same settled journal: nothing is sent again.
    s.upgrade_restaking();
    s.process();
    s.check_settled();
    assert_eq!(s.slashes_taken_by_staking(), 3 * (amount / 10));
}
