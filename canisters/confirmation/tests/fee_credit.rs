//! Fee credit on the real Wasm: a submitter deposits with `deposit_fees`, withdraws part of
//! its credit with `withdraw_credit`, repeats a request (the same withdrawal, paid once), and
//! withdraws while the ledger executes the transfer but loses the answer: the withdrawal stays
//! pending across a hub upgrade and the fee timer completes it, paid exactly once. After every
//! step the hub's ledger balance equals the credits it owes.
//!
//! Written against `ic-testkit`: the emulator always, PocketIC too when `POCKET_IC_BIN` is set.
//!
//! ```sh
//! bash scripts/build.sh confirmation icrc_ledger
//! cargo test -p confirmation --test fee_credit
//! ```

use std::time::Duration;

use candid::{Nat, Principal};
use confirmation::{
    Arg, CreditWithdrawal, DepositFeesArgs, FeeAccount, FeeConfig, FeeDeposit, FeeError, FeeStatus,
    InitArgs, UpgradeArgs, WithdrawCreditArgs, WithdrawalState,
};
use ic_testkit::ledger_fixture::{Account, FaultMode, balance_of, deploy_ledger, inject_fault};
use ic_testkit::{CanisterSpec, IcBackend, IcBackendExt, SubnetKind, backends_for_test, wasm};

const LEDGER_FEE: u128 = 10;

fn submitter() -> Principal {
    Principal::from_slice(&[0x51, 1])
}
fn recipient() -> Principal {
    Principal::from_slice(&[0x52, 2])
}

struct Net<'a> {
    ic: &'a dyn IcBackend,
    ledger: Principal,
    hub: Principal,
}

impl Net<'_> {
    fn balance(&self, who: Principal) -> u128 {
        balance_of(self.ic, self.ledger, Account::from(who))
    }

    fn withdraw(&self, amount: u128, at: u64) -> Result<CreditWithdrawal, FeeError> {
        self.ic
            .update_as(
                self.hub,
                Some(submitter()),
                "withdraw_credit",
                WithdrawCreditArgs {
                    amount,
                    to: Some(recipient()),
                    to_subaccount: None,
                    created_at_time: at,
                },
            )
            .unwrap_or_else(|e| panic!("withdraw_credit on {}: {e}", self.ic.name()))
    }

    fn account(&self) -> FeeAccount {
        self.ic
            .query(self.hub, "get_fee_account", Some(submitter()))
            .expect("get_fee_account")
    }

    fn status(&self) -> FeeStatus {
        let status: confirmation::Status =
            self.ic.query(self.hub, "get_status", ()).expect("status");
        status.fees
    }

    /// The hub holds exactly what it owes: every credit (nothing is charged or forwarded here).
    fn check_books(&self) {
        let status = self.status();
        assert_eq!(status.collected, 0);
        assert_eq!(self.balance(self.hub), status.credits, "{status:?}");
    }
}

fn deploy(ic: &dyn IcBackend) -> Net<'_> {
    let app = CanisterSpec::on(SubnetKind::Application);
    let ledger = deploy_ledger(ic, &app, "TUSD", 6, LEDGER_FEE, &[(submitter(), 1_000_000)])
        .expect("ledger");
    let hub = ic
        .deploy(
            &app,
            wasm("confirmation"),
            Arg::Init(InitArgs {
                submitters: vec![submitter()],
                fees: Some(FeeConfig {
                    ledger,
                    fee_per_record: 1,
                    restaking: None,
                    avs: "confirmation".into(),
                    min_forward: 1_000,
                    forward_interval_seconds: 60,
                }),
                ..Default::default()
            }),
        )
        .expect("hub");
    // The submitter deposits 10,000.
    let approved: Result<Nat, candid::Reserved> = ic
        .update_as(
            ledger,
            Some(submitter()),
            "icrc2_approve",
            icrc_ledger_types::icrc2::approve::ApproveArgs {
                from_subaccount: None,
                spender: hub.into(),
                amount: Nat::from(10_000 + LEDGER_FEE),
                expected_allowance: None,
                expires_at: None,
                fee: None,
                memo: None,
                created_at_time: None,
            },
        )
        .expect("approve");
    approved.expect("approved");
    let deposit: Result<FeeDeposit, FeeError> = ic
        .update_as(
            hub,
            Some(submitter()),
            "deposit_fees",
            DepositFeesArgs {
                amount: 10_000,
                created_at_time: ic.time(),
            },
        )
        .expect("deposit_fees");
    assert_eq!(deposit.expect("deposited").credit, 10_000);
    Net { ic, ledger, hub }
}

#[test]
fn should_withdraw_credit_once_per_request_and_complete_a_lost_answer_after_an_upgrade() {
    for ic in backends_for_test(
        "should_withdraw_credit_once_per_request_and_complete_a_lost_answer_after_an_upgrade",
    ) {
        let net = deploy(&*ic);
        net.check_books();

        // Bad requests change nothing.
        assert_eq!(
            net.withdraw(10_001, 1),
            Err(FeeError::InsufficientCredit {
                needed: 10_001,
                available: 10_000
            })
        );
        assert_eq!(
            net.withdraw(LEDGER_FEE, 1),
            Err(FeeError::AmountTooSmall {
                ledger_fee: LEDGER_FEE
            })
        );
        assert_eq!(net.account().credit, 10_000);
        net.check_books();

        // A withdrawal, then the same request again: one transfer.
        let w = net.withdraw(3_000, 1).expect("withdrawn");
        assert!(matches!(w.state, WithdrawalState::Done { .. }), "{w:?}");
        assert_eq!(w.credit, 7_000);
        assert_eq!(net.balance(recipient()), 3_000 - LEDGER_FEE);
        let again = net.withdraw(3_000, 1).expect("the same withdrawal");
        assert_eq!((again.id, again.state), (w.id, w.state));
        assert_eq!(net.balance(recipient()), 3_000 - LEDGER_FEE);
        net.check_books();

        // The ledger executes the next transfer and loses the answer.
        inject_fault(
            &*ic,
            net.ledger,
            None,
            "icrc1_transfer",
            FaultMode::ApplyThenTrap {
                message: "answer lost".into(),
            },
            1,
        );
        let pending = net.withdraw(2_000, 2).expect("pending");
        assert!(
            matches!(pending.state, WithdrawalState::Pending { .. }),
            "{pending:?}"
        );
        assert_eq!(pending.credit, 5_000, "debited before the transfer");
        assert_eq!(
            net.balance(recipient()),
            4_980,
            "executed although unanswered"
        );
        net.check_books();

        // Upgraded (stopped first), the hub keeps the pending withdrawal.
        ic.upgrade(
            net.hub,
            wasm("confirmation"),
            Arg::Upgrade(Some(UpgradeArgs::default())),
            None,
        )
        .expect("upgrade");
        let kept: Option<CreditWithdrawal> = ic
            .query(net.hub, "get_withdrawal", pending.id)
            .expect("query");
        assert!(matches!(
            kept.as_ref().map(|w| &w.state),
            Some(WithdrawalState::Pending { .. })
        ));
        assert_eq!(net.status().withdrawals_pending, 1);

        // The fee timer retries the same transaction: Duplicate, done, paid once.
        ic.advance_and_settle(Duration::from_secs(61));
        ic.advance_and_settle(Duration::from_secs(61));
        let done: Option<CreditWithdrawal> = ic
            .query(net.hub, "get_withdrawal", pending.id)
            .expect("query");
        assert!(
            matches!(
                done.as_ref().map(|w| &w.state),
                Some(WithdrawalState::Done { .. })
            ),
            "{done:?}"
        );
        assert_eq!(net.balance(recipient()), 4_980);
        let status = net.status();
        assert_eq!((status.withdrawn, status.withdrawals_pending), (5_000, 0));
        assert_eq!(net.account().withdrawn, 5_000);
        net.check_books();
    }
}
