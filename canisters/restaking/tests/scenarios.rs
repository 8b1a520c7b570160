//! Restaking end to end on the real Wasm of `restaking`, `staking` and the ICRC ledger
//! fixture, through `libs/ic-testkit`: every scenario runs on the emulator, and on PocketIC
//! too when `POCKET_IC_BIN` is set. After every step (`Suite::check`): what staking has locked
//! per owner equals what restaking counts as locked, adjusted by the journaled ops staking
//! already applied (read from staking's `get_hook`), so equal once no op is pending; once
//! settled, the slashes restaking recorded equal what staking took.
//!
//! Needs `bash scripts/build.sh restaking staking icrc_ledger`.
//!
//! Failures that only need the neutral API are injected by stopping staking (a stopped
//! canister rejects with `CANISTER_ERROR`, the reject code of a trap) and by upgrading it
//! while an op is journaled; the ones that need to hold messages (a bounded-wait timeout after
//! staking applied the op, an upgrade with the request in flight) are in
//! `emulator_faults.rs`, which only the emulator can run.

mod common;

use candid::{Nat, Principal};
use common::*;
use ic_testkit::{CanisterRunStatus, IcBackendExt, backends_for_test};
use icrc_ledger_types::icrc1::account::Account;
use restaking::types::{
    Arg, AssetWeight, AvsKind, DelegateArgs, DepositRewardsArgs, EventsPage, RegisterAvsArgs,
    RequestSlashArgs, RestakingError, TokenAmount,
};

/// Deposits rewards through ICRC-2 and pays them out: delegators pro rata to their stake,
/// the operator its 10 % commission, a claim to a named recipient; every payout is the owed
/// amount minus the ledger fee, and nothing is paid twice.
#[test]
fn should_deposit_and_claim_rewards_for_delegators_and_the_operator() {
    for ic in backends_for_test("should_deposit_and_claim_rewards_for_delegators_and_the_operator")
    {
        let s = Suite::new(ic.as_ref(), 3);
        let stakes = [10 * E18, 20 * E18, 30 * E18];
        for (u, amount) in s.users.iter().zip(stakes) {
            s.stake(*u, amount);
            s.delegate(*u, amount).expect("delegate");
            s.check_settled();
        }
        s.allocate(10_000);
        s.ic.advance_time(DAY);
        s.ic.tick();

        // The hub (here: the funder) pays 6 ckETH of fees to the confirmation AVS.
        let deposit = 6 * E18;
        let before = s.balance(Account::from(s.restaking));
        s.approve(funder(), s.restaking, deposit + FEE);
        let r: Result<(), RestakingError> = s.update(
            funder(),
            "deposit_rewards",
            DepositRewardsArgs {
                avs: "confirmation".into(),
                token: s.eth,
                amount: Nat::from(deposit),
                period_seconds: None,
                created_at_time: None,
                memo: None,
            },
        );
        r.expect("deposit_rewards");
        assert_eq!(s.balance(Account::from(s.restaking)), before + deposit);
        // Without an allowance: the ledger's refusal comes back typed, nothing is credited.
        let r: Result<(), RestakingError> = s.update(
            funder(),
            "deposit_rewards",
            DepositRewardsArgs {
                avs: "confirmation".into(),
                token: s.eth,
                amount: Nat::from(deposit),
                period_seconds: None,
                created_at_time: None,
                memo: None,
            },
        );
        assert!(matches!(r, Err(RestakingError::LedgerError(_))), "{r:?}");

        // 10 % commission, the rest pro rata 1 : 2 : 3 (rounded down).
        let commission = s.commission_owed();
        assert_eq!(commission, deposit / 10);
        let rest = deposit - commission;
        let owed: Vec<u128> = s.users.iter().map(|u| s.owed(*u)).collect();
        for (o, amount) in owed.iter().zip(stakes) {
            let exact = rest * (amount / E18) / 60;
            assert!(*o <= exact && *o + 3 >= exact, "{o} vs {exact}");
        }
        assert!(owed.iter().sum::<u128>() + commission <= deposit);

        // A delegator claims to itself, another to a recipient it names, the operator its
        // commission.
        let b0 = s.balance(Account::from(s.users[0]));
        let paid: Result<Vec<TokenAmount>, RestakingError> =
            s.update(s.users[0], "claim_rewards", None::<Principal>);
        let paid = paid.expect("claim");
        assert_eq!(paid.len(), 1);
        assert_eq!(nat(&paid[0].amount), owed[0]);
        assert_eq!(s.balance(Account::from(s.users[0])), b0 + owed[0] - FEE);
        let recipient = user(77);
        let paid: Result<Vec<TokenAmount>, RestakingError> =
            s.update(s.users[1], "claim_rewards", Some(recipient));
        paid.expect("claim to a recipient");
        assert_eq!(s.balance(Account::from(recipient)), owed[1] - FEE);
        let b_op = s.balance(Account::from(operator()));
        let paid: Result<Vec<TokenAmount>, RestakingError> =
            s.update(operator(), "claim_rewards", None::<Principal>);
        paid.expect("operator claim");
        assert_eq!(
            s.balance(Account::from(operator())),
            b_op + commission - FEE
        );
        // Nothing is paid twice.
        let again: Result<Vec<TokenAmount>, RestakingError> =
            s.update(s.users[0], "claim_rewards", None::<Principal>);
        assert_eq!(again, Err(RestakingError::NothingToClaim));
        s.check_settled();
        // Restaking still holds what is owed to the third delegator.
        assert!(s.balance(Account::from(s.restaking)) >= before + owed[2]);

        // An upgrade of restaking keeps what is owed; the claim after it pays it.
        s.upgrade_restaking();
        assert_eq!(s.owed(s.users[2]), owed[2]);
        let paid: Result<Vec<TokenAmount>, RestakingError> =
            s.update(s.users[2], "claim_rewards", None::<Principal>);
        paid.expect("claim after upgrade");
        s.check_settled();
    }
}

fn register_two_asset_avs(s: &Suite, id: &str, btc: Principal, eth_bps: u32, btc_bps: u32) {
    let r: Result<(), RestakingError> = s.update(
        admin(),
        "register_avs",
        RegisterAvsArgs {
            id: id.into(),
            name: id.into(),
            kind: AvsKind::Other,
            slashers: vec![admin()],
            asset_weights: vec![
                AssetWeight {
                    ledger: s.eth,
                    weight_bps: eth_bps,
                },
                AssetWeight {
                    ledger: btc,
                    weight_bps: btc_bps,
                },
            ],
            max_slash_bps: 1_000,
            veto_window_seconds: 0,
            resolvers: vec![],
            reward_tokens: vec![s.eth],
            redistribution_account: None,
        },
    );
    r.expect("register a two-asset AVS");
}

fn deposit(s: &Suite, avs: &str, amount: u128) -> Result<(), RestakingError> {
    s.update(
        funder(),
        "deposit_rewards",
        DepositRewardsArgs {
            avs: avs.into(),
            token: s.eth,
            amount: Nat::from(amount),
            period_seconds: None,
            created_at_time: None,
            memo: None,
        },
    )
}

/// An AVS's weight is per whole token, whatever the ledger's decimals (restaking reads them
/// from each ledger at `register_avs`): 1 ckETH (10^18 units) and 1 ckBTC (10^8 units)
/// allocated with equal weights earn equal rewards, and a 1 : 3 weight ratio splits 1 : 3.
/// A deposit that no stake could receive is refused before anything is pulled.
#[test]
fn should_weigh_one_cketh_and_one_ckbtc_alike_whatever_their_decimals() {
    for ic in
        backends_for_test("should_weigh_one_cketh_and_one_ckbtc_alike_whatever_their_decimals")
    {
        let s = Suite::new(ic.as_ref(), 2);
        let btc = s.add_btc();
        register_two_asset_avs(&s, "equal", btc, 10_000, 10_000);
        register_two_asset_avs(&s, "btc3x", btc, 10_000, 30_000);

        // Nothing allocated yet: refused typed, nothing pulled, the allowance intact.
        s.approve(funder(), s.restaking, E18 + FEE);
        let before = s.balance(Account::from(funder()));
        assert_eq!(
            deposit(&s, "equal", E18),
            Err(RestakingError::NoAllocatedStake)
        );
        assert_eq!(s.balance(Account::from(funder())), before);

        // 2 ckETH and 2 ckBTC delegated; half of each pool to each AVS: 1 token each.
        s.stake(s.users[0], 2 * E18);
        s.delegate(s.users[0], 2 * E18).expect("delegate ckETH");
        s.stake_on(btc, BTC_FEE, s.users[1], 2 * E8);
        s.delegate_on(btc, s.users[1], 2 * E8)
            .expect("delegate ckBTC");
        for avs in ["equal", "btc3x"] {
            s.allocate_on(avs, s.eth, 5_000);
            s.allocate_on(avs, btc, 5_000);
        }
        s.ic.advance_time(DAY);
        s.ic.tick();
        s.check_settled();

        // Equal weights: 1 ckETH of rewards splits 1 : 1 (10 % commission on each pool).
        deposit(&s, "equal", E18).expect("deposit to equal");
        let (eth_staker, btc_staker) = (s.users[0], s.users[1]);
        assert_eq!(s.owed_of(eth_staker, s.eth), 45 * E18 / 100);
        assert_eq!(s.owed_of(btc_staker, s.eth), 45 * E18 / 100);
        assert_eq!(s.owed_of(operator(), s.eth), E18 / 10);

        // ckBTC weighs 3× per whole token: 4 ckETH split 1 : 3.
        s.approve(funder(), s.restaking, 4 * E18 + FEE);
        deposit(&s, "btc3x", 4 * E18).expect("deposit to btc3x");
        assert_eq!(s.owed_of(eth_staker, s.eth), 45 * E18 / 100 + 9 * E18 / 10);
        assert_eq!(s.owed_of(btc_staker, s.eth), 45 * E18 / 100 + 27 * E18 / 10);
        assert_eq!(s.owed_of(operator(), s.eth), E18 / 10 + 4 * E18 / 10);

        // The decimals are in the event log: the split survives an upgrade unchanged.
        s.upgrade_restaking();
        assert_eq!(s.owed_of(btc_staker, s.eth), 45 * E18 / 100 + 27 * E18 / 10);
        s.check_settled();
    }
}

/// Staking refuses (stopped: every call is rejected) in the middle of a lock, a slash and an
/// unlock, and is upgraded (stopped, upgraded, started: the production procedure) while they
/// are journaled; restaking is upgraded too with an unlock journaled. Each op stays pending,
/// is retried with the same op id, and settles exactly once; after every step (while staking
/// runs) the locked amounts agree, counting the pending ops staking applied, and once settled
/// the slashes restaking recorded are what staking took.
#[test]
fn should_settle_each_journaled_op_once_when_staking_rejects_or_is_upgraded() {
    for ic in backends_for_test(
        "should_settle_each_journaled_op_once_when_staking_rejects_or_is_upgraded",
    ) {
        let s = Suite::new(ic.as_ref(), 2);
        let amount = 10 * E18;
        for u in &s.users {
            s.stake(*u, amount);
        }
        s.delegate(s.users[0], amount / 2).expect("delegate");
        s.check_settled();
        let stop = || {
            s.ic.run_until_idle();
            s.ic.stop_canister(s.staking, Some(admin())).expect("stop");
        };
        let start = || {
            s.ic.start_canister(s.staking, Some(admin()))
                .expect("start");
        };

        // Lock: staking is stopped, the call is rejected; the delegation is not in effect yet.
        stop();
        let r = s.delegate(s.users[1], amount / 2);
        assert!(matches!(r, Err(RestakingError::Pending { .. })), "{r:?}");
        assert_eq!(s.pending_ops(), 1);
        assert!(s.staker(s.users[1]).delegations.is_empty());
        assert_eq!(s.restaking_locked(s.users[1]), 0);
        // Retried while still stopped: still pending, nothing applied.
        s.process();
        assert_eq!(s.pending_ops(), 1);
        // Upgraded while the lock is journaled, then restarted: the retry settles it once.
        s.upgrade_staking();
        start();
        s.check();
        assert_eq!(
            s.staking_locked(s.users[1]),
            0,
            "staking applied nothing yet"
        );
        s.process();
        s.check_settled();
        assert_eq!(s.staking_locked(s.users[1]), amount / 2);
        // Retrying again changes nothing (the op id is spent on both sides).
        s.process();
        s.check_settled();
        assert_eq!(s.staking_locked(s.users[1]), amount / 2);

        // Slash: 10 % of the allocation, executed at once (no veto window); settlement
        // journals one slash op per delegator and sends them as one batch.
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
        let id = r.expect("request slash");
        let r: Result<(), RestakingError> = s.update(admin(), "execute_slash", id);
        r.expect("execute slash");
        s.check();
        stop();
        s.process();
        // Restaking journaled the losses; staking has not taken them yet.
        assert_eq!(s.pending_ops(), 2);
        assert_eq!(s.restaking_locked(s.users[0]), amount / 2);
        s.upgrade_staking();
        start();
        // A stopped canister answers no query: staking is read once it runs again, before
        // restaking retries.
        s.check();
        assert_eq!(s.staking_locked(s.users[0]), amount / 2);
        assert_eq!(s.slashes_taken_by_staking(), 0);
        s.process();
        s.check_settled();
        let left = amount / 2 - amount / 20;
        assert_eq!(s.staking_locked(s.users[0]), left);
        assert_eq!(s.staking_locked(s.users[1]), left);
        assert_eq!(s.staking_staked(s.users[0]), amount - amount / 20);
        assert_eq!(s.slashes_recorded(), 2 * (amount / 20));
        assert_eq!(s.slashes_taken_by_staking(), 2 * (amount / 20));

        // Unlock: undelegate, then staking stops before the delay is over, so the unlock
        // (by restaking's timer or by `complete_withdrawal`) meets a stopped staking.
        let r: Result<u64, RestakingError> = s.update(
            s.users[0],
            "undelegate",
            DelegateArgs {
                operator: operator(),
                ledger: s.eth,
                amount: Nat::from(left),
            },
        );
        let wid = r.expect("undelegate");
        s.check_settled();
        stop();
        s.pass_time(8 * DAY);
        // Completed by this call, or already by restaking's timer during its rounds.
        let r: Result<(), RestakingError> = s.update(s.users[0], "complete_withdrawal", wid);
        assert!(
            matches!(r, Ok(()) | Err(RestakingError::UnknownWithdrawal { .. })),
            "{r:?}"
        );
        let ops = s.pending_op_views();
        assert_eq!(ops.len(), 1, "{ops:?}");
        assert_eq!(ops[0].kind, "unlock");
        assert_eq!(
            s.restaking_locked(s.users[0]),
            left,
            "the unlock is journaled"
        );
        // Restaking is upgraded too while the unlock is journaled: the journal is replayed.
        s.upgrade_restaking();
        assert_eq!(s.pending_op_views(), ops);
        start();
        s.check();
        s.process();
        s.check_settled();
        assert_eq!(s.staking_locked(s.users[0]), 0);
        assert_eq!(s.staking_locked(s.users[1]), left);
        assert_eq!(
            s.staking_staked(s.users[0]),
            amount - amount / 20,
            "unlocked, not taken"
        );
        assert_eq!(s.slashes_taken_by_staking(), 2 * (amount / 20));
    }
}

/// Restaking refuses an upgrade unless it is stopped (`stratros-upgrade-guard`, first thing
/// in `pre_upgrade`): `install_code` in upgrade mode on the running canister, with an op
/// journaled and its call context gone, fails with "stop it first", and nothing changed: the
/// same module, still running, the same event log (count and tip hash) and the same state;
/// it keeps working. The production procedure (stop, upgrade, start) then succeeds.
#[test]
fn should_refuse_an_upgrade_in_place_of_a_running_canister_and_change_nothing() {
    for ic in backends_for_test(
        "should_refuse_an_upgrade_in_place_of_a_running_canister_and_change_nothing",
    ) {
        let s = Suite::new(ic.as_ref(), 2);
        let amount = 10 * E18;
        for u in &s.users {
            s.stake(*u, amount);
        }
        s.delegate(s.users[0], amount).expect("delegate");
        s.allocate(10_000);
        // A journaled lock (staking stopped: rejected, pending), so there is state to lose.
        s.ic.run_until_idle();
        s.ic.stop_canister(s.staking, Some(admin()))
            .expect("stop staking");
        let r = s.delegate(s.users[1], amount);
        assert!(matches!(r, Err(RestakingError::Pending { .. })), "{r:?}");
        s.ic.start_canister(s.staking, Some(admin()))
            .expect("start staking");
        let snapshot = || {
            let status =
                s.ic.canister_status(s.restaking, Some(admin()))
                    .expect("status");
            let page: EventsPage =
                s.ic.query_args::<_, (EventsPage,)>(s.restaking, None, "get_events", (0u64, 0u64))
                    .expect("get_events")
                    .0;
            let (tip,): (EventsPage,) =
                s.ic.query_args(
                    s.restaking,
                    None,
                    "get_events",
                    (page.total.saturating_sub(1), 1u64),
                )
                .expect("get_events");
            (
                status.status,
                status.module_hash,
                page.total,
                tip.events.last().map(|e| e.hash.clone()),
                s.pending_op_views(),
                [s.staker(s.users[0]), s.staker(s.users[1])],
                s.restaking_locked(s.users[0]),
            )
        };
        let before = snapshot();
        assert_eq!(before.0, CanisterRunStatus::Running);
        assert_eq!(before.4.len(), 1, "the lock is journaled");

        let e =
            s.ic.upgrade_in_place(
                s.restaking,
                wasm("restaking"),
                Some(Arg::Upgrade(None)),
                Some(admin()),
            )
            .expect_err("a running restaking refuses the upgrade");
        assert!(e.to_string().contains("stop it first"), "{e}");
        assert_eq!(snapshot(), before, "a refused upgrade changed something");

        // The old module keeps working: the journaled lock settles.
        s.process();
        s.check_settled();
        assert_eq!(s.restaking_locked(s.users[1]), amount);
        // The production procedure succeeds and replays the same log.
        let settled = snapshot();
        s.upgrade_restaking();
        assert_eq!(snapshot(), settled);
        s.check_settled();
    }
}
