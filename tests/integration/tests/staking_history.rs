//! The real `staking` Wasm against the real `icrc_ledger` fixture Wasm: an outgoing transfer
//! whose retry is `TooOld` is settled from the ledger's ICRC-3 history (emulator only).
//!
//! Needs `staking.wasm` and `icrc_ledger.wasm` in `$STRATROS_WASM_DIR` (default `out/`):
//! `bash scripts/build.sh staking icrc_ledger`.

use std::time::Duration;

use candid::{CandidType, Encode, Nat, Principal};
use ic_testkit::{CanisterSpec, EmulatorBackend, IcBackend, IcBackendExt, wasm};
use icrc_ledger::types::{FaultMode, FaultRule, InitArgs as LedgerInit, LedgerArg};
use icrc_ledger_types::icrc::generic_value::ICRC3Value;
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use icrc_ledger_types::icrc3::blocks::{GetBlocksRequest, GetBlocksResult};
use stratros_staking_api::{
    AccountingView, Arg, AssetArg, InitArgs, PositionView, StakeArgs, StakeError, UnbondingView,
    UnstakeArgs, WithdrawReceipt,
};

const DAY: Duration = Duration::from_secs(24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);
const FEE: u128 = 10;

fn staker() -> Principal {
    Principal::self_authenticating(b"history staker")
}

fn minter() -> Principal {
    Principal::self_authenticating(b"minter")
}

struct Suite {
    ic: EmulatorBackend,
    btc: Principal,
    staking: Principal,
}

impl Suite {
    fn new() -> Self {
        let ic = EmulatorBackend::new();
        let arg = LedgerArg::Init(LedgerInit {
            token_name: "ckBTC".into(),
            token_symbol: "ckBTC".into(),
            decimals: 8,
            transfer_fee: Nat::from(FEE),
            minting_account: minter().into(),
            initial_balances: vec![(Account::from(staker()), Nat::from(100_000_000u64))],
            max_memo_length: Some(32),
        });
        let btc = ic
            .deploy(&CanisterSpec::default(), wasm("icrc_ledger"), arg)
            .expect("install the ledger");
        let arg = Arg::Init(InitArgs {
            restaking: None,
            unbonding_seconds: None,
            reward_period_seconds: None,
            slash_destination: None,
            assets: vec![AssetArg {
                ledger: btc,
                min_stake: Nat::from(1_000u32),
            }],
            reconcile_interval_seconds: Some(60),
        });
        let staking = ic
            .deploy(&CanisterSpec::default(), wasm("staking"), arg)
            .expect("install staking");
        ic.run_until_idle();
        Suite { ic, btc, staking }
    }

    fn update<R: CandidType + for<'de> serde::Deserialize<'de>>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> R {
        let bytes = self
            .ic
            .update_call(canister, Some(sender), method, arg)
            .unwrap_or_else(|e| panic!("{method} rejected: {e}"));
        candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: bad reply {e}"))
    }

    fn query<R: CandidType + for<'de> serde::Deserialize<'de>>(
        &mut self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> R {
        let bytes = self
            .ic
            .query_call(canister, None, method, arg)
            .unwrap_or_else(|e| panic!("{method} rejected: {e}"));
        candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: bad reply {e}"))
    }

    fn balance(&mut self, who: Account) -> u128 {
        let n: Nat = self.query(self.btc, "icrc1_balance_of", Encode!(&who).expect("encode"));
        u128::try_from(n.0).expect("u128")
    }

    fn accounting(&mut self) -> AccountingView {
        let mut v: Vec<AccountingView> =
            self.query(self.staking, "get_accounting", Encode!().expect("encode"));
        v.remove(0)
    }

    /// Staking's accounting invariant: its balance covers everything it owes but transfers
    /// in flight, and everything once nothing is pending.
    fn check(&mut self) {
        let a = self.accounting();
        let balance = self.balance(Account::from(self.staking));
        assert_eq!(a.ledger_balance, Some(Nat::from(balance)));
        let need = a.staked.clone()
            + a.unbonding.clone()
            + a.unpaid_rewards.clone()
            + a.in_flight.clone()
            + a.slashed_unsent.clone();
        assert_eq!(need, a.liabilities);
        assert!(balance >= need.clone() - a.in_flight.clone(), "{a:?}");
        if a.pending_outgoing == 0 {
            assert!(balance >= need, "{a:?}");
        }
    }

    fn inject(&mut self, mode: FaultMode, count: u32) {
        let rule = FaultRule {
            method: Some("icrc1_transfer".into()),
            mode,
            count,
        };
        let r: Result<(), String> = self.update(
            self.btc,
            Principal::anonymous(),
            "fixture_inject_fault",
            Encode!(&rule).expect("encode"),
        );
        r.expect("inject");
    }

    fn clear_faults(&mut self) {
        let _: () = self.update(
            self.btc,
            Principal::anonymous(),
            "fixture_clear_faults",
            Encode!().expect("encode"),
        );
    }

    fn reconcile(&mut self) {
        self.ic.advance_and_settle(Duration::from_secs(61));
        self.check();
    }

    fn block_count(&mut self) -> u64 {
        self.query(self.btc, "fixture_block_count", Encode!().expect("encode"))
    }

    /// Staking's payouts to the staker, read through the fixture's ICRC-3 `icrc3_get_blocks`.
    fn payouts_in_history(&mut self) -> usize {
        let args = vec![GetBlocksRequest {
            start: Nat::from(0u8),
            length: Nat::from(1_000u32),
        }];
        let r: GetBlocksResult = self.query(
            self.btc,
            "icrc3_get_blocks",
            Encode!(&args).expect("encode"),
        );
        assert!(r.archived_blocks.is_empty());
        let account =
            |p: Principal| ICRC3Value::Array(vec![ICRC3Value::Blob(p.as_slice().to_vec().into())]);
        let field = |v: &ICRC3Value, k: &str| match v {
            ICRC3Value::Map(m) => m.get(k).cloned(),
            _ => None,
        };
        r.blocks
            .iter()
            .filter_map(|b| field(&b.block, "tx"))
            .filter(|tx| {
                field(tx, "op") == Some(ICRC3Value::Text("xfer".into()))
                    && field(tx, "from") == Some(account(self.staking))
                    && field(tx, "to") == Some(account(staker()))
            })
            .count()
    }

    /// Stakes 10,000, unbonds it, waits out the unbonding: ready to withdraw.
    fn ready_to_withdraw(&mut self) {
        let (btc, who, staking) = (self.btc, staker(), self.staking);
        let approve = ApproveArgs {
            from_subaccount: None,
            spender: staking.into(),
            amount: Nat::from(10_000 + FEE),
            expected_allowance: None,
            expires_at: None,
            fee: None,
            memo: None,
            created_at_time: None,
        };
        let r: Result<Nat, ApproveError> = self.update(
            btc,
            who,
            "icrc2_approve",
            Encode!(&approve).expect("encode"),
        );
        r.expect("approve");
        let stake = StakeArgs {
            ledger: btc,
            amount: Nat::from(10_000u32),
            lock_seconds: None,
        };
        let r: Result<PositionView, StakeError> =
            self.update(staking, who, "stake", Encode!(&stake).expect("encode"));
        r.expect("stake");
        let unstake = UnstakeArgs {
            ledger: btc,
            amount: Nat::from(10_000u32),
        };
        let r: Result<UnbondingView, StakeError> =
            self.update(staking, who, "unstake", Encode!(&unstake).expect("encode"));
        r.expect("unstake");
        self.ic.advance_and_settle(DAY * 8);
        self.check();
    }

    fn withdraw(&mut self) -> Result<WithdrawReceipt, StakeError> {
        let (staking, btc) = (self.staking, self.btc);
        let r = self.update(
            staking,
            staker(),
            "withdraw",
            Encode!(&btc).expect("encode"),
        );
        self.check();
        r
    }

    /// The ledger refuses every retry for a few hours, then 25 h have passed since the
    /// withdrawal: its retry is now `TooOld`.
    fn refuse_until_too_old(&mut self) {
        self.inject(
            FaultMode::Reject {
                message: "ledger down".into(),
            },
            1_000,
        );
        for _ in 0..3 {
            self.ic.advance_and_settle(HOUR);
            self.check();
        }
        assert_eq!(self.accounting().in_flight, Nat::from(10_000u32));
        self.ic.advance_time(HOUR * 22);
        self.clear_faults();
    }
}

#[test]
fn should_settle_a_too_old_withdrawal_from_the_ledger_history_and_never_pay_twice() {
    let mut s = Suite::new();
    s.ready_to_withdraw();
    let before = s.balance(Account::from(staker()));
    s.inject(
        FaultMode::ApplyThenTrap {
            message: "applied, then boom".into(),
        },
        1,
    );
    let r = s.withdraw();
    assert!(matches!(r, Err(StakeError::Pending { .. })), "{r:?}");
    assert_eq!(
        s.balance(Account::from(staker())),
        before + 10_000 - FEE,
        "executed"
    );
    let blocks = s.block_count();
    s.refuse_until_too_old();
    s.reconcile();
    let a = s.accounting();
    assert_eq!(
        (a.in_flight.clone(), a.pending_outgoing),
        (Nat::from(0u8), 0),
        "{a:?}"
    );
    assert_eq!(
        s.balance(Account::from(staker())),
        before + 10_000 - FEE,
        "paid exactly once"
    );
    assert_eq!(s.balance(Account::from(s.staking)), 0);
    assert_eq!(s.block_count(), blocks, "nothing was sent again");
    assert_eq!(s.payouts_in_history(), 1);
    s.reconcile();
    assert_eq!(s.balance(Account::from(staker())), before + 10_000 - FEE);
}

#[test]
fn should_resend_a_too_old_withdrawal_that_never_executed_and_pay_it_once() {
    let mut s = Suite::new();
    s.ready_to_withdraw();
    let before = s.balance(Account::from(staker()));
    s.inject(
        FaultMode::Reject {
            message: "ledger down".into(),
        },
        1,
    );
    let r = s.withdraw();
    assert!(matches!(r, Err(StakeError::Pending { .. })), "{r:?}");
    assert_eq!(s.balance(Account::from(staker())), before, "not executed");
    let blocks = s.block_count();
    s.refuse_until_too_old();
    s.reconcile();
    let a = s.accounting();
    assert_eq!(
        (a.in_flight.clone(), a.pending_outgoing),
        (Nat::from(0u8), 0),
        "{a:?}"
    );
    assert_eq!(
        s.balance(Account::from(staker())),
        before + 10_000 - FEE,
        "re-sent and paid once"
    );
    assert_eq!(s.balance(Account::from(s.staking)), 0);
    assert_eq!(s.block_count(), blocks + 1, "one transfer");
    assert_eq!(s.payouts_in_history(), 1);
    s.reconcile();
    assert_eq!(s.balance(Account::from(staker())), before + 10_000 - FEE);
    assert_eq!(s.block_count(), blocks + 1);
}
