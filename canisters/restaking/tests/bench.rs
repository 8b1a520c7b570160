//! Instruction counts of restaking on the emulator (its own executions: the update and its
//! callbacks; staking's, the ledger's and timer tasks excluded), with 10 and with N
//! delegators (default 10,000; `RESTAKING_BENCH_DELEGATORS=200` for a quick look). Emulator
//! only: PocketIC does not report per-execution instruction counts.
//!
//!     bash scripts/build.sh restaking staking icrc_ledger
//!     cargo test -p restaking --test bench -- --nocapture
//!
//! The slash must be flat (O(1) in the number of delegators): the test asserts that the
//! 10,000-delegator slash costs at most 1.5x the 10-delegator one.

mod common;

use candid::{Encode, Nat, Principal};
use common::*;
use ic_testkit::EmulatorBackend;
use restaking::types::{DepositRewardsArgs, RequestSlashArgs, RestakingError, TokenAmount};

#[derive(Debug, Default)]
struct Figures {
    delegators: u64,
    execute_slash: u64,
    settle_per_position: u64,
    settle_runs: u64,
    deposit_rewards: u64,
    claim_rewards: u64,
}

/// The reply of an update and the instructions restaking spent on it.
fn measured<R: candid::CandidType + for<'de> serde::Deserialize<'de>>(
    backend: &EmulatorBackend,
    restaking: Principal,
    sender: Principal,
    method: &str,
    arg: Vec<u8>,
) -> (R, u64) {
    let emu = backend.emulator();
    let mark = emu.borrow().executions().len();
    let bytes = emu
        .borrow_mut()
        .update_call(restaking, sender, method, arg)
        .unwrap_or_else(|e| panic!("{method}: {e:?}"));
    let instructions = emu.borrow().executions()[mark..]
        .iter()
        .filter(|e| e.canister == restaking && !e.entry.contains("timer"))
        .map(|e| e.instructions)
        .sum();
    (
        candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: {e}")),
        instructions,
    )
}

fn measure(delegators: u64) -> Figures {
    let backend = EmulatorBackend::new();
    let s = Suite::new(&backend, delegators);
    let amount = 10 * E18;
    for u in &s.users {
        s.stake(*u, amount);
        s.delegate(*u, amount).expect("delegate");
    }
    s.allocate(10_000);
    s.ic.advance_time(DAY);
    s.ic.tick();

    // deposit_rewards: the update and the ledger's transfer_from callback.
    let deposit = 6 * E18;
    s.approve(funder(), s.restaking, deposit + FEE);
    let (r, deposit_rewards): (Result<(), RestakingError>, u64) = measured(
        &backend,
        s.restaking,
        funder(),
        "deposit_rewards",
        Encode!(&DepositRewardsArgs {
            avs: "confirmation".into(),
            token: s.eth,
            amount: Nat::from(deposit),
            period_seconds: None,
            created_at_time: None,
            memo: None,
        })
        .expect("encode"),
    );
    r.expect("deposit");
    // claim_rewards: one delegator, one token, with the payout transfer's callback.
    let (r, claim_rewards): (Result<Vec<TokenAmount>, RestakingError>, u64) = measured(
        &backend,
        s.restaking,
        s.users[0],
        "claim_rewards",
        Encode!(&None::<Principal>).expect("encode"),
    );
    r.expect("claim");

    // The slash itself: one event, O(pools of the operator).
    let r: Result<u64, RestakingError> = s.update(
        admin(),
        "request_slash",
        RequestSlashArgs {
            avs: "confirmation".into(),
            operator: operator(),
            bps: 1_000,
            reason: "bench".into(),
        },
    );
    let id = r.expect("request");
    let (r, execute_slash): (Result<(), RestakingError>, u64) = measured(
        &backend,
        s.restaking,
        admin(),
        "execute_slash",
        Encode!(&id).expect("encode"),
    );
    r.expect("execute");

    // Settlement: every position's loss journaled and sent to staking in batches.
    let mut settle = 0;
    let mut runs = 0;
    while runs < 1 + 2 * delegators / 200 {
        let ((), n): ((), u64) = measured(
            &backend,
            s.restaking,
            Principal::anonymous(),
            "process",
            Encode!().expect("encode"),
        );
        settle += n;
        runs += 1;
        if s.pending_ops() == 0 && s.pools_settled() {
            break;
        }
    }
    s.check_settled();
    Figures {
        delegators,
        execute_slash,
        settle_per_position: settle / delegators,
        settle_runs: runs,
        deposit_rewards,
        claim_rewards,
    }
}

#[test]
fn should_slash_in_constant_instructions_whatever_the_number_of_delegators() {
    let n: u64 = std::env::var("RESTAKING_BENCH_DELEGATORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let small = measure(10);
    let large = measure(n);
    println!(
        "| operation | {} delegators | {} delegators |",
        small.delegators, large.delegators
    );
    println!("|---|---|---|");
    println!(
        "| `execute_slash` (the slash) | {} | {} |",
        small.execute_slash, large.execute_slash
    );
    println!(
        "| settlement per slashed position (`process`, batched hook) | {} | {} |",
        small.settle_per_position, large.settle_per_position
    );
    println!(
        "| `process` runs to settle all | {} | {} |",
        small.settle_runs, large.settle_runs
    );
    println!(
        "| `deposit_rewards` (incl. transfer_from callback) | {} | {} |",
        small.deposit_rewards, large.deposit_rewards
    );
    println!(
        "| `claim_rewards` (one token, incl. transfer callback) | {} | {} |",
        small.claim_rewards, large.claim_rewards
    );
    println!("{small:?}\n{large:?}");
    assert!(
        large.execute_slash * 2 <= small.execute_slash * 3,
        "the slash grew with the delegators: {} -> {}",
        small.execute_slash,
        large.execute_slash
    );
}
