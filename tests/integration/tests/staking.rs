//! The real `staking` Wasm against the real `icrc_ledger` fixture Wasm.
//!
//! Every scenario runs on the emulator, and on PocketIC too when `POCKET_IC_BIN` is set
//! (`ic_testkit::backends_for_test`), except the one that needs the emulator's power to hold
//! a canister's messages (see its doc comment).
//!
//! After every step of every scenario: the staking canister's ledger balance covers
//! staked + unbonding + unpaid rewards + transfers in flight (+ slashed tokens not yet sent),
//! and the positions add up to the totals.
//!
//! Needs `staking.wasm` and `icrc_ledger.wasm` in `$STRATROS_WASM_DIR` (default `out/`):
//! `bash scripts/build.sh staking icrc_ledger`.

use std::time::Duration;

use candid::{CandidType, Encode, Nat, Principal};
use ic_testkit::{CanisterSpec, EmulatorBackend, IcBackend, IcBackendExt, backends_for_test, wasm};
use icrc_ledger::types::{FaultMode, FaultRule, InitArgs as LedgerInit, LedgerArg};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::TransferArg;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use icrc_ledger_types::icrc2::transfer_from::TransferFromError;
use stratros_staking_api::{
    AccountingView, Arg, AssetArg, AssetView, ClaimReceipt, FundRewardsArgs, HookArgs, HookError,
    HookReceipt, InitArgs, NotifyDepositArgs, PositionView, SlashDestination, StakeArgs,
    StakeError, UnbondingView, UnstakeArgs, UpgradeArgs, WithdrawReceipt,
};

const SEC: u64 = 1_000_000_000;
const DAY: Duration = Duration::from_secs(24 * 3600);
const BTC_FEE: u128 = 10;
const ETH_FEE: u128 = 2_000_000_000_000;

fn user(n: u64) -> Principal {
    Principal::self_authenticating(format!("staker {n}"))
}

fn restaking() -> Principal {
    Principal::self_authenticating(b"restaking canister")
}

fn minter() -> Principal {
    Principal::self_authenticating(b"minter")
}

fn treasury() -> Principal {
    Principal::self_authenticating(b"treasury")
}

fn slash_sink() -> Principal {
    Principal::self_authenticating(b"slash sink")
}

/// The suite on one backend: `B` is `dyn IcBackend` for the scenarios that run on every
/// backend, `EmulatorBackend` for the one that needs the emulator's own powers.
struct Suite<B: IcBackend + ?Sized> {
    ic: Box<B>,
    btc: Principal,
    eth: Principal,
    staking: Principal,
    staking_wasm: Vec<u8>,
    users: Vec<Principal>,
}

fn install_ledger<B: IcBackend + ?Sized>(
    ic: &B,
    symbol: &str,
    decimals: u8,
    fee: u128,
    balances: &[(Principal, u128)],
) -> Principal {
    let arg = LedgerArg::Init(LedgerInit {
        token_name: symbol.into(),
        token_symbol: symbol.into(),
        decimals,
        transfer_fee: Nat::from(fee),
        minting_account: minter().into(),
        initial_balances: balances
            .iter()
            .map(|(p, a)| (Account::from(*p), Nat::from(*a)))
            .collect(),
        max_memo_length: Some(32),
    });
    ic.deploy(&CanisterSpec::default(), wasm("icrc_ledger"), arg)
        .unwrap_or_else(|e| panic!("install {symbol} on {}: {e}", ic.name()))
}

impl<B: IcBackend + ?Sized> Suite<B> {
    fn new(ic: Box<B>, n_users: u64) -> Self {
        Self::with(ic, n_users, None)
    }

    fn with(ic: Box<B>, n_users: u64, slash: Option<SlashDestination>) -> Self {
        let users: Vec<Principal> = (0..n_users).map(user).collect();
        let mut btc_bal: Vec<(Principal, u128)> =
            users.iter().map(|u| (*u, 100_000_000u128)).collect();
        btc_bal.push((treasury(), 10_000_000_000));
        let big_eth = u128::from(u64::MAX) * 1_000;
        let mut eth_bal: Vec<(Principal, u128)> = users.iter().map(|u| (*u, big_eth)).collect();
        eth_bal.push((treasury(), big_eth));
        let btc = install_ledger(&*ic, "ckBTC", 8, BTC_FEE, &btc_bal);
        let eth = install_ledger(&*ic, "ckETH", 18, ETH_FEE, &eth_bal);
        let staking_wasm = wasm("staking");
        let arg = Arg::Init(InitArgs {
            restaking: Some(restaking()),
            unbonding_seconds: None,
            reward_period_seconds: Some(10 * 24 * 3600),
            slash_destination: slash,
            assets: vec![
                AssetArg {
                    ledger: btc,
                    min_stake: Nat::from(1_000u32),
                },
                AssetArg {
                    ledger: eth,
                    min_stake: Nat::from(10_000_000_000_000_000u64),
                },
            ],
            reconcile_interval_seconds: Some(60),
        });
        let staking = ic
            .deploy(&CanisterSpec::default(), staking_wasm.clone(), arg)
            .unwrap_or_else(|e| panic!("install staking on {}: {e}", ic.name()));
        ic.run_until_idle();
        let mut s = Suite {
            ic,
            btc,
            eth,
            staking,
            staking_wasm,
            users,
        };
        let assets: Vec<AssetView> = s.query("get_assets", Encode!().expect("encode"));
        assert!(
            assets.iter().all(|a| a.fee.is_some()),
            "metadata read at install: {assets:?}"
        );
        s.check();
        s
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
            .unwrap_or_else(|e| panic!("{method} rejected on {}: {e}", self.ic.name()));
        candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: bad reply {e}"))
    }

    fn query<R: CandidType + for<'de> serde::Deserialize<'de>>(
        &mut self,
        method: &str,
        arg: Vec<u8>,
    ) -> R {
        let bytes = self
            .ic
            .query_call(self.staking, None, method, arg)
            .unwrap_or_else(|e| panic!("{method} rejected on {}: {e}", self.ic.name()));
        candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: bad reply {e}"))
    }

    fn balance(&mut self, ledger: Principal, who: Account) -> u128 {
        let bytes = self
            .ic
            .query_call(
                ledger,
                None,
                "icrc1_balance_of",
                Encode!(&who).expect("encode"),
            )
            .expect("balance");
        let n: Nat = candid::decode_one(&bytes).expect("decode");
        u128::try_from(n.0).expect("u128")
    }

    fn approve(
        &mut self,
        ledger: Principal,
        from: Principal,
        amount: u128,
        expires_at: Option<u64>,
    ) {
        let arg = ApproveArgs {
            from_subaccount: None,
            spender: self.staking.into(),
            amount: Nat::from(amount),
            expected_allowance: None,
            expires_at,
            fee: None,
            memo: None,
            created_at_time: None,
        };
        let r: Result<Nat, ApproveError> = self.update(
            ledger,
            from,
            "icrc2_approve",
            Encode!(&arg).expect("encode"),
        );
        r.expect("approve");
    }

    fn stake(
        &mut self,
        ledger: Principal,
        who: Principal,
        amount: u128,
        lock: Option<u64>,
    ) -> Result<PositionView, StakeError> {
        let arg = StakeArgs {
            ledger,
            amount: Nat::from(amount),
            lock_seconds: lock,
        };
        let r = self.update(self.staking, who, "stake", Encode!(&arg).expect("encode"));
        self.check();
        r
    }

    fn approve_and_stake(
        &mut self,
        ledger: Principal,
        who: Principal,
        amount: u128,
    ) -> PositionView {
        let fee = if ledger == self.btc { BTC_FEE } else { ETH_FEE };
        self.approve(ledger, who, amount + fee, None);
        self.stake(ledger, who, amount, None).expect("stake")
    }

    fn unstake(
        &mut self,
        ledger: Principal,
        who: Principal,
        amount: u128,
    ) -> Result<UnbondingView, StakeError> {
        let arg = UnstakeArgs {
            ledger,
            amount: Nat::from(amount),
        };
        let r = self.update(self.staking, who, "unstake", Encode!(&arg).expect("encode"));
        self.check();
        r
    }

    fn withdraw(
        &mut self,
        ledger: Principal,
        who: Principal,
    ) -> Result<WithdrawReceipt, StakeError> {
        let r = self.update(
            self.staking,
            who,
            "withdraw",
            Encode!(&ledger).expect("encode"),
        );
        self.check();
        r
    }

    fn claim(&mut self, who: Principal) -> Result<Vec<ClaimReceipt>, StakeError> {
        let r = self.update(
            self.staking,
            who,
            "claim_rewards",
            Encode!().expect("encode"),
        );
        self.check();
        r
    }

    fn fund(&mut self, ledger: Principal, amount: u128) {
        let fee = if ledger == self.btc { BTC_FEE } else { ETH_FEE };
        self.approve(ledger, treasury(), amount + fee, None);
        let arg = FundRewardsArgs {
            ledger,
            amount: Nat::from(amount),
        };
        let r: Result<Nat, StakeError> = self.update(
            self.staking,
            treasury(),
            "fund_rewards",
            Encode!(&arg).expect("encode"),
        );
        r.expect("fund");
        self.check();
    }

    fn hook(
        &mut self,
        method: &str,
        caller: Principal,
        op_id: u64,
        owner: Principal,
        ledger: Principal,
        amount: u128,
    ) -> Result<HookReceipt, HookError> {
        let arg = HookArgs {
            op_id,
            owner,
            ledger,
            amount: Nat::from(amount),
        };
        let r = self.update(self.staking, caller, method, Encode!(&arg).expect("encode"));
        self.check();
        r
    }

    fn position(&mut self, who: Principal, ledger: Principal) -> Option<PositionView> {
        let v: Vec<PositionView> = self.query("get_position", Encode!(&who).expect("encode"));
        v.into_iter().find(|p| p.ledger == ledger)
    }

    fn accounting(&mut self) -> Vec<AccountingView> {
        self.query("get_accounting", Encode!().expect("encode"))
    }

    fn inject(&mut self, ledger: Principal, method: &str, mode: FaultMode, count: u32) {
        let rule = FaultRule {
            method: Some(method.into()),
            mode,
            count,
        };
        let r: Result<(), String> = self.update(
            ledger,
            Principal::anonymous(),
            "fixture_inject_fault",
            Encode!(&rule).expect("encode"),
        );
        r.expect("inject");
    }

    /// Lets the reconciliation timer run.
    fn reconcile(&mut self) {
        self.ic.advance_and_settle(Duration::from_secs(61));
        self.check();
    }

    /// Advances time, and runs one round so that canisters see the new time (PocketIC
    /// stamps a round's time on the state it executes).
    fn advance(&self, by: Duration) {
        self.ic.advance_and_tick(by);
    }

    fn upgrade(&mut self, arg: Option<UpgradeArgs>) {
        let wasm = self.staking_wasm.clone();
        self.ic
            .upgrade_encoded(
                self.staking,
                wasm,
                Encode!(&Some(Arg::Upgrade(arg))).expect("encode"),
                None,
            )
            .unwrap_or_else(|e| panic!("upgrade staking on {}: {e}", self.ic.name()));
        self.check();
    }

    /// The staking canister's certified data, read from the certificate of a query (as a
    /// client does).
    fn certified_data(&mut self) -> Vec<u8> {
        let page: stratros_staking_api::EventsPage = self.query(
            "get_events",
            Encode!(&stratros_staking_api::GetEventsArgs {
                start: 0,
                length: 1
            })
            .expect("encode"),
        );
        let certificate = page.certificate.expect("a query returns the certificate");
        ic_testkit::certified_data(&certificate, self.staking)
            .expect("the certificate holds the staking canister's certified data")
    }

    /// The invariants, after every step.
    fn check(&mut self) {
        let acc = self.accounting();
        let assets: Vec<AssetView> = self.query("get_assets", Encode!().expect("encode"));
        for a in &acc {
            let balance = self.balance(a.ledger, Account::from(self.staking));
            assert_eq!(a.ledger_balance, Some(Nat::from(balance)));
            let need = a.staked.clone()
                + a.unbonding.clone()
                + a.unpaid_rewards.clone()
                + a.in_flight.clone()
                + a.slashed_unsent.clone();
            assert_eq!(need, a.liabilities);
            // While an outgoing transfer's outcome is unknown (the ledger may have executed
            // it), its amount is either still in the balance or already delivered: the
            // balance covers everything else, and everything once nothing is pending.
            let settled_need = need.clone() - a.in_flight.clone();
            assert!(
                balance >= settled_need,
                "{}: balance {balance} < liabilities without in-flight {settled_need}: {a:?}",
                a.ledger
            );
            if a.pending_outgoing == 0 {
                assert!(
                    balance >= need,
                    "{}: balance {balance} < liabilities {need}: {a:?}",
                    a.ledger
                );
            }
            let asset = assets.iter().find(|x| x.ledger == a.ledger).expect("asset");
            assert_eq!(asset.total_staked, a.staked);
        }
        // Sum over positions = totals (every known staker).
        if self.users.len() <= 50 {
            let users = self.users.clone();
            for ledger in [self.btc, self.eth] {
                let mut staked = Nat::from(0u8);
                let mut unbonding = Nat::from(0u8);
                for u in &users {
                    if let Some(p) = self.position(*u, ledger) {
                        staked += p.staked;
                        for b in p.unbonding {
                            unbonding += b.amount;
                        }
                    }
                }
                let a = acc.iter().find(|a| a.ledger == ledger).expect("asset");
                assert_eq!(staked, a.staked, "sum of positions = total staked");
                assert_eq!(
                    unbonding, a.unbonding,
                    "sum of unbondings = total unbonding"
                );
            }
        }
    }
}

#[test]
fn stake_rewards_unstake_cancel_withdraw_claim() {
    for ic in backends_for_test("stake_rewards_unstake_cancel_withdraw_claim") {
        let mut s = Suite::new(ic, 3);
        let (a, b) = (s.users[0], s.users[1]);
        let btc = s.btc;
        s.approve_and_stake(btc, a, 1_000_000);
        s.approve(btc, b, 3_000_000 + BTC_FEE, None);
        let p = s
            .stake(btc, b, 3_000_000, Some(365 * 24 * 3600))
            .expect("locked stake");
        assert_eq!(p.weight_bps, 15_000, "a 1-year lock weighs 1.5x");
        s.fund(btc, 10_000_000);
        s.advance(DAY * 5);
        let pa = s.position(a, btc).expect("a").pending_rewards;
        let pb = s.position(b, btc).expect("b").pending_rewards;
        // 5 of 10 days of 10M over weights 1M : 4.5M.
        assert!(pa > 900_000u32 && pa < 910_000u32, "{pa}");
        assert!(pb > 4_000_000u32, "{pb}");

        // Claim pays all pending, minus the fee.
        let before = s.balance(btc, a.into());
        let receipts = s.claim(a).expect("claim");
        assert_eq!(receipts.len(), 1);
        let paid = u128::try_from(receipts[0].amount.0.clone()).expect("u128");
        assert_eq!(s.balance(btc, a.into()), before + paid - BTC_FEE);

        // A time-locked position cannot be unstaked.
        assert!(matches!(
            s.unstake(btc, b, 1_000),
            Err(StakeError::TimeLocked { .. })
        ));

        // Unstake, cancel, unstake, wait, withdraw.
        let u = s.unstake(btc, a, 400_000).expect("unstake");
        assert_eq!(u.seconds_left, 7 * 24 * 3600, "default 7 days");
        let r: Result<PositionView, StakeError> = s.update(
            s.staking,
            a,
            "cancel_unstake",
            Encode!(&u.id).expect("encode"),
        );
        assert_eq!(r.expect("cancel").staked, Nat::from(1_000_000u32));
        s.check();
        s.unstake(btc, a, 400_000).expect("unstake");
        assert_eq!(s.withdraw(btc, a), Err(StakeError::NothingToWithdraw));
        s.advance(DAY * 7);
        let before = s.balance(btc, a.into());
        let w = s.withdraw(btc, a).expect("withdraw");
        assert_eq!(w.amount, Nat::from(400_000u32));
        assert_eq!(s.balance(btc, a.into()), before + 400_000 - BTC_FEE);
        // The whole stream is paid out or owed; nothing is created.
        s.advance(DAY * 10);
        s.claim(a).expect("claim");
        s.claim(b).expect("claim");
        let acc = s.accounting();
        let btc_acc = acc.iter().find(|x| x.ledger == btc).expect("btc");
        assert!(
            btc_acc.unpaid_rewards < 100u32,
            "only rounding dust is left: {btc_acc:?}"
        );
    }
}

#[test]
fn bad_input_comes_back_typed() {
    for ic in backends_for_test("bad_input_comes_back_typed") {
        let mut s = Suite::new(ic, 2);
        let (a, btc, eth) = (s.users[0], s.btc, s.eth);
        s.approve(btc, a, 1_000_000, None);
        assert_eq!(
            s.stake(btc, a, 0, None),
            Err(StakeError::AmountTooSmall {
                min: Nat::from(1_000u32)
            })
        );
        assert_eq!(
            s.stake(btc, a, 999, None),
            Err(StakeError::AmountTooSmall {
                min: Nat::from(1_000u32)
            })
        );
        let unknown = Principal::from_slice(&[42; 10]);
        assert_eq!(
            s.stake(unknown, a, 5_000, None),
            Err(StakeError::UnknownAsset { ledger: unknown })
        );
        assert_eq!(
            s.stake(btc, Principal::anonymous(), 5_000, None),
            Err(StakeError::AnonymousCaller)
        );
        assert!(matches!(
            s.stake(btc, a, 5_000, Some(3 * 365 * 24 * 3600)),
            Err(StakeError::LockTooLong { .. })
        ));
        // Missing allowance: the ledger's error, typed.
        let b = s.users[1];
        assert_eq!(
            s.stake(btc, b, 5_000, None),
            Err(StakeError::TransferFrom(
                TransferFromError::InsufficientAllowance {
                    allowance: Nat::from(0u8)
                }
            ))
        );
        // Expired allowance.
        let soon = s.ic.time() + 10 * SEC;
        s.approve(btc, b, 1_000_000, Some(soon));
        s.advance(Duration::from_secs(11));
        assert!(matches!(
            s.stake(btc, b, 5_000, None),
            Err(StakeError::TransferFrom(
                TransferFromError::InsufficientAllowance { .. }
            ))
        ));
        // ckETH beyond u64 works exactly; beyond u128 is typed.
        let big = u128::from(u64::MAX) * 10;
        s.approve(eth, a, big + ETH_FEE, None);
        let p = s.stake(eth, a, big, None).expect("big ckETH stake");
        assert_eq!(p.staked, Nat::from(big));
        let huge = StakeArgs {
            ledger: eth,
            amount: Nat::from(u128::MAX) + Nat::from(1u8),
            lock_seconds: None,
        };
        let r: Result<PositionView, StakeError> =
            s.update(s.staking, a, "stake", Encode!(&huge).expect("encode"));
        assert!(matches!(r, Err(StakeError::AmountTooLarge { .. })));
        // Unauthorized hook caller.
        assert_eq!(
            s.hook("restaking_lock", a, 1, a, eth, 1),
            Err(HookError::Unauthorized { caller: a })
        );
        // Unstake more than staked.
        assert!(matches!(
            s.unstake(eth, a, big + 1),
            Err(StakeError::InsufficientStake { .. })
        ));
        // Controller only.
        let r: Result<AssetView, StakeError> = s.update(
            s.staking,
            a,
            "add_asset",
            Encode!(&AssetArg {
                ledger: unknown,
                min_stake: Nat::from(1u8)
            })
            .expect("encode"),
        );
        assert_eq!(r, Err(StakeError::NotController));
    }
}

#[test]
fn restaking_hooks_lock_unlock_slash_idempotently() {
    for ic in backends_for_test("restaking_hooks_lock_unlock_slash_idempotently") {
        let mut s = Suite::with(ic, 2, Some(SlashDestination::Account(slash_sink().into())));
        let (a, btc) = (s.users[0], s.btc);
        s.approve_and_stake(btc, a, 1_000_000);
        let r = s
            .hook("restaking_lock", restaking(), 7, a, btc, 600_000)
            .expect("lock");
        assert_eq!(r.locked, Nat::from(600_000u32));
        // Same op id, same args: same receipt, no second lock.
        let again = s
            .hook("restaking_lock", restaking(), 7, a, btc, 600_000)
            .expect("lock again");
        assert_eq!(again, r);
        assert_eq!(
            s.hook("restaking_lock", restaking(), 7, a, btc, 1),
            Err(HookError::OperationConflict { op_id: 7 })
        );
        assert!(matches!(
            s.hook("restaking_lock", restaking(), 8, a, btc, 500_000),
            Err(HookError::InsufficientStake { .. })
        ));
        // Locked stake cannot be unstaked.
        assert!(matches!(
            s.unstake(btc, a, 500_000),
            Err(StakeError::InsufficientStake { .. })
        ));
        s.unstake(btc, a, 400_000).expect("the free part");
        s.hook("restaking_unlock", restaking(), 9, a, btc, 100_000)
            .expect("unlock");
        let r = s
            .hook("restaking_slash", restaking(), 10, a, btc, 200_000)
            .expect("slash");
        assert_eq!(r.staked, Nat::from(400_000u32));
        s.ic.run_until_idle();
        s.check();
        assert_eq!(s.balance(btc, slash_sink().into()), 200_000 - BTC_FEE);
        assert!(matches!(
            s.hook("restaking_slash", restaking(), 11, a, btc, 400_000),
            Err(HookError::InsufficientLocked { .. })
        ));
    }
}

#[test]
fn slashing_burns_by_default() {
    for ic in backends_for_test("slashing_burns_by_default") {
        let mut s = Suite::new(ic, 1);
        let (a, eth) = (s.users[0], s.eth);
        let big = u128::from(u64::MAX) * 3;
        s.approve_and_stake(eth, a, big);
        s.hook("restaking_lock", restaking(), 1, a, eth, big)
            .expect("lock");
        s.hook("restaking_slash", restaking(), 2, a, eth, big / 2)
            .expect("slash");
        s.ic.run_until_idle();
        s.check();
        assert_eq!(s.balance(eth, s.staking.into()), big - big / 2);
    }
}

#[test]
fn deposit_subaccount_and_notify() {
    for ic in backends_for_test("deposit_subaccount_and_notify") {
        let mut s = Suite::new(ic, 1);
        let (a, btc) = (s.users[0], s.btc);
        let account: Account = s.query("deposit_account", Encode!(&a).expect("encode"));
        let t = TransferArg {
            from_subaccount: None,
            to: account,
            fee: None,
            created_at_time: None,
            memo: None,
            amount: Nat::from(50_000u32),
        };
        let r: Result<Nat, icrc_ledger_types::icrc1::transfer::TransferError> =
            s.update(btc, a, "icrc1_transfer", Encode!(&t).expect("encode"));
        r.expect("deposit");
        let arg = NotifyDepositArgs {
            ledger: btc,
            lock_seconds: None,
        };
        let r: Result<PositionView, StakeError> = s.update(
            s.staking,
            a,
            "notify_deposit",
            Encode!(&arg).expect("encode"),
        );
        assert_eq!(r.expect("notify").staked, Nat::from(50_000 - BTC_FEE));
        s.check();
        // Nothing left to sweep.
        let r: Result<PositionView, StakeError> = s.update(
            s.staking,
            a,
            "notify_deposit",
            Encode!(&arg).expect("encode"),
        );
        assert!(matches!(r, Err(StakeError::AmountTooSmall { .. })));
    }
}

#[test]
fn ledger_rejecting_or_trapping_on_stake_credits_exactly_once() {
    for mode in [
        FaultMode::Reject {
            message: "down".into(),
        },
        FaultMode::Trap {
            message: "boom".into(),
        },
        FaultMode::ApplyThenTrap {
            message: "applied, then boom".into(),
        },
    ] {
        for ic in backends_for_test("ledger_rejecting_or_trapping_on_stake_credits_exactly_once") {
            let mut s = Suite::new(ic, 1);
            let (a, btc) = (s.users[0], s.btc);
            s.approve(btc, a, 10_000 + BTC_FEE, None);
            s.inject(btc, "icrc2_transfer_from", mode.clone(), 1);
            let r = s.stake(btc, a, 10_000, None);
            assert!(
                matches!(r, Err(StakeError::Pending { .. })),
                "{mode:?}: {r:?}"
            );
            s.reconcile();
            let p = s.position(a, btc).expect("credited by reconciliation");
            assert_eq!(p.staked, Nat::from(10_000u32), "{mode:?}: credited once");
            assert_eq!(
                s.balance(btc, s.staking.into()),
                10_000,
                "{mode:?}: pulled once"
            );
            s.reconcile();
            assert_eq!(s.position(a, btc).expect("p").staked, Nat::from(10_000u32));
        }
    }
}

#[test]
fn ledger_faults_on_withdraw_pay_exactly_once() {
    for mode in [
        FaultMode::Reject {
            message: "down".into(),
        },
        FaultMode::Trap {
            message: "boom".into(),
        },
        FaultMode::ApplyThenTrap {
            message: "applied, then boom".into(),
        },
    ] {
        for ic in backends_for_test("ledger_faults_on_withdraw_pay_exactly_once") {
            let mut s = Suite::new(ic, 1);
            let (a, btc) = (s.users[0], s.btc);
            s.approve_and_stake(btc, a, 10_000);
            s.unstake(btc, a, 10_000).expect("unstake");
            s.advance(DAY * 7);
            let before = s.balance(btc, a.into());
            s.inject(btc, "icrc1_transfer", mode.clone(), 1);
            let r = s.withdraw(btc, a);
            assert!(
                matches!(r, Err(StakeError::Pending { .. })),
                "{mode:?}: {r:?}"
            );
            s.reconcile();
            assert_eq!(
                s.balance(btc, a.into()),
                before + 10_000 - BTC_FEE,
                "{mode:?}: paid once"
            );
            assert_eq!(s.balance(btc, s.staking.into()), 0);
            s.reconcile();
            assert_eq!(s.balance(btc, a.into()), before + 10_000 - BTC_FEE);
        }
    }
}

/// Emulator only: the ledger must hold the staking canister's call until the bounded wait
/// times out (`Emulator::hold_messages`), which PocketIC cannot do.
#[test]
fn ledger_timing_out_on_withdraw_and_upgrade_mid_flight_pay_exactly_once() {
    let mut s = Suite::new(Box::new(EmulatorBackend::new()), 1);
    let (a, btc) = (s.users[0], s.btc);
    s.approve_and_stake(btc, a, 10_000);
    s.unstake(btc, a, 10_000).expect("unstake");
    s.ic.advance_time(DAY * 7);
    s.approve(btc, a, 10_000 + BTC_FEE, None);
    let before = s.balance(btc, a.into());
    // The ledger holds the call: the bounded wait times out (SYS_UNKNOWN).
    s.ic.emulator().borrow_mut().hold_messages(btc);
    let id =
        s.ic.submit_call(
            s.staking,
            Some(a),
            "withdraw",
            Encode!(&btc).expect("encode"),
        )
        .expect("submit");
    for _ in 0..5 {
        s.ic.tick();
    }
    // One operation in flight per owner.
    let busy: Result<PositionView, StakeError> = s.update(
        s.staking,
        a,
        "stake",
        Encode!(&StakeArgs {
            ledger: btc,
            amount: Nat::from(5_000u32),
            lock_seconds: None
        })
        .expect("encode"),
    );
    assert_eq!(busy, Err(StakeError::Busy));
    // Upgrade staking with the transfer in flight.
    s.upgrade(None);
    s.ic.advance_time(Duration::from_secs(301));
    for _ in 0..5 {
        s.ic.tick();
    }
    let r = s.ic.await_call(id);
    eprintln!("withdraw across the upgrade: {r:?}");
    // Either the callback was dropped by the upgrade or it timed out: it is not settled here.
    if let Ok(bytes) = r {
        let r: Result<WithdrawReceipt, StakeError> = candid::decode_one(&bytes).expect("decode");
        assert!(matches!(r, Err(StakeError::Pending { .. })), "{r:?}");
    }
    s.check();
    let acc = s.accounting();
    assert_eq!(
        acc[0].in_flight,
        Nat::from(10_000u32),
        "journaled across the upgrade"
    );
    // The ledger comes back and executes the held call; the retry sees Duplicate.
    s.ic.emulator().borrow_mut().release_messages(btc);
    s.ic.run_until_idle();
    s.reconcile();
    assert_eq!(
        s.balance(btc, a.into()),
        before + 10_000 - BTC_FEE,
        "paid once"
    );
    let acc = s.accounting();
    assert_eq!(acc[0].in_flight, Nat::from(0u8));
}

#[test]
fn upgrade_mid_unbonding_and_mid_reward_period_changes_nothing() {
    for ic in backends_for_test("upgrade_mid_unbonding_and_mid_reward_period_changes_nothing") {
        let mut s = Suite::new(ic, 2);
        let (a, b, btc) = (s.users[0], s.users[1], s.btc);
        s.approve_and_stake(btc, a, 1_000_000);
        s.approve(btc, b, 2_000_000 + BTC_FEE, None);
        s.stake(btc, b, 2_000_000, Some(30 * 24 * 3600))
            .expect("stake");
        s.fund(btc, 7_777_777);
        s.unstake(btc, a, 500_000).expect("unstake");
        s.advance(DAY * 3);
        let before_a = s.position(a, btc);
        let before_b = s.position(b, btc);
        let events_before: stratros_staking_api::EventsPage = s.query(
            "get_events",
            Encode!(&stratros_staking_api::GetEventsArgs {
                start: 0,
                length: 1000
            })
            .expect("encode"),
        );
        s.upgrade(None);
        assert_eq!(s.position(a, btc), before_a, "same position after replay");
        assert_eq!(s.position(b, btc), before_b, "same rewards after replay");
        let events_after: stratros_staking_api::EventsPage = s.query(
            "get_events",
            Encode!(&stratros_staking_api::GetEventsArgs {
                start: 0,
                length: 1000
            })
            .expect("encode"),
        );
        assert_eq!(events_before.events, events_after.events);
        assert_eq!(s.certified_data().len(), 32);
        // Unbonding finishes after the upgrade, with a new unbonding period configured.
        s.upgrade(Some(UpgradeArgs {
            unbonding_seconds: Some(3600),
            ..Default::default()
        }));
        s.advance(DAY * 4);
        let w = s.withdraw(btc, a).expect("withdraw after upgrade");
        assert_eq!(w.amount, Nat::from(500_000u32));
        let u = s.unstake(btc, a, 100_000).expect("unstake");
        assert_eq!(u.seconds_left, 3600);
        s.advance(DAY * 10);
        s.claim(a).expect("claim");
        s.claim(b).expect("claim");
    }
}

#[test]
fn event_log_is_hash_chained_and_certified() {
    for ic in backends_for_test("event_log_is_hash_chained_and_certified") {
        use sha2::{Digest, Sha256};
        let mut s = Suite::new(ic, 1);
        let (a, btc) = (s.users[0], s.btc);
        s.approve_and_stake(btc, a, 10_000);
        let page: stratros_staking_api::EventsPage = s.query(
            "get_events",
            Encode!(&stratros_staking_api::GetEventsArgs {
                start: 0,
                length: 100
            })
            .expect("encode"),
        );
        assert!(page.total >= 5);
        let mut parent = [0u8; 32].to_vec();
        for e in &page.events {
            assert_eq!(e.parent_hash.to_vec(), parent);
            let mut h = Sha256::new();
            h.update(&parent);
            h.update(&e.cbor);
            let hash = h.finalize().to_vec();
            assert_eq!(e.hash.to_vec(), hash);
            parent = hash;
        }
        let tree: ic_certification::HashTree =
            ciborium::from_reader(page.certified_tree.as_slice()).expect("tree");
        assert_eq!(tree.digest().to_vec(), s.certified_data());
        assert!(page.certificate.is_some());
        // Paginated.
        let p2: stratros_staking_api::EventsPage = s.query(
            "get_events",
            Encode!(&stratros_staking_api::GetEventsArgs {
                start: 2,
                length: 2
            })
            .expect("encode"),
        );
        assert_eq!(p2.events.len(), 2);
        assert_eq!(p2.events[0], page.events[2]);
    }
}
