//! The suite shared by the restaking scenarios: the real Wasm of the ICRC ledger fixture,
//! staking and restaking on any `IcBackend`, typed helpers, and the cross-canister checks.
#![allow(dead_code)]

use std::time::Duration;

use candid::{CandidType, Nat, Principal};
use ic_testkit::{CanisterSpec, IcBackend, IcBackendExt};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use restaking::types::{
    AllocateArgs, Arg, AssetWeight, AvsKind, DelegateArgs, InitArgs, OperatorView, RegisterAvsArgs,
    RegisterOperatorArgs, RestakingError, StakerView,
};
use stratros_staking_api::{
    AccountingView, Arg as StakingArg, AssetArg, InitArgs as StakingInit, PositionView, StakeArgs,
    StakeError, UpgradeArgs as StakingUpgrade,
};

pub const FEE: u128 = 2_000_000_000_000;
pub const E18: u128 = 1_000_000_000_000_000_000;
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
        let r: Result<Nat, ApproveError> = self
            .ic
            .update_as(
                self.eth,
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
        self.approve(who, self.staking, amount + FEE);
        let r: Result<PositionView, StakeError> = self
            .ic
            .update_as(
                self.staking,
                Some(who),
                "stake",
                StakeArgs {
                    ledger: self.eth,
                    amount: Nat::from(amount),
                    lock_seconds: None,
                },
            )
            .expect("stake");
        r.expect("stake");
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
        let v: Vec<restaking::types::PendingOpView> = self
            .ic
            .query(self.restaking, "pending_ops", ())
            .expect("pending_ops");
        v.len()
    }

    pub fn staker(&self, who: Principal) -> StakerView {
        self.ic
            .query(self.restaking, "get_staker", who)
            .expect("get_staker")
    }

    /// Runs restaking's `process` (settle slashed positions, retry journaled ops).
    pub fn process(&self) {
        let () = self.update(Principal::anonymous(), "process", ());
        self.ic.tick_n(3);
    }

    /// The cross-canister invariant. With no op pending, restaking's locked equals staking's
    /// for every owner; with ops pending (an answer not yet received), staking may already
    /// have applied them, so restaking's count is at least staking's minus nothing and each
    /// side stays within the pending amounts.
    pub fn check(&self) {
        let pending = self.pending_ops();
        for u in &self.users {
            let (r, s) = (self.restaking_locked(*u), self.staking_locked(*u));
            if pending == 0 {
                assert_eq!(r, s, "restaking and staking disagree on {u}");
            }
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

    pub fn check_settled(&self) {
        assert_eq!(self.pending_ops(), 0, "ops still pending");
        self.check();
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
