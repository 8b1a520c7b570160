//! The suite shared by the restaking scenarios: the real Wasm of the ICRC ledger fixture,
//! staking and restaking on any `IcBackend`, typed helpers, and the cross-canister checks.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use candid::{CandidType, Nat, Principal};
use ic_testkit::{CanisterSpec, IcBackend, IcBackendExt};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use restaking::types::{
    AllocateArgs, Arg, AssetWeight, AvsKind, DelegateArgs, InitArgs, OperatorView, PendingOpView,
    RegisterAvsArgs, RegisterOperatorArgs, RestakingError, StakerView,
};
use stratros_staking_api::{
    AccountingView, Arg as StakingArg, AssetArg, HookKindView, HookView, InitArgs as StakingInit,
    PositionView, StakeArgs, StakeError, UpgradeArgs as StakingUpgrade,
};

pub const FEE: u128 = 2_000_000_000_000;
pub const E18: u128 = 1_000_000_000_000_000_000;
/// The ckBTC-like second asset: 8 decimals, fee 10 units.
pub const E8: u128 = 100_000_000;
pub const BTC_FEE: u128 = 10;
pub const DAY: Duration = Duration::from_secs(24 * 3600);

// The ledger fixture's install argument, as Candid (its crate exports `canister_init` too, so
// it cannot be linked into a test binary that links restaking).
#[derive(CandidType)]
pub enum LedgerArg {
    Init(LedgerInit),
}

#[derive(CandidType)]
pub struct LedgerInit {
    pub token_name: String,
    pub token_symbol: String,
    pub decimals: u8,
    pub transfer_fee: Nat,
    pub minting_account: Account,
    pub initial_balances: Vec<(Account, Nat)>,
    pub max_memo_length: Option<u16>,
}

pub fn user(n: u64) -> Principal {
    Principal::self_authenticating(format!("scenario restaker {n}"))
}
pub fn operator() -> Principal {
    Principal::self_authenticating(b"scenario operator")
}
pub fn admin() -> Principal {
    Principal::self_authenticating(b"scenario admin")
}
pub fn funder() -> Principal {
    Principal::self_authenticating(b"scenario hub paying fees")
}
pub fn minter() -> Principal {
    Principal::self_authenticating(b"scenario minter")
}

pub fn wasm(name: &str) -> Vec<u8> {
    ic_testkit::wasm(name)
}

pub fn nat(n: &Nat) -> u128 {
    u128::try_from(&n.0).expect("fits u128")
}

pub struct Suite<'a> {
    pub ic: &'a dyn IcBackend,
    pub eth: Principal,
    pub staking: Principal,
    pub restaking: Principal,
    pub users: Vec<Principal>,
    /// What each owner staked in the ckETH asset (staking's `staked` only falls by slashes
    /// in these scenarios: nobody unstakes), to compare staking's slashes with restaking's.
    pub staked_in: RefCell<BTreeMap<Principal, u128>>,
}

impl<'a> Suite<'a> {
    /// The ledger (balances for `n_users`, the operator and the funder), staking and
    /// restaking; the operator and a Confirmation AVS (10 % max slash, no veto window)
    /// registered.
    pub fn new(ic: &'a dyn IcBackend, n_users: u64) -> Suite<'a> {
        let users: Vec<Principal> = (0..n_users).map(user).collect();
        let spec = CanisterSpec::default().controller(admin());
        let balances = users
            .iter()
            .chain([operator(), funder()].iter())
            .map(|u| (Account::from(*u), Nat::from(1_000 * E18)))
            .collect();
        let eth = ic
            .deploy(
                &spec,
                wasm("icrc_ledger"),
                LedgerArg::Init(LedgerInit {
                    token_name: "ckETH".into(),
                    token_symbol: "ckETH".into(),
                    decimals: 18,
                    transfer_fee: Nat::from(FEE),
                    minting_account: minter().into(),
                    initial_balances: balances,
                    max_memo_length: Some(32),
                }),
            )
            .expect("install the ledger");
        let restaking = ic.create_canister(&spec).expect("create restaking");
        let staking = ic
            .deploy(
                &spec,
                wasm("staking"),
                StakingArg::Init(StakingInit {
                    restaking: Some(restaking),
                    unbonding_seconds: None,
                    reward_period_seconds: None,
                    slash_destination: None,
                    assets: vec![AssetArg {
                        ledger: eth,
                        min_stake: Nat::from(1_000u32),
                    }],
                    reconcile_interval_seconds: Some(60),
                }),
            )
            .expect("install staking");
        let arg = candid::encode_one(Arg::Init(InitArgs {
            staking,
            withdrawal_delay_seconds: None,
            allocation_delay_seconds: None,
            deallocation_delay_seconds: None,
            commission_delay_seconds: None,
        }))
        .expect("encode");
        ic.install(
            restaking,
            ic_testkit::InstallMode::Install,
            wasm("restaking"),
            arg,
            Some(admin()),
        )
        .expect("install restaking");
        // Staking reads the asset's metadata from the ledger on its first timer.
        ic.advance_and_settle(Duration::from_secs(1));
        let s = Suite {
            ic,
            eth,
            staking,
            restaking,
            users,
            staked_in: RefCell::new(BTreeMap::new()),
        };
        let r: Result<(), RestakingError> = s.update(
            operator(),
            "register_operator",
            RegisterOperatorArgs {
                name: "op".into(),
                metadata: String::new(),
                commission_bps: 1_000,
            },
        );
        r.expect("register operator");
        let r: Result<(), RestakingError> = s.update(
            admin(),
            "register_avs",
            RegisterAvsArgs {
                id: "confirmation".into(),
                name: "Stratros confirmation layer".into(),
                kind: AvsKind::Confirmation,
                slashers: vec![admin()],
                asset_weights: vec![AssetWeight {
                    ledger: eth,
                    weight_bps: 10_000,
                }],
                max_slash_bps: 1_000,
                veto_window_seconds: 0,
                resolvers: vec![],
                reward_tokens: vec![eth],
                redistribution_account: None,
            },
        );
        r.expect("register avs");
        s
    }

    pub fn update<A: CandidType, R: CandidType + for<'de> serde::Deserialize<'de>>(
        &self,
        sender: Principal,
        method: &str,
        arg: A,
    ) -> R {
        self.ic
            .update_as(self.restaking, Some(sender), method, arg)
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    pub fn approve(&self, who: Principal, spender: Principal, amount: u128) {
        self.approve_on(self.eth, who, spender, amount)
    }

    pub fn approve_on(&self, ledger: Principal, who: Principal, spender: Principal, amount: u128) {
        let r: Result<Nat, ApproveError> = self
            .ic
            .update_as(
                ledger,
                Some(who),
                "icrc2_approve",
                ApproveArgs {
                    from_subaccount: None,
                    spender: spender.into(),
                    amount: Nat::from(amount),
                    expected_allowance: None,
                    expires_at: None,
                    fee: None,
                    memo: None,
                    created_at_time: None,
                },
            )
            .expect("approve");
        r.expect("approve");
    }

    pub fn stake(&self, who: Principal, amount: u128) {
        self.stake_on(self.eth, FEE, who, amount)
    }

    pub fn stake_on(&self, ledger: Principal, fee: u128, who: Principal, amount: u128) {
        self.approve_on(ledger, who, self.staking, amount + fee);
        let r: Result<PositionView, StakeError> = self
            .ic
            .update_as(
                self.staking,
                Some(who),
                "stake",
                StakeArgs {
                    ledger,
                    amount: Nat::from(amount),
                    lock_seconds: None,
                },
            )
            .expect("stake");
        r.expect("stake");
        if ledger == self.eth {
            *self.staked_in.borrow_mut().entry(who).or_default() += amount;
        }
    }

    pub fn delegate(&self, who: Principal, amount: u128) -> Result<u64, RestakingError> {
        self.update(
            who,
            "delegate",
            DelegateArgs {
                operator: operator(),
                ledger: self.eth,
                amount: Nat::from(amount),
            },
        )
    }

    /// A second asset: a ckBTC-like ledger (8 decimals) holding 1 000 ckBTC for each user
    /// and the funder, registered in staking.
    pub fn add_btc(&self) -> Principal {
        let spec = CanisterSpec::default().controller(admin());
        let balances = self
            .users
            .iter()
            .chain([funder()].iter())
            .map(|u| (Account::from(*u), Nat::from(1_000 * E8)))
            .collect();
        let btc = self
            .ic
            .deploy(
                &spec,
                wasm("icrc_ledger"),
                LedgerArg::Init(LedgerInit {
                    token_name: "ckBTC".into(),
                    token_symbol: "ckBTC".into(),
                    decimals: 8,
                    transfer_fee: Nat::from(BTC_FEE),
                    minting_account: minter().into(),
                    initial_balances: balances,
                    max_memo_length: Some(32),
                }),
            )
            .expect("install the ckBTC ledger");
        let r: Result<stratros_staking_api::AssetView, StakeError> = self
            .ic
            .update_as(
                self.staking,
                Some(admin()),
                "add_asset",
                AssetArg {
                    ledger: btc,
                    min_stake: Nat::from(1_000u32),
                },
            )
            .expect("add_asset");
        r.expect("add the ckBTC asset");
        btc
    }

    pub fn delegate_on(
        &self,
        ledger: Principal,
        who: Principal,
        amount: u128,
    ) -> Result<u64, RestakingError> {
        self.update(
            who,
            "delegate",
            DelegateArgs {
                operator: operator(),
                ledger,
                amount: Nat::from(amount),
            },
        )
    }

    pub fn allocate_on(&self, avs: &str, ledger: Principal, bps: u32) {
        let r: Result<(), RestakingError> = self.update(
            operator(),
            "allocate",
            AllocateArgs {
                avs: avs.into(),
                ledger,
                bps,
            },
        );
        r.expect("allocate");
    }

    pub fn balance_on(&self, ledger: Principal, who: Account) -> u128 {
        let n: Nat = self
            .ic
            .query(ledger, "icrc1_balance_of", who)
            .expect("balance");
        nat(&n)
    }

    /// Rewards of `token` owed to `who` (positions and commissions).
    pub fn owed_of(&self, who: Principal, token: Principal) -> u128 {
        self.staker(who)
            .pending_rewards
            .iter()
            .filter(|t| t.token == token)
            .map(|t| nat(&t.amount))
            .sum()
    }

    pub fn allocate(&self, bps: u32) {
        let r: Result<(), RestakingError> = self.update(
            operator(),
            "allocate",
            AllocateArgs {
                avs: "confirmation".into(),
                ledger: self.eth,
                bps,
            },
        );
        r.expect("allocate");
    }

    pub fn balance(&self, who: Account) -> u128 {
        let n: Nat = self
            .ic
            .query(self.eth, "icrc1_balance_of", who)
            .expect("balance");
        nat(&n)
    }

    pub fn staking_locked(&self, who: Principal) -> u128 {
        let positions: Vec<PositionView> = self
            .ic
            .query(self.staking, "get_position", who)
            .expect("get_position");
        positions
            .into_iter()
            .find(|p| p.ledger == self.eth)
            .map_or(0, |p| nat(&p.locked))
    }

    pub fn restaking_locked(&self, who: Principal) -> u128 {
        let (n,): (Nat,) = self
            .ic
            .query_args(self.restaking, None, "locked_in_staking", (who, self.eth))
            .expect("locked_in_staking");
        nat(&n)
    }

    pub fn pending_ops(&self) -> usize {
        self.pending_op_views().len()
    }

    pub fn pending_op_views(&self) -> Vec<PendingOpView> {
        self.ic
            .query(self.restaking, "pending_ops", ())
            .expect("pending_ops")
    }

    /// Staking's record of hook op `op_id`, if it applied it (staking must be running: a
    /// stopped canister answers no query).
    pub fn hook(&self, op_id: u64) -> Option<HookView> {
        self.ic
            .query(self.staking, "get_hook", op_id)
            .expect("get_hook")
    }

    /// What staking holds staked for `who` in ckETH.
    pub fn staking_staked(&self, who: Principal) -> u128 {
        let positions: Vec<PositionView> = self
            .ic
            .query(self.staking, "get_position", who)
            .expect("get_position");
        positions
            .into_iter()
            .find(|p| p.ledger == self.eth)
            .map_or(0, |p| nat(&p.staked))
    }

    pub fn staker(&self, who: Principal) -> StakerView {
        self.ic
            .query(self.restaking, "get_staker", who)
            .expect("get_staker")
    }

    /// Runs restaking's `process` (settle slashed positions, retry journaled ops), then lets
    /// everything under way finish: `process` answers at once when restaking's own timer is
    /// already working on the same ops (they are in flight there), and that run goes on after
    /// the answer (after a long pause, ic-cdk-timers runs the missed intervals one after the
    /// other, each a `process_ops`).
    pub fn process(&self) {
        let () = self.update(Principal::anonymous(), "process", ());
        self.ic.run_until_idle();
    }

    /// Lets time pass as on the IC: what is under way finishes first, then time moves on and
    /// what became due (timers, their calls) runs to completion.
    ///
    /// Running until idle before moving the clock also keeps clear of an emulator defect: a
    /// bounded-wait call whose response is already queued when the clock jumps past its
    /// deadline loses both the response and its `SYS_UNKNOWN` (see the README), and its call
    /// context never closes.
    pub fn pass_time(&self, by: Duration) {
        self.ic.run_until_idle();
        self.ic.advance_and_settle(by);
    }

    /// The cross-canister invariants, after every step (staking must be running). Per owner:
    /// what staking has locked equals what restaking counts as locked (`locked_in_staking`:
    /// settled positions plus unlocks and slashes not yet settled), plus the journaled locks
    /// staking already applied, minus the journaled unlocks and slashes staking already
    /// applied (read from staking's own record of each op id, `get_hook`): an op whose answer
    /// was lost is neither lost nor counted twice. With no op pending the two are equal.
    /// Staking's tokens cover what it owes.
    pub fn check(&self) {
        let pending = self.pending_op_views();
        for u in &self.users {
            let mut expected = self.restaking_locked(*u) as i128;
            for op in pending
                .iter()
                .filter(|o| o.owner == *u && o.ledger == self.eth)
            {
                let Some(h) = self.hook(op.op_id) else {
                    continue;
                };
                let kind = match op.kind.as_str() {
                    "lock" => HookKindView::Lock,
                    "unlock" => HookKindView::Unlock,
                    "slash" => HookKindView::Slash,
                    other => panic!("staking has a hook record for a {other} op"),
                };
                assert_eq!(
                    h.kind, kind,
                    "op {} is another operation in staking",
                    op.op_id
                );
                assert_eq!(h.owner, *u);
                assert_eq!(
                    h.amount, op.amount,
                    "op {} applied with another amount",
                    op.op_id
                );
                let a = nat(&op.amount) as i128;
                expected += if kind == HookKindView::Lock { a } else { -a };
            }
            assert_eq!(
                self.staking_locked(*u) as i128,
                expected,
                "staking's locked for {u} is not restaking's count adjusted by the pending ops \
                 staking applied ({pending:?})"
            );
        }
        // Staking's tokens: the ledger balance covers what it owes.
        let acc: Vec<AccountingView> = self
            .ic
            .query(self.staking, "get_accounting_cached", ())
            .expect("get_accounting_cached");
        for a in acc {
            let held = self.balance(Account::from(self.staking));
            let in_flight_out = nat(&a.in_flight);
            assert!(
                held + in_flight_out >= nat(&a.liabilities),
                "staking holds {held} < {}",
                a.liabilities
            );
        }
    }

    /// Σ over the operator's executed slashes of the ckETH amount each recorded (what the
    /// pool's value lost).
    pub fn slashes_recorded(&self) -> u128 {
        let v: Option<OperatorView> = self
            .ic
            .query(self.restaking, "get_operator", operator())
            .expect("get_operator");
        v.map_or(0, |o| {
            o.slashes
                .iter()
                .flat_map(|s| s.slashed.iter())
                .filter(|t| t.token == self.eth)
                .map(|t| nat(&t.amount))
                .sum()
        })
    }

    /// Every pool of the operator settled: its positions' settled amounts sum to its value
    /// (exact for the scenarios' amounts; the sweep settles positions in key order, so one
    /// owner's settled delegation says nothing of the others').
    pub fn pools_settled(&self) -> bool {
        let v: Option<OperatorView> = self
            .ic
            .query(self.restaking, "get_operator", operator())
            .expect("get_operator");
        v.is_none_or(|o| o.pools.iter().all(|p| p.settled_total == p.value))
    }

    /// What staking took out of the owners' ckETH stakes (slashes: nobody unstakes here).
    pub fn slashes_taken_by_staking(&self) -> u128 {
        self.staked_in
            .borrow()
            .iter()
            .map(|(u, staked)| staked - self.staking_staked(*u))
            .sum()
    }

    /// No op pending, every slashed position settled: [`Suite::check`] with equality, and
    /// the sum of the slashes equals what staking took out (each position's loss rounds up,
    /// so the taken total may exceed the recorded one by at most one unit per position; the
    /// scenarios' amounts are exact, so they are equal there).
    pub fn check_settled(&self) {
        assert_eq!(self.pending_ops(), 0, "ops still pending");
        self.check();
        for u in &self.users {
            assert_eq!(self.restaking_locked(*u), self.staking_locked(*u));
            for d in self.staker(*u).delegations {
                assert_eq!(
                    d.amount, d.locked,
                    "a slashed position of {u} is not settled"
                );
            }
        }
        let (recorded, taken) = (self.slashes_recorded(), self.slashes_taken_by_staking());
        let positions = self.users.len() as u128;
        assert!(
            recorded <= taken && taken <= recorded + positions,
            "restaking recorded {recorded} slashed, staking took {taken}"
        );
    }

    pub fn upgrade_staking(&self) {
        self.ic
            .upgrade(
                self.staking,
                wasm("staking"),
                Some(StakingArg::Upgrade(None::<StakingUpgrade>)),
                Some(admin()),
            )
            .expect("upgrade staking");
    }

    pub fn upgrade_restaking(&self) {
        self.ic
            .upgrade(
                self.restaking,
                wasm("restaking"),
                Some(Arg::Upgrade(None)),
                Some(admin()),
            )
            .expect("upgrade restaking");
    }

    pub fn owed(&self, who: Principal) -> u128 {
        self.staker(who)
            .pending_rewards
            .iter()
            .filter(|t| t.token == self.eth)
            .map(|t| nat(&t.amount))
            .sum()
    }

    pub fn commission_owed(&self) -> u128 {
        let v: Option<OperatorView> = self
            .ic
            .query(self.restaking, "get_operator", operator())
            .expect("get_operator");
        v.expect("operator");
        // The operator's commission is owed to it as to any owner.
        self.owed(operator())
    }
}
