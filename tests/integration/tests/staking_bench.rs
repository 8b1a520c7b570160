//! Instructions the staking canister spends per operation (its own executions only: the
//! update, its callbacks; the ledger's executions are excluded), with 10 and with 10,000
//! stakers. Target: under 2 M each, flat in the number of stakers.
//!
//!     bash scripts/build.sh staking icrc_ledger
//!     cargo test --release -p stratros-integration --test staking_bench -- --nocapture
//!
//! The 10,000-staker run stakes 10,000 real positions through the real ledger Wasm.

use candid::{CandidType, Encode, Nat, Principal};
use ic_emulator::Emulator;
use icrc_ledger::types::{InitArgs as LedgerInit, LedgerArg};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use stratros_integration::wasm;
use stratros_staking_api::{
    Arg, AssetArg, FundRewardsArgs, HookArgs, HookError, HookReceipt, InitArgs, PositionView,
    StakeArgs, StakeError, UnbondingView, UnstakeArgs, WithdrawReceipt,
};

const TARGET: u64 = 2_000_000;
const FEE: u128 = 10;

fn user(n: u64) -> Principal {
    Principal::self_authenticating(format!("bench staker {n}"))
}

fn restaking() -> Principal {
    Principal::self_authenticating(b"restaking canister")
}

struct Bench {
    emu: Emulator,
    ledger: Principal,
    staking: Principal,
}

impl Bench {
    fn call<R: CandidType + for<'de> serde::Deserialize<'de>>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> (R, u64) {
        let mark = self.emu.executions().len();
        let bytes = self
            .emu
            .update_call(canister, sender, method, arg)
            .unwrap_or_else(|e| panic!("{method} rejected: {e:?}"));
        let instructions = self.emu.executions()[mark..]
            .iter()
            .filter(|e| e.canister == self.staking && !e.entry.contains("timer"))
            .inspect(|e| {
                if std::env::var_os("STAKING_BENCH_VERBOSE").is_some() {
                    println!("  {method}: {} {}", e.entry, e.instructions);
                }
            })
            .map(|e| e.instructions)
            .sum();
        (
            candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: {e}")),
            instructions,
        )
    }

    fn approve(&mut self, who: Principal, amount: u128) {
        let arg = ApproveArgs {
            from_subaccount: None,
            spender: self.staking.into(),
            amount: Nat::from(amount),
            expected_allowance: None,
            expires_at: None,
            fee: None,
            memo: None,
            created_at_time: None,
        };
        let (r, _): (Result<Nat, ApproveError>, u64) = self.call(
            self.ledger,
            who,
            "icrc2_approve",
            Encode!(&arg).expect("encode"),
        );
        r.expect("approve");
    }

    fn stake(&mut self, who: Principal, amount: u128) -> u64 {
        self.approve(who, amount + FEE);
        let arg = StakeArgs {
            ledger: self.ledger,
            amount: Nat::from(amount),
            lock_seconds: Some(365 * 24 * 3600),
        };
        let (r, n): (Result<PositionView, StakeError>, u64) =
            self.call(self.staking, who, "stake", Encode!(&arg).expect("encode"));
        r.expect("stake");
        if std::env::var_os("STAKING_BENCH_VERBOSE").is_some() {
            for (_, l) in self.emu.take_logs() {
                println!("    {l}");
            }
        }
        n
    }
}

#[derive(Debug, Default)]
struct Figures {
    stake: u64,
    unstake: u64,
    withdraw: u64,
    claim_rewards: u64,
    lock: u64,
    unlock: u64,
    slash: u64,
}

fn measure(stakers: u64) -> Figures {
    let mut emu = Emulator::new();
    let ledger = emu.create_canister();
    let mut balances: Vec<(Account, Nat)> = (0..stakers)
        .map(|n| (Account::from(user(n)), Nat::from(1_000_000_000u64)))
        .collect();
    balances.push((
        Account::from(user(u64::MAX)),
        Nat::from(1_000_000_000_000u64),
    ));
    let arg = LedgerArg::Init(LedgerInit {
        token_name: "ckBTC".into(),
        token_symbol: "ckBTC".into(),
        decimals: 8,
        transfer_fee: Nat::from(FEE),
        minting_account: Principal::self_authenticating(b"minter").into(),
        initial_balances: balances,
        max_memo_length: Some(32),
    });
    emu.install_canister(
        ledger,
        &wasm("icrc_ledger"),
        Encode!(&arg).expect("encode"),
        None,
    )
    .expect("install ledger");
    let staking = emu.create_canister();
    let arg = Arg::Init(InitArgs {
        restaking: Some(restaking()),
        unbonding_seconds: Some(60),
        reward_period_seconds: Some(24 * 3600),
        slash_destination: None,
        assets: vec![AssetArg {
            ledger,
            min_stake: Nat::from(1_000u32),
        }],
        reconcile_interval_seconds: Some(3600),
    });
    emu.install_canister(
        staking,
        &wasm("staking"),
        Encode!(&arg).expect("encode"),
        None,
    )
    .expect("install staking");
    emu.run_until_idle();
    let mut b = Bench {
        emu,
        ledger,
        staking,
    };
    // A funded reward stream, and `stakers - 1` other positions.
    let funder = user(u64::MAX);
    b.approve(funder, 1_000_000_000 + FEE);
    let (r, _): (Result<Nat, StakeError>, u64) = b.call(
        staking,
        funder,
        "fund_rewards",
        Encode!(&FundRewardsArgs {
            ledger,
            amount: Nat::from(1_000_000_000u64)
        })
        .expect("encode"),
    );
    r.expect("fund");
    for n in 1..stakers {
        b.stake(user(n), 100_000);
        b.emu.take_executions();
    }
    let me = user(0);
    let mut f = Figures {
        stake: b.stake(me, 1_000_000),
        ..Default::default()
    };
    b.emu
        .advance_time(std::time::Duration::from_secs(365 * 24 * 3600 + 7200));
    let (r, n): (Result<UnbondingView, StakeError>, u64) = b.call(
        staking,
        me,
        "unstake",
        Encode!(&UnstakeArgs {
            ledger,
            amount: Nat::from(400_000u32)
        })
        .expect("encode"),
    );
    r.expect("unstake");
    f.unstake = n;
    b.emu.advance_time(std::time::Duration::from_secs(61));
    let (r, n): (Result<WithdrawReceipt, StakeError>, u64) =
        b.call(staking, me, "withdraw", Encode!(&ledger).expect("encode"));
    r.expect("withdraw");
    f.withdraw = n;
    let (r, n): (
        Result<Vec<stratros_staking_api::ClaimReceipt>, StakeError>,
        u64,
    ) = b.call(staking, me, "claim_rewards", Encode!().expect("encode"));
    assert_eq!(r.expect("claim").len(), 1);
    f.claim_rewards = n;
    for (i, method) in [
        "restaking_lock",
        "restaking_unlock",
        "restaking_lock",
        "restaking_slash",
    ]
    .iter()
    .enumerate()
    {
        let arg = HookArgs {
            op_id: i as u64,
            owner: me,
            ledger,
            amount: Nat::from(100_000u32),
        };
        let (r, n): (Result<HookReceipt, HookError>, u64) =
            b.call(staking, restaking(), method, Encode!(&arg).expect("encode"));
        r.expect(method);
        match i {
            0 => f.lock = n,
            1 => f.unlock = n,
            3 => f.slash = n,
            _ => {}
        }
    }
    f
}

fn check(small: &Figures, large: &Figures, large_n: u64) {
    let pairs = [
        ("stake", small.stake, large.stake),
        ("unstake", small.unstake, large.unstake),
        ("withdraw", small.withdraw, large.withdraw),
        ("claim_rewards", small.claim_rewards, large.claim_rewards),
        ("restaking_lock", small.lock, large.lock),
        ("restaking_unlock", small.unlock, large.unlock),
        ("restaking_slash", small.slash, large.slash),
    ];
    println!("| operation | instructions, 10 stakers | instructions, {large_n} stakers |");
    for (name, s, l) in pairs {
        println!("| {name} | {s} | {l} |");
        assert!(
            s < TARGET && l < TARGET,
            "{name}: {s} / {l} over the 2 M target"
        );
        // Flat: at most 50 % more with 1000x the stakers.
        assert!(l < s + s / 2, "{name}: {s} -> {l} is not flat");
    }
}

#[test]
fn staking_instructions_per_operation_are_under_target_and_flat() {
    let stakers: u64 = std::env::var("STAKING_BENCH_STAKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let small = measure(10);
    let large = measure(stakers);
    println!("stakers: 10 vs {stakers}");
    check(&small, &large, stakers);
}
