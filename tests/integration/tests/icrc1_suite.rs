//! The ICRC-1 acceptance suite (DFINITY's `icrc1-test-suite`) against the real
//! `icrc_ledger` fixture Wasm, plus ledger scenarios that staking relies on:
//! decimals 8 / 18 / 6, amounts beyond u64, deduplication (`Duplicate`, `TooOld`,
//! `CreatedInFuture`), approvals with expiry and `expected_allowance`, `transfer_from`.
//!
//! Every scenario runs on the emulator, and on PocketIC too when `POCKET_IC_BIN` is set
//! (`ic_testkit::backends_for_test`).
//!
//! Needs `out/icrc_ledger.wasm`: `bash scripts/build.sh icrc_ledger`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Nat, Principal};
use ic_testkit::{CanisterSpec, IcBackend, IcBackendExt, backends_for_test};
use icrc_ledger::types::{InitArgs, LedgerArg};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{Memo, TransferArg, TransferError};
use icrc_ledger_types::icrc2::allowance::{Allowance, AllowanceArgs};
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use stratros_integration::wasm;

const DAY: u64 = 24 * 3600 * 1_000_000_000;

fn principal(n: u64) -> Principal {
    Principal::self_authenticating(format!("icrc1 suite user {n}"))
}

fn minter() -> Principal {
    Principal::self_authenticating(b"icrc1 suite minter")
}

fn install_ledger(
    ic: &dyn IcBackend,
    decimals: u8,
    fee: Nat,
    balances: Vec<(Account, Nat)>,
) -> Principal {
    let arg = LedgerArg::Init(InitArgs {
        token_name: format!("Test token {decimals}"),
        token_symbol: format!("TT{decimals}"),
        decimals,
        transfer_fee: fee,
        minting_account: minter().into(),
        initial_balances: balances,
        max_memo_length: Some(32),
    });
    ic.deploy(&CanisterSpec::default(), wasm("icrc_ledger"), arg)
        .unwrap_or_else(|e| panic!("install the ledger on {}: {e}", ic.name()))
}

// ----- the acceptance suite ----------------------------------------------------------------

/// `LedgerEnv` over one backend shared by every fork; each fork is a fresh principal.
#[derive(Clone)]
struct BackendEnv {
    ic: Rc<dyn IcBackend>,
    ledger: Principal,
    caller: Principal,
    next: Rc<Cell<u64>>,
}

#[async_trait::async_trait(?Send)]
impl icrc1_test_env::LedgerEnv for BackendEnv {
    fn fork(&self) -> Self {
        let n = self.next.get();
        self.next.set(n + 1);
        BackendEnv {
            caller: principal(n),
            ..self.clone()
        }
    }

    fn principal(&self) -> Principal {
        self.caller
    }

    async fn time(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.ic.time())
    }

    async fn query<Input, Output>(&self, method: &str, input: Input) -> anyhow::Result<Output>
    where
        Input: ArgumentEncoder + std::fmt::Debug,
        Output: for<'a> ArgumentDecoder<'a>,
    {
        let arg = candid::utils::encode_args(input)?;
        let bytes = self
            .ic
            .query_call(self.ledger, Some(self.caller), method, arg)
            .map_err(|e| anyhow::anyhow!("{method} rejected: {e}"))?;
        Ok(candid::utils::decode_args(&bytes)?)
    }

    async fn update<Input, Output>(&self, method: &str, input: Input) -> anyhow::Result<Output>
    where
        Input: ArgumentEncoder + std::fmt::Debug,
        Output: for<'a> ArgumentDecoder<'a>,
    {
        let arg = candid::utils::encode_args(input)?;
        let bytes = self
            .ic
            .update_call(self.ledger, Some(self.caller), method, arg)
            .map_err(|e| anyhow::anyhow!("{method} rejected: {e}"))?;
        Ok(candid::utils::decode_args(&bytes)?)
    }
}

#[test]
fn icrc1_acceptance_suite_passes_on_the_fixture_wasm() {
    for backend in backends_for_test("icrc1_acceptance_suite_passes_on_the_fixture_wasm") {
        let ic: Rc<dyn IcBackend> = Rc::from(backend);
        // One ledger per decimals on the same backend; forks of one ledger's env never
        // reuse a principal of another's, since every env counts from its own start.
        for (round, decimals) in [8u8, 18, 6].into_iter().enumerate() {
            let root = principal(1_000_000 * round as u64);
            let supply = Nat::from(u128::from(u64::MAX) * 4);
            let ledger = install_ledger(
                &*ic,
                decimals,
                Nat::from(10_000u64),
                vec![(root.into(), supply)],
            );
            let env = BackendEnv {
                ic: ic.clone(),
                ledger,
                caller: root,
                next: Rc::new(Cell::new(1_000_000 * round as u64 + 1)),
            };
            let tests = futures::executor::block_on(icrc1_test_suite::test_suite(env));
            assert_eq!(
                tests.len(),
                16,
                "the fixture must announce ICRC-1 and ICRC-2 so that all 16 tests run"
            );
            let ok = futures::executor::block_on(icrc1_test_suite::execute_tests(tests));
            assert!(
                ok,
                "the ICRC-1 acceptance suite failed on {} (decimals {decimals}): see the TAP output",
                ic.name()
            );
        }
    }
}

// ----- ledger scenarios --------------------------------------------------------------------

struct Ledger<'a> {
    ic: &'a dyn IcBackend,
    id: Principal,
}

impl<'a> Ledger<'a> {
    fn new(
        ic: &'a dyn IcBackend,
        decimals: u8,
        fee: u128,
        balances: Vec<(Principal, u128)>,
    ) -> Self {
        let id = install_ledger(
            ic,
            decimals,
            Nat::from(fee),
            balances
                .into_iter()
                .map(|(p, a)| (p.into(), Nat::from(a)))
                .collect(),
        );
        Ledger { ic, id }
    }

    fn update<A: CandidType, R: CandidType + for<'de> serde::Deserialize<'de>>(
        &self,
        sender: Principal,
        method: &str,
        arg: &A,
    ) -> R {
        self.ic
            .update_as(self.id, Some(sender), method, arg)
            .unwrap_or_else(|e| panic!("{method} rejected on {}: {e}", self.ic.name()))
    }

    fn query<A: CandidType, R: CandidType + for<'de> serde::Deserialize<'de>>(
        &self,
        method: &str,
        arg: &A,
    ) -> R {
        self.ic
            .query(self.id, method, arg)
            .unwrap_or_else(|e| panic!("{method} rejected on {}: {e}", self.ic.name()))
    }

    fn balance(&self, who: Principal) -> u128 {
        let n: Nat = self.query("icrc1_balance_of", &Account::from(who));
        u128::try_from(n.0).expect("fits u128")
    }

    fn transfer(&self, from: Principal, arg: TransferArg) -> Result<Nat, TransferError> {
        self.update(from, "icrc1_transfer", &arg)
    }
}

fn transfer_arg(to: Principal, amount: u128) -> TransferArg {
    TransferArg {
        from_subaccount: None,
        to: to.into(),
        fee: None,
        created_at_time: None,
        memo: None,
        amount: Nat::from(amount),
    }
}

fn approve_arg(spender: Principal, amount: u128) -> ApproveArgs {
    ApproveArgs {
        from_subaccount: None,
        spender: spender.into(),
        amount: Nat::from(amount),
        expected_allowance: None,
        expires_at: None,
        fee: None,
        memo: None,
        created_at_time: None,
    }
}

#[test]
fn decimals_and_fees_are_read_as_initialised() {
    for ic in backends_for_test("decimals_and_fees_are_read_as_initialised") {
        for (decimals, fee) in [(8u8, 10u128), (18, 2_000_000_000_000), (6, 10_000)] {
            let l = Ledger::new(&*ic, decimals, fee, vec![]);
            let d: u8 = l.query("icrc1_decimals", &());
            let f: Nat = l.query("icrc1_fee", &());
            assert_eq!(d, decimals);
            assert_eq!(f, Nat::from(fee));
        }
    }
}

#[test]
fn amounts_beyond_u64_move_exactly() {
    for ic in backends_for_test("amounts_beyond_u64_move_exactly") {
        let (a, b) = (principal(1), principal(2));
        let fee = 2_000_000_000_000u128;
        let big = u128::from(u64::MAX) * 1_000;
        let l = Ledger::new(&*ic, 18, fee, vec![(a, big * 3)]);
        let amount = big + 7;
        l.transfer(a, transfer_arg(b, amount)).expect("transfer");
        assert_eq!(l.balance(b), amount);
        assert_eq!(l.balance(a), big * 3 - amount - fee);
        let total: Nat = l.query("icrc1_total_supply", &());
        assert_eq!(total, Nat::from(big * 3 - fee));
    }
}

#[test]
fn deduplication_answers_duplicate_too_old_and_created_in_future() {
    for ic in backends_for_test("deduplication_answers_duplicate_too_old_and_created_in_future") {
        let (a, b) = (principal(1), principal(2));
        let l = Ledger::new(&*ic, 8, 10, vec![(a, 1_000_000)]);
        let now = l.ic.time();
        let arg = TransferArg {
            created_at_time: Some(now),
            memo: Some(Memo::from(vec![7u8; 8])),
            ..transfer_arg(b, 100)
        };
        let first = l.transfer(a, arg.clone()).expect("first");
        assert_eq!(
            l.transfer(a, arg.clone()),
            Err(TransferError::Duplicate {
                duplicate_of: first
            })
        );
        assert_eq!(l.balance(b), 100, "a duplicate moves nothing");
        // Another memo is another transaction.
        let other = TransferArg {
            memo: Some(Memo::from(vec![8u8; 8])),
            ..arg.clone()
        };
        l.transfer(a, other).expect("different memo");
        // In the future (beyond the 2 minutes of drift).
        let future = TransferArg {
            created_at_time: Some(now + 10 * 60 * 1_000_000_000),
            ..transfer_arg(b, 1)
        };
        assert!(matches!(
            l.transfer(a, future),
            Err(TransferError::CreatedInFuture { .. })
        ));
        // A day and more later the first one is too old.
        l.ic.advance_time(Duration::from_nanos(DAY + 5 * 60 * 1_000_000_000));
        assert_eq!(l.transfer(a, arg), Err(TransferError::TooOld));
        assert_eq!(l.balance(b), 200);
    }
}

#[test]
fn approvals_expire_check_expected_allowance_and_feed_transfer_from() {
    for ic in backends_for_test("approvals_expire_check_expected_allowance_and_feed_transfer_from")
    {
        let (owner, spender, to) = (principal(1), principal(2), principal(3));
        let fee = 10u128;
        let l = Ledger::new(&*ic, 8, fee, vec![(owner, 1_000_000)]);
        let now = l.ic.time();

        // Expired at creation.
        let expired = ApproveArgs {
            expires_at: Some(now.saturating_sub(1)),
            ..approve_arg(spender, 500)
        };
        let r: Result<Nat, ApproveError> = l.update(owner, "icrc2_approve", &expired);
        assert!(matches!(r, Err(ApproveError::Expired { .. })));

        // Expected allowance must match.
        let wrong = ApproveArgs {
            expected_allowance: Some(Nat::from(1u8)),
            ..approve_arg(spender, 500)
        };
        let r: Result<Nat, ApproveError> = l.update(owner, "icrc2_approve", &wrong);
        assert_eq!(
            r,
            Err(ApproveError::AllowanceChanged {
                current_allowance: Nat::from(0u8)
            })
        );

        let good = ApproveArgs {
            expected_allowance: Some(Nat::from(0u8)),
            expires_at: Some(now + 3600 * 1_000_000_000),
            ..approve_arg(spender, 500)
        };
        let r: Result<Nat, ApproveError> = l.update(owner, "icrc2_approve", &good);
        r.expect("approve");
        let allowance: Allowance = l.query(
            "icrc2_allowance",
            &AllowanceArgs {
                account: owner.into(),
                spender: spender.into(),
            },
        );
        assert_eq!(allowance.allowance, Nat::from(500u32));

        // transfer_from spends amount + fee.
        let tf = TransferFromArgs {
            spender_subaccount: None,
            from: owner.into(),
            to: to.into(),
            amount: Nat::from(300u32),
            fee: None,
            memo: None,
            created_at_time: None,
        };
        let r: Result<Nat, TransferFromError> = l.update(spender, "icrc2_transfer_from", &tf);
        r.expect("transfer_from");
        assert_eq!(l.balance(to), 300);
        // 500 - 310 = 190 left: 300 more is refused, typed.
        let r: Result<Nat, TransferFromError> = l.update(spender, "icrc2_transfer_from", &tf);
        assert_eq!(
            r,
            Err(TransferFromError::InsufficientAllowance {
                allowance: Nat::from(190u32)
            })
        );
        // After expiry the allowance is gone.
        l.ic.advance_time(Duration::from_secs(3601));
        let small = TransferFromArgs {
            amount: Nat::from(1u8),
            ..tf
        };
        let r: Result<Nat, TransferFromError> = l.update(spender, "icrc2_transfer_from", &small);
        assert_eq!(
            r,
            Err(TransferFromError::InsufficientAllowance {
                allowance: Nat::from(0u8)
            })
        );
    }
}
