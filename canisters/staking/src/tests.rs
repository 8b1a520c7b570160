//! Native tests of the state machine: rewards, locks, hooks, journals, replay.

use candid::Principal;

use crate::events::{Acct, Event, InKind, OutKind, P, SlashTo};
use crate::state::State;

const S: u64 = 1_000_000_000;
const DAY: u64 = 24 * 3600 * S;

fn ledger() -> Principal {
    Principal::from_slice(&[1, 1])
}

fn user(n: u8) -> Principal {
    Principal::from_slice(&[9, n])
}

fn base() -> (State, Vec<(u64, Event)>) {
    let events = vec![
        (
            1,
            Event::Init {
                restaking: Some(P(Principal::from_slice(&[7]))),
                unbonding_seconds: 7 * 24 * 3600,
                reward_period_seconds: 10 * 24 * 3600,
                slash_to: SlashTo::Burn,
                reconcile_interval_seconds: 60,
            },
        ),
        (
            2,
            Event::AssetAdded {
                ledger: P(ledger()),
                min_stake: 100,
            },
        ),
        (
            3,
            Event::AssetMetadata {
                ledger: P(ledger()),
                symbol: "T".into(),
                decimals: 8,
                fee: 10,
                minting_account: Some(Acct {
                    owner: P(Principal::from_slice(&[5])),
                    subaccount: None,
                }),
            },
        ),
    ];
    let mut s = State::empty();
    for (t, e) in &events {
        s.apply(*t, e);
    }
    (s, events)
}

struct Sim {
    state: State,
    log: Vec<(u64, Event)>,
}

impl Sim {
    fn new() -> Self {
        let (state, log) = base();
        Sim { state, log }
    }
    fn apply(&mut self, t: u64, e: Event) {
        self.state.apply(t, &e);
        self.log.push((t, e));
        self.state.check_invariants().expect("invariants");
    }
    fn incoming(&mut self, t: u64, owner: Principal, amount: u128, kind: InKind) {
        let id = self.state.next_op_id();
        self.apply(
            t,
            Event::InStarted {
                id,
                owner: P(owner),
                ledger: P(ledger()),
                amount,
                kind,
                created_at_time: t,
            },
        );
        self.apply(t, Event::InSettled { id, block: None });
    }
    fn stake(&mut self, t: u64, owner: Principal, amount: u128, lock: Option<u64>) {
        self.incoming(t, owner, amount, InKind::Stake { lock_seconds: lock });
    }
    fn fund(&mut self, t: u64, amount: u128) {
        self.incoming(t, user(200), amount, InKind::Fund);
    }
    fn pending(&self, owner: Principal, t: u64) -> u128 {
        self.state.pending_rewards_at(owner, ledger(), t)
    }
    fn replayed(&self) -> State {
        let mut s = State::empty();
        for (t, e) in &self.log {
            s.apply(*t, e);
        }
        s
    }
}

#[test]
fn should_split_rewards_pro_rata_and_never_pay_more_than_funded() {
    let mut sim = Sim::new();
    sim.stake(10, user(1), 1_000, None);
    sim.stake(10, user(2), 3_000, None);
    sim.fund(10, 1_000_001);
    let end = 10 + 10 * DAY;
    let a = sim.pending(user(1), end + 1);
    let b = sim.pending(user(2), end + 1);
    assert_eq!(a, 250_000);
    assert_eq!(b, 750_000);
    assert!(a + b <= 1_000_001, "rounding favours the protocol");
}

#[test]
fn should_stream_linearly_over_the_period() {
    let mut sim = Sim::new();
    sim.stake(10, user(1), 1_000, None);
    sim.fund(10, 1_000_000);
    let half = sim.pending(user(1), 10 + 5 * DAY);
    assert_eq!(half, 500_000);
}

#[test]
fn should_weight_two_year_lock_double() {
    let mut sim = Sim::new();
    sim.stake(
        10,
        user(1),
        1_000,
        Some(stratros_staking_api::MAX_LOCK_SECONDS),
    );
    sim.stake(10, user(2), 1_000, None);
    sim.fund(10, 3_000_000);
    let a = sim.pending(user(1), 10 + 11 * DAY);
    let b = sim.pending(user(2), 10 + 11 * DAY);
    assert_eq!((a, b), (2_000_000, 1_000_000));
}

#[test]
fn should_drop_the_lock_bonus_exactly_at_expiry() {
    let mut sim = Sim::new();
    // Locked for 5 days of a 10-day stream at ~1.007x weight vs. an unlocked equal stake.
    sim.stake(10, user(1), 1_000_000, Some(5 * 24 * 3600));
    sim.stake(10, user(2), 1_000_000, None);
    sim.fund(10, 10_000_000);
    // An event after expiry ends the bonus at its exact (hour-aligned) time.
    sim.stake(10 + 8 * DAY, user(3), 1_000, None);
    let a = sim.state.asset(ledger()).expect("asset");
    assert_eq!(a.weight, 2_001_000, "only base weights after expiry");
    // From the expiry on, both earn alike.
    let d1 = sim.pending(user(1), 10 + 9 * DAY) - sim.pending(user(1), 10 + 8 * DAY);
    let d2 = sim.pending(user(2), 10 + 9 * DAY) - sim.pending(user(2), 10 + 8 * DAY);
    assert!(d1.abs_diff(d2) <= 1, "{d1} vs {d2}");
    // Before it, the locked one earned more.
    assert!(sim.pending(user(1), 10 + 4 * DAY) > sim.pending(user(2), 10 + 4 * DAY));
    // Touching the position settles the bonus lazily.
    let before = sim.pending(user(1), 10 + 8 * DAY + 1);
    sim.stake(10 + 8 * DAY + 1, user(1), 1_000, None);
    let p = sim.state.position(user(1), ledger()).expect("position");
    assert_eq!((p.lock_until, p.weight_bps), (0, 10_000));
    assert_eq!(p.rewards, before);
    let replay = sim.replayed();
    assert_eq!(replay, sim.state, "replay takes the same steps");
}

#[test]
fn should_pause_the_stream_while_nothing_is_staked() {
    let mut sim = Sim::new();
    sim.fund(10, 1_000_000);
    sim.stake(10 + 5 * DAY, user(1), 1_000, None);
    assert_eq!(sim.pending(user(1), 10 + 10 * DAY), 500_000);
    assert_eq!(sim.pending(user(1), 10 + 16 * DAY), 1_000_000);
}

#[test]
fn should_keep_exact_totals_through_unstake_cancel_withdraw_and_claim() {
    let mut sim = Sim::new();
    sim.stake(10, user(1), 5_000, None);
    sim.fund(10, 1_000_000);
    let uid = sim.state.next_unbonding_id();
    sim.apply(
        20,
        Event::Unstaked {
            owner: P(user(1)),
            ledger: P(ledger()),
            amount: 2_000,
            unbonding_id: uid,
            ready_at: 20 + 7 * DAY,
        },
    );
    sim.apply(
        30,
        Event::UnstakeCancelled {
            owner: P(user(1)),
            unbonding_id: uid,
        },
    );
    let uid = sim.state.next_unbonding_id();
    sim.apply(
        40,
        Event::Unstaked {
            owner: P(user(1)),
            ledger: P(ledger()),
            amount: 1_000,
            unbonding_id: uid,
            ready_at: 40 + 7 * DAY,
        },
    );
    let id = sim.state.next_op_id();
    let to = Acct {
        owner: P(user(1)),
        subaccount: None,
    };
    sim.apply(
        50 + 7 * DAY,
        Event::OutStarted {
            id,
            kind: OutKind::Withdraw,
            owner: P(user(1)),
            ledger: P(ledger()),
            to: to.clone(),
            amount: 1_000,
            fee: 10,
            created_at_time: 50 + 7 * DAY,
            unbonding_ids: vec![uid],
            slash_to: None,
        },
    );
    // The ledger refuses: the unbonding comes back.
    sim.apply(51 + 7 * DAY, Event::OutFailed { id });
    assert_eq!(sim.state.asset(ledger()).map(|a| a.unbonding), Some(1_000));
    let id = sim.state.next_op_id();
    sim.apply(
        52 + 7 * DAY,
        Event::OutStarted {
            id,
            kind: OutKind::Claim,
            owner: P(user(1)),
            ledger: P(ledger()),
            to,
            amount: u128::MAX,
            fee: 10,
            created_at_time: 52 + 7 * DAY,
            unbonding_ids: vec![],
            slash_to: None,
        },
    );
    let claimed = sim.state.pending_out()[&id].amount;
    assert!(claimed > 0 && claimed <= 1_000_000);
    sim.apply(53 + 7 * DAY, Event::OutSettled { id, block: Some(9) });
    assert_eq!(sim.replayed(), sim.state);
}

#[test]
fn should_slash_only_locked_stake_and_move_it_to_unsent() {
    let mut sim = Sim::new();
    sim.stake(10, user(1), 5_000, None);
    sim.apply(
        20,
        Event::Locked {
            op_id: 1,
            owner: P(user(1)),
            ledger: P(ledger()),
            amount: 3_000,
        },
    );
    sim.apply(
        30,
        Event::Slashed {
            op_id: 2,
            owner: P(user(1)),
            ledger: P(ledger()),
            amount: 1_000,
            to: None,
        },
    );
    let redistribution = Acct {
        owner: P(user(9)),
        subaccount: Some([7; 32]),
    };
    sim.apply(
        31,
        Event::Slashed {
            op_id: 3,
            owner: P(user(1)),
            ledger: P(ledger()),
            amount: 500,
            to: Some(SlashTo::Account(redistribution.clone())),
        },
    );
    let a = sim.state.asset(ledger()).expect("asset");
    assert_eq!(
        (a.staked, a.locked, a.slashed_unsent),
        (3_500, 1_500, 1_500)
    );
    // Each destination has its own bucket: the configured one (burn) and the AVS's account.
    assert_eq!(a.slash_queue.get(&SlashTo::Burn), Some(&1_000));
    assert_eq!(
        a.slash_queue.get(&SlashTo::Account(redistribution.clone())),
        Some(&500)
    );
    assert_eq!(
        sim.state.hook(2).and_then(|h| h.to.clone()),
        Some(SlashTo::Burn)
    );
    // Sending the account's bucket drains only it; a refusal puts it back in the same bucket.
    let id = sim.state.next_op_id();
    sim.apply(
        40,
        Event::OutStarted {
            id,
            kind: OutKind::Slash,
            owner: P(user(0)),
            ledger: P(ledger()),
            to: redistribution.clone(),
            amount: 500,
            fee: 10,
            created_at_time: 40,
            unbonding_ids: vec![],
            slash_to: Some(SlashTo::Account(redistribution.clone())),
        },
    );
    let a = sim.state.asset(ledger()).expect("asset");
    assert_eq!((a.slashed_unsent, a.in_flight), (1_000, 500));
    assert_eq!(a.slash_queue.len(), 1);
    sim.apply(41, Event::OutFailed { id });
    let a = sim.state.asset(ledger()).expect("asset");
    assert_eq!(
        a.slash_queue.get(&SlashTo::Account(redistribution)),
        Some(&500)
    );
    assert_eq!(sim.replayed(), sim.state);
}

#[test]
fn should_handle_ck_eth_amounts_beyond_u64() {
    let mut sim = Sim::new();
    let big = u128::from(u64::MAX) * 1_000_000;
    sim.stake(
        10,
        user(1),
        big,
        Some(stratros_staking_api::MAX_LOCK_SECONDS),
    );
    sim.stake(10, user(2), big, None);
    sim.fund(10, big * 3);
    let a = sim.pending(user(1), 11 * DAY);
    let b = sim.pending(user(2), 11 * DAY);
    assert!(a + b <= big * 3);
    assert!(big * 3 - (a + b) < 10, "at most a few units of rounding");
    assert!(
        a.abs_diff(2 * b) <= 2,
        "a 2-year lock earns twice: {a} vs {b}"
    );
}

#[test]
fn should_round_trip_events_through_cbor() {
    let (_, mut events) = base();
    events.push((
        4,
        Event::OutResent {
            id: 7,
            created_at_time: 5,
        },
    ));
    for (t, e) in events {
        let entry = crate::events::Entry {
            timestamp: t,
            event: e,
        };
        let bytes = crate::events::encode_entry(&entry);
        assert_eq!(crate::events::decode_entry(&bytes), entry);
    }
}

#[test]
fn should_match_the_checked_in_candid_interface() {
    use candid_parser::utils::{CandidSource, service_equal};
    let generated = super::__export_service();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../candid/staking.did");
    if std::env::var_os("UPDATE_CANDID").is_some() {
        std::fs::write(&path, &generated).expect("cannot write the .did file");
    }
    service_equal(CandidSource::Text(&generated), CandidSource::File(&path)).unwrap_or_else(|e| {
        panic!(
            "candid/staking.did differs from the generated interface \
             (regenerate with UPDATE_CANDID=1 cargo test -p staking): {e}\n{generated}"
        )
    });
}

#[test]
fn should_parse_the_mainnet_init_arguments() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("init/ic.did.args");
    let text = std::fs::read_to_string(&path).expect("read init/ic.did.args");
    let args = candid_parser::parse_idl_args(&text).expect("candid text");
    let bytes = args.to_bytes().expect("encode");
    let arg: stratros_staking_api::Arg = candid::decode_one(&bytes).expect("an Arg");
    let stratros_staking_api::Arg::Init(init) = arg else {
        panic!("expected Init");
    };
    let ids: Vec<String> = init.assets.iter().map(|a| a.ledger.to_text()).collect();
    assert_eq!(
        ids,
        [
            "mxzaz-hqaaa-aaaar-qaada-cai",
            "ss2fx-dyaaa-aaaar-qacoq-cai",
            "ryjl3-tyaaa-aaaaa-aaaba-cai",
            "xevnm-gaaaa-aaaar-qafnq-cai"
        ]
    );
}

#[test]
fn should_handle_locks_too_short_for_a_bonus() {
    let mut sim = Sim::new();
    // One hour of lock on a small stake: the bonus rounds to nothing.
    sim.stake(10, user(1), 1_000, Some(3600));
    sim.stake(20, user(1), 1_000, Some(7200));
    sim.fund(30, 1_000);
    sim.stake(10 + 3 * DAY, user(1), 1_000, None);
    assert_eq!(sim.replayed(), sim.state);
}

// ----- the async flows, with a stub ledger -----------------------------------------------------

mod flows {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use candid::{Nat, Principal};
    use futures::executor::block_on;
    use icrc_ledger_types::icrc::generic_value::ICRC3Value;
    use icrc_ledger_types::icrc1::account::Account;
    use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
    use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
    use icrc_ledger_types::icrc3::archive::QueryArchiveFn;
    use icrc_ledger_types::icrc3::blocks::{
        ArchivedBlocks, BlockWithId, GetBlocksRequest, GetBlocksResult,
    };
    use stratros_staking_api::{
        Arg, AssetArg, FundRewardsArgs, HookArgs, HookError, HookKindView, InitArgs,
        NotifyDepositArgs, SlashBatchArgs, SlashDestination, StakeArgs, StakeError, UnstakeArgs,
    };

    use crate::log::read_state;
    use crate::ops;
    use crate::runtime::{CallError, LedgerMeta, Runtime};
    use crate::state::HookKind;

    type TfReply = Result<Result<Nat, TransferFromError>, CallError>;
    type TReply = Result<Result<Nat, TransferError>, CallError>;

    struct Stub {
        caller: RefCell<Principal>,
        now: RefCell<u64>,
        transfer_from: RefCell<VecDeque<TfReply>>,
        transfer: RefCell<VecDeque<TReply>>,
        seen_from: RefCell<Vec<TransferFromArgs>>,
        seen: RefCell<Vec<TransferArg>>,
        /// What `balance_of` answers (the deposit subaccount, or the main account).
        balance: RefCell<u128>,
        /// The ledger's ICRC-3 blocks; `None`: no `icrc3_get_blocks` (a reject).
        blocks: RefCell<Option<Vec<ICRC3Value>>>,
        /// Blocks below this index are archived (not served by the ledger).
        archived_below: RefCell<u64>,
        /// `icrc3_get_blocks` calls as (start, length).
        block_calls: RefCell<Vec<(u64, u64)>>,
    }

    impl Runtime for Stub {
        fn time(&self) -> u64 {
            *self.now.borrow()
        }
        fn caller(&self) -> Principal {
            *self.caller.borrow()
        }
        fn canister_id(&self) -> Principal {
            Principal::from_slice(&[3, 3])
        }
        fn is_controller(&self, p: &Principal) -> bool {
            *p == controller()
        }
        fn set_certified_data(&self, _: &[u8; 32]) {}
        async fn transfer(&self, _: Principal, arg: TransferArg) -> TReply {
            self.seen.borrow_mut().push(arg);
            self.transfer
                .borrow_mut()
                .pop_front()
                .unwrap_or(Ok(Ok(Nat::from(1u8))))
        }
        async fn transfer_from(&self, _: Principal, arg: TransferFromArgs) -> TfReply {
            self.seen_from.borrow_mut().push(arg);
            self.transfer_from
                .borrow_mut()
                .pop_front()
                .unwrap_or(Ok(Ok(Nat::from(1u8))))
        }
        async fn balance_of(&self, _: Principal, _: Account) -> Result<Nat, CallError> {
            Ok(Nat::from(*self.balance.borrow()))
        }
        async fn metadata(&self, _: Principal) -> Result<LedgerMeta, CallError> {
            Ok(LedgerMeta {
                symbol: "ckBTC".into(),
                decimals: 8,
                fee: Nat::from(10u8),
                minting_account: None,
            })
        }
        async fn get_blocks(
            &self,
            _: Principal,
            start: u64,
            length: u64,
        ) -> Result<GetBlocksResult, CallError> {
            self.block_calls.borrow_mut().push((start, length));
            let blocks = self.blocks.borrow();
            let Some(blocks) = blocks.as_ref() else {
                return Err(CallError {
                    message: "no method icrc3_get_blocks".into(),
                });
            };
            let archived_below = *self.archived_below.borrow();
            let end = start
                .saturating_add(length.min(1_000))
                .min(blocks.len() as u64);
            let served: Vec<BlockWithId> = (start.max(archived_below)..end)
                .map(|i| BlockWithId {
                    id: Nat::from(i),
                    block: blocks[i as usize].clone(),
                })
                .collect();
            let archived_blocks = if start < archived_below.min(end) {
                vec![ArchivedBlocks {
                    args: vec![GetBlocksRequest {
                        start: Nat::from(start),
                        length: Nat::from(archived_below.min(end) - start),
                    }],
                    callback: QueryArchiveFn::new(Principal::from_slice(&[6, 6]), "get_blocks"),
                }]
            } else {
                vec![]
            };
            Ok(GetBlocksResult {
                log_length: Nat::from(blocks.len()),
                blocks: served,
                archived_blocks,
            })
        }
    }

    fn controller() -> Principal {
        Principal::from_slice(&[4, 4])
    }
    fn ledger() -> Principal {
        Principal::from_slice(&[1, 1])
    }
    fn alice() -> Principal {
        Principal::from_slice(&[9, 1])
    }
    fn restaking() -> Principal {
        Principal::from_slice(&[7])
    }

    fn setup() -> Stub {
        crate::storage::reset_memory();
        let rt = Stub {
            caller: RefCell::new(controller()),
            now: RefCell::new(1_000_000_000_000),
            transfer_from: RefCell::new(VecDeque::new()),
            transfer: RefCell::new(VecDeque::new()),
            seen_from: RefCell::new(vec![]),
            seen: RefCell::new(vec![]),
            balance: RefCell::new(0),
            blocks: RefCell::new(None),
            archived_below: RefCell::new(0),
            block_calls: RefCell::new(vec![]),
        };
        crate::history::reset();
        crate::lifecycle::init(
            &rt,
            Arg::Init(InitArgs {
                restaking: Some(restaking()),
                unbonding_seconds: Some(60),
                reward_period_seconds: None,
                slash_destination: None,
                assets: vec![AssetArg {
                    ledger: ledger(),
                    min_stake: Nat::from(100u8),
                }],
                reconcile_interval_seconds: None,
            }),
        )
        .expect("init");
        block_on(ops::reconcile(&rt));
        *rt.caller.borrow_mut() = alice();
        rt
    }

    fn stake(rt: &Stub, amount: u32) -> Result<Nat, StakeError> {
        block_on(ops::stake(
            rt,
            StakeArgs {
                ledger: ledger(),
                amount: Nat::from(amount),
                lock_seconds: None,
            },
        ))
        .map(|p| p.staked)
    }

    fn unknown() -> CallError {
        CallError {
            message: "timeout".into(),
        }
    }

    #[test]
    fn should_settle_an_unknown_stake_once_by_retrying_with_the_same_arguments() {
        let rt = setup();
        rt.transfer_from.borrow_mut().push_back(Err(unknown()));
        assert!(matches!(stake(&rt, 1_000), Err(StakeError::Pending { .. })));
        assert_eq!(read_state(|s| s.pending_in().len()), 1);
        rt.transfer_from
            .borrow_mut()
            .push_back(Ok(Err(TransferFromError::Duplicate {
                duplicate_of: Nat::from(5u8),
            })));
        *rt.now.borrow_mut() += 60_000_000_000;
        block_on(ops::reconcile(&rt));
        assert_eq!(read_state(|s| s.pending_in().len()), 0);
        let staked = read_state(|s| s.position(alice(), ledger()).map(|p| p.staked));
        assert_eq!(staked, Some(1_000));
        let seen = rt.seen_from.borrow();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[0], seen[1],
            "the retry reuses created_at_time and memo"
        );
    }

    #[test]
    fn should_refuse_a_second_operation_of_the_same_owner() {
        let rt = setup();
        let _guard = ops::OwnerGuard::new(alice()).expect("guard");
        assert_eq!(stake(&rt, 1_000), Err(StakeError::Busy));
    }

    #[test]
    fn should_return_the_reservation_when_the_ledger_refuses_a_withdrawal() {
        let rt = setup();
        stake(&rt, 1_000).expect("stake");
        ops::unstake(
            &rt,
            UnstakeArgs {
                ledger: ledger(),
                amount: Nat::from(500u32),
            },
        )
        .expect("unstake");
        *rt.now.borrow_mut() += 61_000_000_000;
        rt.transfer
            .borrow_mut()
            .push_back(Ok(Err(TransferError::InsufficientFunds {
                balance: Nat::from(0u8),
            })));
        let r = block_on(ops::withdraw(&rt, ledger()));
        assert!(matches!(
            r,
            Err(StakeError::Transfer(
                TransferError::InsufficientFunds { .. }
            ))
        ));
        let a = read_state(|s| s.asset(ledger()).cloned()).expect("asset");
        assert_eq!((a.unbonding, a.in_flight), (500, 0));
        // And it can be withdrawn later; the owner gets amount - fee.
        let w = block_on(ops::withdraw(&rt, ledger())).expect("withdraw");
        assert_eq!(w.amount, Nat::from(500u32));
        assert_eq!(
            rt.seen.borrow().last().map(|t| t.amount.clone()),
            Some(Nat::from(490u32))
        );
        read_state(|s| s.check_invariants()).expect("invariants");
    }

    #[test]
    fn should_accept_hooks_only_from_restaking_and_apply_each_op_id_once() {
        let rt = setup();
        stake(&rt, 1_000).expect("stake");
        let args = HookArgs {
            op_id: 1,
            owner: alice(),
            ledger: ledger(),
            amount: Nat::from(300u32),
        };
        assert_eq!(
            ops::hook(&rt, HookKind::Lock, args.clone()),
            Err(HookError::Unauthorized { caller: alice() })
        );
        *rt.caller.borrow_mut() = restaking();
        let first = ops::hook(&rt, HookKind::Lock, args.clone()).expect("lock");
        let again = ops::hook(&rt, HookKind::Lock, args.clone()).expect("lock again");
        assert_eq!(first, again);
        assert_eq!(first.locked, Nat::from(300u32));
        assert_eq!(
            ops::hook(&rt, HookKind::Unlock, args),
            Err(HookError::OperationConflict { op_id: 1 })
        );
    }

    #[test]
    fn should_stake_a_notified_deposit_minus_the_sweep_fee() {
        let rt = setup();
        // Too little in the deposit subaccount: typed error, nothing journaled.
        *rt.balance.borrow_mut() = 50;
        let args = NotifyDepositArgs {
            ledger: ledger(),
            lock_seconds: None,
        };
        assert!(matches!(
            block_on(ops::notify_deposit(&rt, args.clone())),
            Err(StakeError::AmountTooSmall { .. })
        ));
        assert_eq!(read_state(|s| s.pending_in().len()), 0);
        *rt.balance.borrow_mut() = 1_010;
        let p = block_on(ops::notify_deposit(&rt, args)).expect("notify");
        assert_eq!(p.staked, Nat::from(1_000u32));
        // The sweep moves balance - fee from the deposit subaccount, with a memo and time.
        let seen = rt.seen.borrow();
        let sweep = seen.last().expect("a sweep");
        assert_eq!(sweep.amount, Nat::from(1_000u32));
        assert_eq!(
            sweep.from_subaccount,
            Some(ops::deposit_subaccount(alice()))
        );
        assert!(sweep.created_at_time.is_some() && sweep.memo.is_some());
        read_state(|s| s.check_invariants()).expect("invariants");
    }

    #[test]
    fn should_pay_streamed_rewards_once_through_the_stub_ledger() {
        let rt = setup();
        stake(&rt, 1_000).expect("stake");
        *rt.caller.borrow_mut() = controller();
        block_on(ops::fund_rewards(
            &rt,
            FundRewardsArgs {
                ledger: ledger(),
                amount: Nat::from(1_000_000u32),
            },
        ))
        .expect("fund");
        *rt.caller.borrow_mut() = alice();
        *rt.now.borrow_mut() += 3 * 24 * 3600 * 1_000_000_000;
        // The ledger times out: the claim stays journaled, the rewards are in flight.
        rt.transfer.borrow_mut().push_back(Err(unknown()));
        let receipts = block_on(ops::claim_rewards(&rt)).expect("claim");
        assert_eq!(receipts.len(), 1);
        assert!(matches!(
            receipts[0].result,
            Err(StakeError::Pending { .. })
        ));
        let claimed = u128::try_from(&receipts[0].amount.0).expect("u128");
        // 3 days of a 30-day stream to the only staker, rounded down.
        assert!(claimed <= 100_000 && claimed + 2 >= 100_000, "{claimed}");
        assert_eq!(read_state(|s| s.pending_out().len()), 1);
        // A second claim finds nothing new to pay (same timestamp): no second transfer.
        assert_eq!(block_on(ops::claim_rewards(&rt)).expect("claim"), vec![]);
        // The retry is the same transfer; the ledger says it happened: settled once.
        rt.transfer
            .borrow_mut()
            .push_back(Ok(Err(TransferError::Duplicate {
                duplicate_of: Nat::from(4u8),
            })));
        block_on(ops::reconcile(&rt));
        assert_eq!(read_state(|s| s.pending_out().len()), 0);
        let seen = rt.seen.borrow();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[0], seen[1],
            "the retry reuses created_at_time and memo"
        );
        assert_eq!(seen[0].amount, Nat::from(claimed - 10));
        read_state(|s| s.check_invariants()).expect("invariants");
    }

    const H: u64 = 3600 * 1_000_000_000;

    fn icrc_account(a: &Account) -> ICRC3Value {
        let mut parts = vec![ICRC3Value::Blob(a.owner.as_slice().to_vec().into())];
        if let Some(s) = a.subaccount {
            parts.push(ICRC3Value::Blob(s.to_vec().into()));
        }
        ICRC3Value::Array(parts)
    }

    /// An ICRC-3 `xfer` block, as DFINITY's ledgers write ICRC-1 transfers.
    fn xfer_block(ts: u64, t: &TransferArg, from: Principal) -> ICRC3Value {
        let mut tx = std::collections::BTreeMap::new();
        tx.insert("op".to_string(), ICRC3Value::Text("xfer".into()));
        tx.insert("from".to_string(), icrc_account(&Account::from(from)));
        tx.insert("to".to_string(), icrc_account(&t.to));
        tx.insert("amt".to_string(), ICRC3Value::Nat(t.amount.clone()));
        if let Some(m) = &t.memo {
            tx.insert("memo".to_string(), ICRC3Value::Blob(m.0.clone()));
        }
        if let Some(c) = t.created_at_time {
            tx.insert("ts".to_string(), ICRC3Value::Nat(Nat::from(c)));
        }
        let mut b = std::collections::BTreeMap::new();
        b.insert("tx".to_string(), ICRC3Value::Map(tx));
        b.insert("ts".to_string(), ICRC3Value::Nat(Nat::from(ts)));
        b.insert("fee".to_string(), ICRC3Value::Nat(Nat::from(10u8)));
        ICRC3Value::Map(b)
    }

    /// Another account's transfer at `ts`.
    fn other_block(ts: u64) -> ICRC3Value {
        let t = TransferArg {
            from_subaccount: None,
            to: Account::from(alice()),
            fee: None,
            created_at_time: Some(ts),
            memo: None,
            amount: Nat::from(5u8),
        };
        xfer_block(ts, &t, Principal::from_slice(&[8]))
    }

    fn staking_id(rt: &Stub) -> Principal {
        rt.canister_id()
    }

    /// Stakes 1,000, unbonds 500 and asks to withdraw it; the answer is lost (unknown), then
    /// every retry for a day times out; `blocks_before` of others' blocks precede it.
    fn withdrawal_lost_for_a_day(rt: &Stub) -> TransferArg {
        stake(rt, 1_000).expect("stake");
        ops::unstake(
            rt,
            UnstakeArgs {
                ledger: ledger(),
                amount: Nat::from(500u32),
            },
        )
        .expect("unstake");
        *rt.now.borrow_mut() += 61_000_000_000;
        rt.transfer.borrow_mut().push_back(Err(unknown()));
        assert!(matches!(
            block_on(ops::withdraw(rt, ledger())),
            Err(StakeError::Pending { .. })
        ));
        for _ in 0..24 {
            *rt.now.borrow_mut() += H;
            rt.transfer.borrow_mut().push_back(Err(unknown()));
            block_on(ops::reconcile(rt));
        }
        *rt.now.borrow_mut() += H;
        rt.seen.borrow()[0].clone()
    }

    fn in_flight() -> (u128, u128) {
        let a = read_state(|s| s.asset(ledger()).cloned()).expect("asset");
        (a.unbonding, a.in_flight)
    }

    #[test]
    fn should_settle_a_withdrawal_from_the_ledger_history_not_pay_it_again_when_the_retry_is_too_old()
     {
        let rt = setup();
        let sent = withdrawal_lost_for_a_day(&rt);
        let created = sent.created_at_time.expect("created_at_time");
        // The ledger executed the first attempt (block 3); others' blocks around it.
        let mut blocks = vec![other_block(0), other_block(1), other_block(created - 1)];
        blocks.push(xfer_block(created + 5, &sent, staking_id(&rt)));
        blocks.extend((0..20).map(|i| other_block(created + i * H)));
        *rt.blocks.borrow_mut() = Some(blocks);
        // After 24 h the ledger no longer deduplicates: it answers TooOld. The history
        // shows the transfer: settled as done with its block, never re-sent.
        rt.transfer
            .borrow_mut()
            .push_back(Ok(Err(TransferError::TooOld)));
        block_on(ops::reconcile(&rt));
        assert_eq!(read_state(|s| s.pending_out().len()), 0);
        assert_eq!(in_flight(), (0, 0));
        let seen = rt.seen.borrow().clone();
        assert_eq!(
            seen.len(),
            26,
            "the first attempt, 24 retries and the TooOld one"
        );
        assert!(
            seen.iter().all(|t| *t == seen[0]),
            "every retry carries the original created_at_time and memo"
        );
        let settled: Vec<Option<u128>> = crate::log::entries(0, crate::log::len())
            .iter()
            .filter_map(|(_, cbor, _, _)| match crate::log::decode(cbor).event {
                crate::events::Event::OutSettled { block, .. } => Some(block),
                _ => None,
            })
            .collect();
        assert_eq!(settled, vec![Some(3)]);
        block_on(ops::reconcile(&rt));
        assert_eq!(rt.seen.borrow().len(), 26, "nothing more is sent");
        read_state(|s| s.check_invariants()).expect("invariants");
    }

    #[test]
    fn should_resend_a_too_old_withdrawal_once_with_a_new_created_at_time_when_the_history_lacks_it()
     {
        let rt = setup();
        let sent = withdrawal_lost_for_a_day(&rt);
        let created = sent.created_at_time.expect("created_at_time");
        // The window's blocks are all others': it never executed.
        let blocks: Vec<ICRC3Value> = (0..30).map(|i| other_block(i * H)).collect();
        *rt.blocks.borrow_mut() = Some(blocks);
        rt.transfer
            .borrow_mut()
            .push_back(Ok(Err(TransferError::TooOld)));
        // The re-sent transfer's answer is lost too; its own retry is deduplicated.
        rt.transfer.borrow_mut().push_back(Err(unknown()));
        block_on(ops::reconcile(&rt));
        assert_eq!(in_flight(), (0, 500));
        let resent = rt.seen.borrow().last().cloned().expect("re-sent");
        let now = *rt.now.borrow();
        assert_eq!(resent.created_at_time, Some(now));
        assert_ne!(resent.created_at_time, Some(created));
        assert_eq!(
            (resent.memo.clone(), resent.amount.clone()),
            (sent.memo.clone(), sent.amount.clone())
        );
        *rt.now.borrow_mut() += 60_000_000_000;
        rt.transfer
            .borrow_mut()
            .push_back(Ok(Err(TransferError::Duplicate {
                duplicate_of: Nat::from(31u8),
            })));
        block_on(ops::reconcile(&rt));
        assert_eq!(in_flight(), (0, 0));
        let seen = rt.seen.borrow().clone();
        assert_eq!(seen.len(), 28);
        assert_eq!(
            seen[27], resent,
            "the retry of the re-send keeps its created_at_time"
        );
        let resends = seen
            .iter()
            .filter(|t| t.created_at_time != Some(created))
            .count();
        assert_eq!(resends, 2, "re-sent once, retried once");
        // Replay takes the same steps.
        let before = read_state(|s| s.clone());
        crate::lifecycle::post_upgrade(&rt, None).expect("upgrade");
        assert_eq!(read_state(|s| s.clone()), before);
        read_state(|s| s.check_invariants()).expect("invariants");
    }

    #[test]
    fn should_keep_a_too_old_withdrawal_pending_when_the_ledger_has_no_icrc3_or_archived_it() {
        let rt = setup();
        let sent = withdrawal_lost_for_a_day(&rt);
        let created = sent.created_at_time.expect("created_at_time");
        let id = read_state(|s| s.pending_out().keys().next().copied()).expect("pending");
        // No icrc3_get_blocks: pending, counted in flight, and the reason is given.
        rt.transfer
            .borrow_mut()
            .push_back(Ok(Err(TransferError::TooOld)));
        match block_on(ops::run_outgoing(&rt, id)) {
            Err(StakeError::Pending { message, .. }) => {
                assert!(message.contains("icrc3_get_blocks"), "{message}")
            }
            other => panic!("expected pending, got {other:?}"),
        }
        assert_eq!(in_flight(), (0, 500));
        // The blocks it would need are archived: the same.
        let mut blocks: Vec<ICRC3Value> = (0..10).map(other_block).collect();
        blocks.push(xfer_block(created, &sent, staking_id(&rt)));
        blocks.extend((0..10).map(|i| other_block(created + i * H)));
        *rt.blocks.borrow_mut() = Some(blocks);
        *rt.archived_below.borrow_mut() = 15;
        rt.transfer
            .borrow_mut()
            .push_back(Ok(Err(TransferError::TooOld)));
        match block_on(ops::run_outgoing(&rt, id)) {
            Err(StakeError::Pending { message, .. }) => {
                assert!(message.contains("archived"), "{message}")
            }
            other => panic!("expected pending, got {other:?}"),
        }
        assert_eq!(in_flight(), (0, 500));
        assert_eq!(rt.seen.borrow().len(), 27, "never re-sent");
        read_state(|s| s.check_invariants()).expect("invariants");
    }

    #[test]
    fn should_match_history_blocks_on_op_accounts_amount_memo_and_created_at_time() {
        use crate::history::{Wanted, matches};
        let me = Principal::from_slice(&[3, 3]);
        let t = TransferArg {
            from_subaccount: None,
            to: Account::from(alice()),
            fee: None,
            created_at_time: Some(77),
            memo: Some(crate::state::memo(5).into()),
            amount: Nat::from(490u32),
        };
        let wanted = Wanted {
            key: ("op", 5),
            from: Account::from(me),
            to: Some(Account::from(alice())),
            amount: 490,
            memo: crate::state::memo(5),
            created_at_time: 77,
        };
        assert!(matches(&xfer_block(80, &t, me), &wanted));
        // The default subaccount written out is the same account.
        let mut zero = wanted.clone();
        zero.from.subaccount = Some([0; 32]);
        assert!(matches(&xfer_block(80, &t, me), &zero));
        for other in [
            TransferArg {
                amount: Nat::from(491u32),
                ..t.clone()
            },
            TransferArg {
                created_at_time: Some(78),
                ..t.clone()
            },
            TransferArg {
                memo: Some(crate::state::memo(6).into()),
                ..t.clone()
            },
            TransferArg {
                to: Account::from(restaking()),
                ..t.clone()
            },
        ] {
            assert!(!matches(&xfer_block(80, &other, me), &wanted), "{other:?}");
        }
        assert!(
            !matches(&xfer_block(80, &t, alice()), &wanted),
            "another sender"
        );
        // A burn is a `burn` block (no `to`); an `xfer` never settles a burn.
        let burn = Wanted {
            to: None,
            ..wanted.clone()
        };
        assert!(!matches(&xfer_block(80, &t, me), &burn));
        let mut block = xfer_block(80, &t, me);
        if let ICRC3Value::Map(m) = &mut block
            && let Some(ICRC3Value::Map(tx)) = m.get_mut("tx")
        {
            tx.insert("op".into(), ICRC3Value::Text("burn".into()));
            tx.remove("to");
        }
        assert!(matches(&block, &burn));
        assert!(!matches(&block, &wanted));
    }

    #[test]
    fn should_continue_a_long_history_scan_in_the_next_reconcile_run() {
        let rt = setup();
        let sent = withdrawal_lost_for_a_day(&rt);
        let created = sent.created_at_time.expect("created_at_time");
        let pages = u64::from(crate::history::HISTORY_CALLS_PER_RUN) * crate::history::HISTORY_PAGE;
        // The transfer is block 2, under more blocks than one run reads.
        let mut blocks = vec![other_block(0), other_block(created - 1)];
        blocks.push(xfer_block(created, &sent, staking_id(&rt)));
        blocks.extend((0..pages + 500).map(|i| other_block(created + i)));
        let len = blocks.len() as u64;
        *rt.blocks.borrow_mut() = Some(blocks);
        rt.transfer
            .borrow_mut()
            .push_back(Ok(Err(TransferError::TooOld)));
        block_on(ops::reconcile(&rt));
        assert_eq!(in_flight(), (0, 500), "not decided yet");
        let first_run = rt.block_calls.borrow().len();
        assert_eq!(
            first_run,
            1 + crate::history::HISTORY_CALLS_PER_RUN as usize
        );
        *rt.now.borrow_mut() += 60_000_000_000;
        rt.transfer
            .borrow_mut()
            .push_back(Ok(Err(TransferError::TooOld)));
        block_on(ops::reconcile(&rt));
        assert_eq!(in_flight(), (0, 0));
        let calls = rt.block_calls.borrow().clone();
        // The second run resumes where the first stopped, not at the tip.
        assert_eq!(calls[first_run].0 + calls[first_run].1, len - pages);
        assert_eq!(rt.seen.borrow().len(), 27, "never re-sent");
        read_state(|s| s.check_invariants()).expect("invariants");
    }

    /// Stakes 1,000; the pull's answer is lost, then every retry for a day times out, and the
    /// next one will be answered `TooOld`.
    fn stake_lost_for_a_day(rt: &Stub) -> TransferFromArgs {
        rt.transfer_from.borrow_mut().push_back(Err(unknown()));
        assert!(matches!(stake(rt, 1_000), Err(StakeError::Pending { .. })));
        for _ in 0..24 {
            *rt.now.borrow_mut() += H;
            rt.transfer_from.borrow_mut().push_back(Err(unknown()));
            block_on(ops::reconcile(rt));
        }
        *rt.now.borrow_mut() += H;
        rt.transfer_from
            .borrow_mut()
            .push_back(Ok(Err(TransferFromError::TooOld)));
        rt.seen_from.borrow()[0].clone()
    }

    /// The pull as the ledger records it: an `xfer` from the staker to staking.
    fn pull_block(ts: u64, t: &TransferFromArgs) -> ICRC3Value {
        let as_transfer = TransferArg {
            from_subaccount: None,
            to: t.to,
            fee: None,
            created_at_time: t.created_at_time,
            memo: t.memo.clone(),
            amount: t.amount.clone(),
        };
        xfer_block(ts, &as_transfer, t.from.owner)
    }

    fn staked() -> u128 {
        read_state(|s| s.position(alice(), ledger()).map(|p| p.staked)).unwrap_or(0)
    }

    #[test]
    fn should_credit_a_too_old_stake_found_in_the_ledger_history_once() {
        let rt = setup();
        let pulled = stake_lost_for_a_day(&rt);
        let created = pulled.created_at_time.expect("created_at_time");
        // The first attempt executed (block 1).
        let mut blocks = vec![other_block(created - 1), pull_block(created + 5, &pulled)];
        blocks.extend((0..5).map(|i| other_block(created + i * H)));
        *rt.blocks.borrow_mut() = Some(blocks);
        block_on(ops::reconcile(&rt));
        assert_eq!(read_state(|s| s.pending_in().len()), 0);
        assert_eq!(staked(), 1_000, "credited from the history");
        let settled: Vec<Option<u128>> = crate::log::entries(0, crate::log::len())
            .iter()
            .filter_map(|(_, cbor, _, _)| match crate::log::decode(cbor).event {
                crate::events::Event::InSettled { block, .. } => Some(block),
                _ => None,
            })
            .collect();
        assert_eq!(settled, vec![Some(1)]);
        block_on(ops::reconcile(&rt));
        assert_eq!(
            rt.seen_from.borrow().len(),
            26,
            "the first attempt, 24 retries and the TooOld one; nothing more is pulled"
        );
        read_state(|s| s.check_invariants()).expect("invariants");
    }

    #[test]
    fn should_fail_a_too_old_stake_that_the_ledger_history_lacks_and_pull_nothing() {
        let rt = setup();
        let _ = stake_lost_for_a_day(&rt);
        *rt.blocks.borrow_mut() = Some((0..30).map(|i| other_block(i * H)).collect());
        block_on(ops::reconcile(&rt));
        assert_eq!(
            read_state(|s| s.pending_in().len()),
            0,
            "failed, not pending"
        );
        assert_eq!(staked(), 0, "nothing was taken, nothing is credited");
        block_on(ops::reconcile(&rt));
        assert_eq!(rt.seen_from.borrow().len(), 26, "never pulled again");
        read_state(|s| s.check_invariants()).expect("invariants");
    }

    #[test]
    fn should_keep_a_too_old_stake_pending_when_the_ledger_has_no_icrc3() {
        let rt = setup();
        let _ = stake_lost_for_a_day(&rt);
        block_on(ops::reconcile(&rt));
        assert_eq!(
            read_state(|s| s.pending_in().len()),
            1,
            "undecided: still pending"
        );
        assert_eq!(staked(), 0);
        read_state(|s| s.check_invariants()).expect("invariants");
    }

    #[test]
    fn should_apply_a_slash_batch_per_op_id_with_its_destination_and_report_it() {
        let rt = setup();
        stake(&rt, 1_000).expect("stake");
        *rt.caller.borrow_mut() = restaking();
        let lock = HookArgs {
            op_id: 1,
            owner: alice(),
            ledger: ledger(),
            amount: Nat::from(600u32),
        };
        ops::hook(&rt, HookKind::Lock, lock).expect("lock");
        let slash = |op_id: u64, amount: u32| HookArgs {
            op_id,
            owner: alice(),
            ledger: ledger(),
            amount: Nat::from(amount),
        };
        let to = Account {
            owner: Principal::from_slice(&[8, 8]),
            subaccount: None,
        };
        let batch = SlashBatchArgs {
            slashes: vec![slash(2, 100), slash(3, 10_000), slash(4, 50)],
            destination: Some(SlashDestination::Account(to)),
        };
        let r = ops::slash_batch(&rt, batch.clone()).expect("batch");
        assert!(r[0].is_ok() && r[2].is_ok());
        assert!(matches!(r[1], Err(HookError::InsufficientLocked { .. })));
        // The same batch again: the same ops (same event index), nothing applied twice.
        let again = ops::slash_batch(&rt, batch).expect("batch again");
        let index = |v: &Vec<Result<stratros_staking_api::HookReceipt, HookError>>| {
            v.iter()
                .map(|x| x.as_ref().map(|r| r.event_index).map_err(|e| e.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(index(&r)[0], index(&again)[0]);
        assert_eq!(index(&r)[2], index(&again)[2]);
        let pos = read_state(|s| s.position(alice(), ledger()).cloned()).expect("position");
        assert_eq!((pos.staked, pos.locked), (850, 450));
        let view = read_state(|s| ops::hook_view(s, 2)).expect("hook 2");
        assert_eq!(view.kind, HookKindView::Slash);
        assert_eq!(view.destination, Some(SlashDestination::Account(to)));
        assert_eq!(read_state(|s| ops::hook_view(s, 3)), None);
        // The same op id with another destination is a conflict.
        let other = SlashBatchArgs {
            slashes: vec![slash(2, 100)],
            destination: Some(SlashDestination::Burn),
        };
        assert_eq!(
            ops::slash_batch(&rt, other).expect("batch"),
            vec![Err(HookError::OperationConflict { op_id: 2 })]
        );
        let too_many = SlashBatchArgs {
            slashes: (0..=stratros_staking_api::MAX_SLASH_BATCH as u64)
                .map(|i| slash(100 + i, 1))
                .collect(),
            destination: None,
        };
        assert!(matches!(
            ops::slash_batch(&rt, too_many),
            Err(HookError::BatchTooLarge { .. })
        ));
        *rt.caller.borrow_mut() = alice();
        assert!(matches!(
            ops::slash_batch(
                &rt,
                SlashBatchArgs {
                    slashes: vec![],
                    destination: None
                }
            ),
            Err(HookError::Unauthorized { .. })
        ));
        // The reconciliation sends the account's bucket, minus the fee.
        block_on(ops::reconcile(&rt));
        let sent = rt.seen.borrow().last().cloned().expect("a slash transfer");
        assert_eq!((sent.to, sent.amount), (to, Nat::from(140u32)));
        read_state(|s| s.check_invariants()).expect("invariants");
    }

    #[test]
    fn should_rebuild_the_same_state_from_the_log() {
        let rt = setup();
        stake(&rt, 1_000).expect("stake");
        let before = read_state(|s| s.clone());
        crate::lifecycle::post_upgrade(&rt, None).expect("upgrade");
        assert_eq!(read_state(|s| s.clone()), before);
    }
}
