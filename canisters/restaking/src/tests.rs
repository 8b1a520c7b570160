//! Native tests of the restaking model, named as specifications.

use candid::{Nat, Principal};
use proptest::prelude::*;

use std::collections::BTreeMap;

use crate::events::{AccountEv, AssetWeightEv, Event, P};
use crate::math::{BPS, WAD};
use crate::model::{Applied, DAY_NS, NANOS as NANOS_PER_SEC, OpKind, State, kind_tag};
use crate::types::{AvsKind, RestakingError, SlashStatus};

fn p(n: u8) -> Principal {
    Principal::from_slice(&[n, 0xAB, 1])
}
fn op1() -> Principal {
    p(1)
}
fn op2() -> Principal {
    p(2)
}
fn cketh() -> Principal {
    p(10)
}
fn ckbtc() -> Principal {
    p(11)
}
fn reward_token() -> Principal {
    p(12)
}
fn slasher() -> Principal {
    p(20)
}
fn resolver() -> Principal {
    p(21)
}
fn staker(n: u8) -> Principal {
    p(100 + n)
}
fn node() -> Principal {
    p(30)
}

struct T {
    s: State,
    now: u64,
    log: Vec<(u64, Event)>,
    /// Per ledger, Σ locks staking accepted (what restaking ever held locked there).
    locked: BTreeMap<Principal, u128>,
}

/// The DA AVS's redistribution account in [`T::new`] (the confirmation AVS has none).
fn da_account() -> AccountEv {
    AccountEv {
        owner: P(p(40)),
        subaccount: Some(vec![7; 32]),
    }
}

impl T {
    fn new() -> T {
        let mut t = T {
            s: State::default(),
            now: 1_000 * DAY_NS,
            log: Vec::new(),
            locked: BTreeMap::new(),
        };
        t.ok(Event::Init {
            staking: P(p(99)),
            withdrawal_delay_ns: 7 * DAY_NS,
            allocation_delay_ns: DAY_NS,
            deallocation_delay_ns: 7 * DAY_NS,
            commission_delay_ns: 7 * DAY_NS,
        });
        for (op, bps) in [(op1(), 1_000), (op2(), 500)] {
            t.ok(Event::OperatorRegistered {
                operator: P(op),
                name: "op".into(),
                metadata: String::new(),
                commission_bps: bps,
            });
        }
        t.register_avs("confirmation", AvsKind::Confirmation, 5_000, None);
        t.register_avs("da", AvsKind::DataAvailability, 10_000, Some(da_account()));
        t
    }

    fn register_avs(
        &mut self,
        id: &str,
        kind: AvsKind,
        max_slash_bps: u32,
        redistribution: Option<AccountEv>,
    ) {
        self.ok(Event::AvsRegistered {
            id: id.into(),
            name: id.into(),
            kind: kind_tag(kind),
            slashers: vec![P(slasher())],
            weights: vec![
                AssetWeightEv {
                    ledger: P(cketh()),
                    weight_bps: 10_000,
                    decimals: None,
                },
                AssetWeightEv {
                    ledger: P(ckbtc()),
                    weight_bps: 20_000,
                    decimals: None,
                },
            ],
            max_slash_bps,
            veto_window_ns: 2 * DAY_NS,
            resolvers: vec![P(resolver())],
            reward_tokens: vec![P(reward_token())],
            redistribution,
        });
    }

    fn apply(&mut self, e: Event) -> Result<Applied, RestakingError> {
        let r = self.s.apply(self.now, &e);
        if r.is_ok() {
            self.log.push((self.now, e));
        }
        r
    }

    fn ok(&mut self, e: Event) -> Applied {
        let what = format!("{e:?}");
        self.apply(e)
            .unwrap_or_else(|err| panic!("{what} failed: {err:?}"))
    }

    fn err(&mut self, e: Event) -> RestakingError {
        let before = format!("{:?}", self.s);
        let err = self.apply(e).expect_err("expected an error");
        assert_eq!(
            before,
            format!("{:?}", self.s),
            "an error changed the state"
        );
        err
    }

    /// Delegates and lets staking accept the lock.
    fn delegate(&mut self, who: Principal, operator: Principal, ledger: Principal, amount: u128) {
        let Applied::Op(op_id) = self.ok(Event::DelegationRequested {
            staker: P(who),
            operator: P(operator),
            ledger: P(ledger),
            amount,
        }) else {
            panic!("no op id")
        };
        self.ok(Event::LockSettled {
            op_id,
            accepted: true,
        });
        *self.locked.entry(ledger).or_default() += amount;
    }

    /// Every settled loss is journaled exactly, split per AVS, and sent where its AVS says.
    /// Per ledger: what restaking took out of its positions (Σ accepted locks − Σ pool
    /// amounts − Σ unlocks) equals Σ of the slash ops, whose sum per destination (an AVS's
    /// redistribution account, or staking's configured one) equals Σ of what the AVSs with
    /// that destination were attributed; no loss is left without an AVS. (No op is settled
    /// in these native tests, so the ops hold every slash.)
    fn check_slash_destinations(&self) {
        use crate::ops::slash_destination;
        type Dest = Option<stratros_staking_api::SlashDestination>;
        for (ledger, locked) in &self.locked {
            let held: u128 = self
                .s
                .pools
                .iter()
                .filter(|((_, l), _)| l == ledger)
                .map(|(_, p)| p.total_amount)
                .sum();
            let ops = self.s.ops.values().filter(|o| o.ledger == *ledger);
            let unlocked: u128 = ops
                .clone()
                .filter(|o| o.kind == OpKind::Unlock)
                .map(|o| o.amount)
                .sum();
            let mut by_dest: Vec<(Dest, u128)> = Vec::new();
            for o in ops.filter(|o| matches!(o.kind, OpKind::Slash { .. })) {
                assert_ne!(
                    o.kind,
                    OpKind::Slash { avs: None },
                    "a loss not attributed to an AVS"
                );
                let d = slash_destination(&self.s, o);
                match by_dest.iter_mut().find(|(x, _)| *x == d) {
                    Some((_, sum)) => *sum += o.amount,
                    None => by_dest.push((d, o.amount)),
                }
            }
            let slashed: u128 = by_dest.iter().map(|(_, x)| *x).sum();
            assert_eq!(
                slashed,
                locked - held - unlocked,
                "slash ops of {ledger} != what settlement took"
            );
            assert_eq!(
                slashed,
                self.s.slashed_total.get(ledger).copied().unwrap_or(0)
            );
            for (d, sum) in by_dest {
                let attributed: u128 = self
                    .s
                    .avss
                    .iter()
                    .filter(|(id, _)| {
                        let probe = crate::model::Op {
                            kind: OpKind::Slash {
                                avs: Some((*id).clone()),
                            },
                            owner: p(0),
                            ledger: *ledger,
                            amount: 0,
                            created_at: 0,
                        };
                        slash_destination(&self.s, &probe) == d
                    })
                    .map(|(_, a)| a.slashed.get(ledger).copied().unwrap_or(0))
                    .sum();
                assert_eq!(sum, attributed, "slashes sent to {d:?} of {ledger}");
            }
        }
    }

    fn allocate(&mut self, operator: Principal, avs: &str, ledger: Principal, bps: u32) {
        self.ok(Event::Allocated {
            operator: P(operator),
            avs: avs.into(),
            ledger: P(ledger),
            bps,
        });
    }

    fn advance(&mut self, ns: u64) {
        self.now += ns;
    }

    fn value(&self, who: Principal, operator: Principal, ledger: Principal) -> u128 {
        match (
            self.s.pools.get(&(operator, ledger)),
            self.s.delegations.get(&(operator, ledger, who)),
        ) {
            (Some(pool), Some(d)) => d.value(pool),
            _ => 0,
        }
    }

    fn slash(&mut self, avs: &str, operator: Principal, bps: u32) -> u64 {
        let Applied::Slash(id) = self.ok(Event::SlashRequested {
            slasher: P(slasher()),
            avs: avs.into(),
            operator: P(operator),
            bps,
            reason: "test".into(),
        }) else {
            panic!("no slash id")
        };
        self.advance(2 * DAY_NS);
        self.ok(Event::SlashExecuted { id });
        id
    }

    fn settle_all(&mut self) {
        let (d, w) = self.s.unsettled(usize::MAX);
        for (o, l, s) in d {
            self.ok(Event::DelegationSettled {
                operator: P(o),
                ledger: P(l),
                staker: P(s),
            });
        }
        for id in w {
            self.ok(Event::WithdrawalSettled { id });
        }
    }

    fn slash_ops_total(&self, owner: Principal, ledger: Principal) -> u128 {
        self.s
            .ops
            .values()
            .filter(|o| {
                o.owner == owner && o.ledger == ledger && matches!(o.kind, OpKind::Slash { .. })
            })
            .map(|o| o.amount)
            .sum()
    }

    /// Pool totals equal the sums over their positions.
    fn check_pool_sums(&self) {
        for ((o, l), pool) in &self.s.pools {
            let (mut amount, mut shares, mut n) = (0u128, 0u128, 0u64);
            for ((o2, l2, _), d) in &self.s.delegations {
                if (o2, l2) == (o, l) {
                    amount += d.amount;
                    shares += d.shares;
                    n += 1;
                }
            }
            for w in self.s.withdrawals.values() {
                if (w.operator, w.ledger) == (*o, *l) {
                    amount += w.stake.amount;
                    shares += w.stake.shares;
                    n += 1;
                }
            }
            assert_eq!(amount, pool.total_amount, "pool amount of {o}/{l}");
            assert_eq!(shares, pool.total_shares, "pool shares of {o}/{l}");
            assert_eq!(n, pool.positions, "pool positions of {o}/{l}");
            // The index of unsettled positions counts exactly the positions behind the pool.
            let behind = self
                .s
                .delegations
                .iter()
                .filter(|((o2, l2, _), d)| (o2, l2) == (o, l) && d.snap != pool.magnitude)
                .count()
                + self
                    .s
                    .withdrawals
                    .values()
                    .filter(|w| {
                        (w.operator, w.ledger) == (*o, *l) && w.stake.snap != pool.magnitude
                    })
                    .count();
            assert_eq!(behind as u64, pool.unsettled, "unsettled count of {o}/{l}");
            assert_eq!(
                pool.unsettled > 0,
                self.s.unsettled_pools.contains(&(*o, *l)),
                "unsettled index of {o}/{l}"
            );
        }
    }

    /// Replaying the log from scratch gives the same state.
    fn check_replay(&self) {
        let mut replay = State::default();
        for (now, e) in &self.log {
            let bytes = minicbor::to_vec(e).expect("encode");
            let decoded: Event = minicbor::decode(&bytes).expect("decode");
            assert_eq!(&decoded, e);
            replay
                .apply(*now, &decoded)
                .unwrap_or_else(|err| panic!("replay of {e:?} failed: {err:?}"));
        }
        assert_eq!(format!("{:?}", replay), format!("{:?}", self.s));
    }
}

#[test]
fn should_reject_second_registration_of_an_operator() {
    let mut t = T::new();
    let e = t.err(Event::OperatorRegistered {
        operator: P(op1()),
        name: "x".into(),
        metadata: String::new(),
        commission_bps: 0,
    });
    assert_eq!(e, RestakingError::OperatorAlreadyRegistered);
    let e = t.err(Event::OperatorRegistered {
        operator: P(p(3)),
        name: "x".into(),
        metadata: String::new(),
        commission_bps: 10_001,
    });
    assert!(matches!(e, RestakingError::InvalidArgument(_)));
}

#[test]
fn should_apply_commission_change_only_after_delay() {
    let mut t = T::new();
    t.ok(Event::CommissionChangeRequested {
        operator: P(op1()),
        commission_bps: 2_000,
    });
    let v = t.s.operator_view(op1(), t.now).expect("operator");
    assert_eq!(v.commission_bps, 1_000);
    assert_eq!(v.pending_commission_bps, Some(2_000));
    t.advance(7 * DAY_NS);
    let v = t.s.operator_view(op1(), t.now).expect("operator");
    assert_eq!(v.commission_bps, 2_000);
    assert_eq!(v.pending_commission_bps, None);
}

#[test]
fn should_register_a_node_once_and_only_for_one_operator() {
    let mut t = T::new();
    t.ok(Event::NodeRegistered {
        operator: P(op1()),
        node: P(node()),
        scheme: 3,
        key_name: "dfx_test_key".into(),
        public_key: vec![7; 32],
    });
    let e = t.err(Event::NodeRegistered {
        operator: P(op2()),
        node: P(node()),
        scheme: 3,
        key_name: "dfx_test_key".into(),
        public_key: vec![7; 32],
    });
    assert_eq!(
        e,
        RestakingError::NodeAlreadyRegistered {
            node: node(),
            operator: op1()
        }
    );
    let e = t.err(Event::NodeRegistered {
        operator: P(op2()),
        node: P(p(31)),
        scheme: 1,
        key_name: "k".into(),
        public_key: vec![7; 32],
    });
    assert!(matches!(e, RestakingError::InvalidArgument(_)));
}

#[test]
fn should_delegate_only_after_staking_locks() {
    let mut t = T::new();
    let Applied::Op(op_id) = t.ok(Event::DelegationRequested {
        staker: P(staker(1)),
        operator: P(op1()),
        ledger: P(cketh()),
        amount: 1_000,
    }) else {
        panic!()
    };
    assert_eq!(t.value(staker(1), op1(), cketh()), 0);
    assert_eq!(t.s.locked_in_staking(staker(1), cketh()), 0);
    t.ok(Event::LockSettled {
        op_id,
        accepted: true,
    });
    assert_eq!(t.value(staker(1), op1(), cketh()), 1_000);
    assert_eq!(t.s.locked_in_staking(staker(1), cketh()), 1_000);
    // The op is settled once.
    let e = t.err(Event::LockSettled {
        op_id,
        accepted: true,
    });
    assert_eq!(e, RestakingError::UnknownOp { op_id });
    t.check_replay();
}

#[test]
fn should_drop_delegation_when_staking_rejects_the_lock() {
    let mut t = T::new();
    let Applied::Op(op_id) = t.ok(Event::DelegationRequested {
        staker: P(staker(1)),
        operator: P(op1()),
        ledger: P(cketh()),
        amount: 1_000,
    }) else {
        panic!()
    };
    t.ok(Event::LockSettled {
        op_id,
        accepted: false,
    });
    assert!(t.s.delegations.is_empty());
    assert!(t.s.ops.is_empty());
}

#[test]
fn should_reject_delegation_to_unknown_operator_and_zero_amounts() {
    let mut t = T::new();
    let e = t.err(Event::DelegationRequested {
        staker: P(staker(1)),
        operator: P(p(77)),
        ledger: P(cketh()),
        amount: 1,
    });
    assert_eq!(e, RestakingError::UnknownOperator { operator: p(77) });
    let e = t.err(Event::DelegationRequested {
        staker: P(staker(1)),
        operator: P(op1()),
        ledger: P(cketh()),
        amount: 0,
    });
    assert_eq!(e, RestakingError::ZeroAmount);
}

#[test]
fn should_reject_allocations_over_100_percent_per_asset() {
    let mut t = T::new();
    t.delegate(staker(1), op1(), cketh(), 1_000);
    t.allocate(op1(), "confirmation", cketh(), 6_000);
    let e = t.err(Event::Allocated {
        operator: P(op1()),
        avs: "da".into(),
        ledger: P(cketh()),
        bps: 4_001,
    });
    assert_eq!(
        e,
        RestakingError::OverAllocated {
            available_bps: 4_000
        }
    );
    t.allocate(op1(), "da", cketh(), 4_000);
    // Another asset has its own 100 %.
    t.allocate(op1(), "da", ckbtc(), 10_000);
    let e = t.err(Event::Allocated {
        operator: P(op1()),
        avs: "nope".into(),
        ledger: P(cketh()),
        bps: 1,
    });
    assert_eq!(e, RestakingError::UnknownAvs { id: "nope".into() });
    let e = t.err(Event::Allocated {
        operator: P(op1()),
        avs: "da".into(),
        ledger: P(p(55)),
        bps: 1,
    });
    assert!(matches!(e, RestakingError::AssetNotInAvs { .. }));
}

#[test]
fn should_make_an_allocation_slashable_only_after_the_allocation_delay() {
    let mut t = T::new();
    t.delegate(staker(1), op1(), cketh(), 1_000_000);
    t.allocate(op1(), "da", cketh(), 5_000);
    let id = t.slash("da", op1(), 10_000); // executes 2 days later: the allocation is live.
    let _ = id;
    assert_eq!(t.value(staker(1), op1(), cketh()), 500_000);

    let mut t = T::new();
    t.delegate(staker(1), op1(), cketh(), 1_000_000);
    // An AVS without a veto window: its slashes execute at once.
    t.ok(Event::AvsRegistered {
        id: "fast".into(),
        name: "fast".into(),
        kind: kind_tag(AvsKind::Other),
        slashers: vec![P(slasher())],
        weights: vec![AssetWeightEv {
            ledger: P(cketh()),
            weight_bps: 1,
            decimals: None,
        }],
        max_slash_bps: 10_000,
        veto_window_ns: 0,
        resolvers: vec![],
        reward_tokens: vec![],
        redistribution: None,
    });
    t.allocate(op1(), "fast", cketh(), 5_000);
    let Applied::Slash(id) = t.ok(Event::SlashRequested {
        slasher: P(slasher()),
        avs: "fast".into(),
        operator: P(op1()),
        bps: 10_000,
        reason: "early".into(),
    }) else {
        panic!()
    };
    // Within the allocation delay nothing is allocated yet: the slash takes nothing.
    t.ok(Event::SlashExecuted { id });
    assert_eq!(t.value(staker(1), op1(), cketh()), 1_000_000);
    t.advance(DAY_NS);
    let Applied::Slash(id) = t.ok(Event::SlashRequested {
        slasher: P(slasher()),
        avs: "fast".into(),
        operator: P(op1()),
        bps: 10_000,
        reason: "late".into(),
    }) else {
        panic!()
    };
    t.ok(Event::SlashExecuted { id });
    assert_eq!(t.value(staker(1), op1(), cketh()), 500_000);
}

#[test]
fn should_keep_a_pending_deallocation_slashable_until_its_delay_ends() {
    let mut t = T::new();
    t.delegate(staker(1), op1(), cketh(), 1_000_000);
    t.allocate(op1(), "da", cketh(), 5_000);
    t.advance(DAY_NS);
    t.allocate(op1(), "da", cketh(), 0);
    // 2 days later (< 7-day deallocation delay) the slash still hits the full 50 %.
    t.slash("da", op1(), 10_000);
    assert_eq!(t.value(staker(1), op1(), cketh()), 500_000);
    t.advance(7 * DAY_NS);
    t.slash("da", op1(), 10_000);
    assert_eq!(t.value(staker(1), op1(), cketh()), 500_000);
    t.check_pool_sums();
    t.check_replay();
}

#[test]
fn should_slash_every_delegator_at_once_and_keep_other_avs_stake() {
    let mut t = T::new();
    for i in 0..5 {
        t.delegate(staker(i), op1(), cketh(), 1_000_000 * (u128::from(i) + 1));
    }
    t.allocate(op1(), "confirmation", cketh(), 2_000);
    t.allocate(op1(), "da", cketh(), 5_000);
    t.advance(DAY_NS);
    let da_before = t.s.avs_view("da", t.now).expect("da").allocated[0]
        .amount
        .clone();
    t.slash("confirmation", op1(), 5_000); // 50 % of a 20 % allocation: 10 % of the pool.
    for i in 0..5 {
        let v = t.value(staker(i), op1(), cketh());
        assert_eq!(v, 900_000 * (u128::from(i) + 1));
    }
    let da_after = t.s.avs_view("da", t.now).expect("da").allocated[0]
        .amount
        .clone();
    // The other AVS's allocated stake is unchanged (rounding down by at most one unit).
    assert!(
        da_before.clone() - da_after.clone() <= 1u8,
        "{da_before} {da_after}"
    );
    // Nothing was sent to staking yet: settlement journals each loss.
    assert_eq!(t.s.ops.len(), 0);
    t.settle_all();
    let mut total = 0;
    for i in 0..5 {
        let loss = t.slash_ops_total(staker(i), cketh());
        assert_eq!(loss, 100_000 * (u128::from(i) + 1));
        total += loss;
        assert_eq!(
            t.s.locked_in_staking(staker(i), cketh()),
            1_000_000 * (u128::from(i) + 1)
        );
    }
    let slash = &t.s.slashes[&0];
    assert_eq!(slash.status, SlashStatus::Executed);
    assert!(total >= slash.slashed[&cketh()]);
    t.check_pool_sums();
    t.check_replay();
}

#[test]
fn should_never_round_a_tiny_slash_to_nothing() {
    let mut t = T::new();
    for i in 0..3 {
        t.delegate(staker(i), op1(), cketh(), 7);
    }
    t.allocate(op1(), "da", cketh(), 1);
    t.advance(DAY_NS);
    t.slash("da", op1(), 1); // 1 bps of a 1 bps allocation.
    for i in 0..3 {
        assert_eq!(
            t.value(staker(i), op1(), cketh()),
            6,
            "the loss rounds up to one unit"
        );
    }
    t.settle_all();
    let total: u128 = (0..3).map(|i| t.slash_ops_total(staker(i), cketh())).sum();
    assert_eq!(total, 3);
    assert_eq!(t.s.slashes[&0].slashed[&cketh()], 1);
    t.check_pool_sums();
}

/// Σ of the slash ops of `owner` in `ledger` attributed to `avs`.
fn slash_ops_of(t: &T, owner: Principal, ledger: Principal, avs: &str) -> u128 {
    t.s.ops
        .values()
        .filter(|o| o.owner == owner && o.ledger == ledger)
        .filter(|o| matches!(&o.kind, OpKind::Slash { avs: Some(a) } if a == avs))
        .map(|o| o.amount)
        .sum()
}

#[test]
fn should_split_a_settled_loss_between_the_avss_that_slashed_the_pool_exactly() {
    let mut t = T::new();
    let amounts = [1_000_003u128, 7_777_777, 333, 1];
    for (i, a) in amounts.iter().enumerate() {
        t.delegate(staker(i as u8), op1(), cketh(), *a);
    }
    t.allocate(op1(), "confirmation", cketh(), 3_000);
    t.allocate(op1(), "da", cketh(), 5_000);
    t.advance(DAY_NS);
    // A queued withdrawal is slashed and split like a delegation.
    let Applied::Withdrawal(wid) = t.ok(Event::UndelegateRequested {
        staker: P(staker(1)),
        operator: P(op1()),
        ledger: P(cketh()),
        amount: 1_000_000,
    }) else {
        panic!("no withdrawal")
    };
    let snap = t.s.pools[&(op1(), cketh())].magnitude;
    // (owner, amount) of every position before the slashes.
    let mut positions: Vec<(Principal, u128)> =
        t.s.delegations
            .iter()
            .map(|((_, _, s), d)| (*s, d.amount))
            .collect();
    positions.push((staker(1), t.s.withdrawals[&wid].stake.amount));
    t.slash("confirmation", op1(), 4_321);
    t.slash("da", op1(), 1_234);
    t.slash("confirmation", op1(), 17);
    let pool = t.s.pools[&(op1(), cketh())].clone();
    let cut_of = |avs: &str| -> u128 {
        pool.cuts
            .iter()
            .filter(|c| c.avs == avs)
            .map(|c| c.cut)
            .sum()
    };
    let (d_conf, d_da) = (cut_of("confirmation"), cut_of("da"));
    assert_eq!(
        d_conf + d_da,
        snap - pool.magnitude,
        "the cuts are the magnitude lost"
    );
    assert!(d_conf > d_da);

    t.settle_all();
    // Expected, per owner: each position's loss, floor(amount × d_j / snap) per AVS, and the
    // remainder to the AVS with the largest cut (confirmation).
    let mut expected: BTreeMap<Principal, (u128, u128, u128)> = BTreeMap::new();
    let mut remainders = 0;
    for (owner, amount) in &positions {
        let value = amount * pool.magnitude / snap;
        let loss = amount - value;
        let da = amount * d_da / snap;
        let conf = amount * d_conf / snap;
        assert!(conf + da <= loss && loss - conf - da <= 2);
        remainders += loss - conf - da;
        let e = expected.entry(*owner).or_default();
        e.0 += loss;
        e.1 += loss - da;
        e.2 += da;
    }
    assert!(remainders > 0, "the case exercises the remainder rule");
    let (mut total_conf, mut total_da) = (0, 0);
    for (owner, (loss, conf, da)) in expected {
        assert_eq!(slash_ops_of(&t, owner, cketh(), "confirmation"), conf);
        assert_eq!(slash_ops_of(&t, owner, cketh(), "da"), da);
        assert_eq!(
            t.slash_ops_total(owner, cketh()),
            loss,
            "the parts sum to the loss"
        );
        total_conf += conf;
        total_da += da;
    }
    // Per AVS: the totals, in its view with its account; nothing left unattributed.
    assert_eq!(t.s.avss["confirmation"].slashed[&cketh()], total_conf);
    let view = t.s.avs_view("da", t.now).expect("da");
    assert_eq!(view.slashed_tokens[0].amount, total_da);
    assert_eq!(
        view.redistribution_account,
        Some(crate::types::Account {
            owner: p(40),
            subaccount: Some(stratros_confirmation::Blob(vec![7; 32])),
        })
    );
    assert_eq!(view.asset_decimals.len(), 2);
    assert_eq!(t.s.slashed_total[&cketh()], total_conf + total_da);
    assert!(
        t.s.pools[&(op1(), cketh())].cuts.is_empty(),
        "history dropped once settled"
    );
    t.check_slash_destinations();
    t.check_pool_sums();
    t.check_replay();
}

#[test]
fn should_give_the_rounding_remainder_to_the_avs_with_the_largest_cut() {
    use crate::model::{Cut, Pool, split_loss};
    let cut = |before: u128, avs: &str, cut: u128| Cut {
        before,
        avs: avs.into(),
        cut,
    };
    let some = |a: &str, x: u128| (Some(a.to_string()), x);
    // Magnitude 10 → 1 by three cuts of 3; a position of 5 loses 5 − floor(5 / 10) = 5:
    // floors 1 + 1 + 1, the remainder 2 to the largest cut (a tie: the smallest id).
    let pool = Pool {
        magnitude: 1,
        cuts: vec![cut(10, "b", 3), cut(7, "a", 3), cut(4, "c", 3)],
        ..Pool::default()
    };
    assert_eq!(
        split_loss(&pool, 5, 10, 5),
        vec![some("a", 3), some("b", 1), some("c", 1)]
    );
    // Settled after the first cut (snap 7): only a's and c's cuts are its loss,
    // 5 − floor(5 / 7) = 5 split 2 + 2, remainder 1 to a.
    assert_eq!(split_loss(&pool, 5, 7, 5), vec![some("a", 3), some("c", 2)]);
    // A tiny loss goes wholly to the largest cut; parts of 0 are left out.
    let pool = Pool {
        magnitude: WAD - 3,
        cuts: vec![cut(WAD, "a", 1), cut(WAD - 1, "b", 2)],
        ..Pool::default()
    };
    assert_eq!(split_loss(&pool, 1, WAD, 1), vec![some("b", 1)]);
    // No recorded cut: not attributable (staking's configured destination).
    assert_eq!(split_loss(&Pool::default(), 1, WAD, 1), vec![(None, 1)]);
}

#[test]
fn should_send_the_slashes_of_an_avs_without_an_account_to_stakings_destination() {
    use stratros_staking_api::SlashDestination;
    let mut t = T::new();
    t.delegate(staker(0), op1(), cketh(), 1_000_000);
    t.allocate(op1(), "confirmation", cketh(), 3_000);
    t.allocate(op1(), "da", cketh(), 3_000);
    t.advance(DAY_NS);
    t.slash("confirmation", op1(), 1_000);
    t.slash("da", op1(), 1_000);
    t.settle_all();
    let dests: Vec<(Option<String>, Option<SlashDestination>)> =
        t.s.ops
            .values()
            .map(|o| match &o.kind {
                OpKind::Slash { avs } => (avs.clone(), crate::ops::slash_destination(&t.s, o)),
                other => panic!("unexpected op {other:?}"),
            })
            .collect();
    let da = icrc_ledger_types::icrc1::account::Account {
        owner: p(40),
        subaccount: Some([7; 32]),
    };
    assert_eq!(
        dests,
        vec![
            (Some("confirmation".into()), None),
            (Some("da".into()), Some(SlashDestination::Account(da))),
        ]
    );
    let view = t.s.avs_view("confirmation", t.now).expect("confirmation");
    assert_eq!(view.redistribution_account, None);
    assert_eq!(view.slashed_tokens[0].amount, 30_000u32);
}

#[test]
fn should_refuse_a_redistribution_subaccount_that_is_not_32_bytes() {
    let mut t = T::new();
    let err = t.err(Event::AvsRegistered {
        id: "bad".into(),
        name: "bad".into(),
        kind: kind_tag(AvsKind::Other),
        slashers: vec![],
        weights: vec![AssetWeightEv {
            ledger: P(cketh()),
            weight_bps: 1,
            decimals: None,
        }],
        max_slash_bps: 0,
        veto_window_ns: 0,
        resolvers: vec![],
        reward_tokens: vec![],
        redistribution: Some(AccountEv {
            owner: P(p(41)),
            subaccount: Some(vec![1; 31]),
        }),
    });
    assert!(matches!(err, RestakingError::InvalidArgument(_)), "{err:?}");
}

/// `AvsRegistered` as logged before redistribution accounts (tags 0 to 8).
#[derive(minicbor::Encode)]
enum OldEvent {
    #[n(5)]
    AvsRegistered {
        #[n(0)]
        id: String,
        #[n(1)]
        name: String,
        #[n(2)]
        kind: u8,
        #[n(3)]
        slashers: Vec<P>,
        #[n(4)]
        weights: Vec<AssetWeightEv>,
        #[n(5)]
        max_slash_bps: u32,
        #[n(6)]
        veto_window_ns: u64,
        #[n(7)]
        resolvers: Vec<P>,
        #[n(8)]
        reward_tokens: Vec<P>,
    },
}

#[test]
fn should_replay_an_avs_logged_before_redistribution_with_stakings_destination() {
    let weights = vec![AssetWeightEv {
        ledger: P(cketh()),
        weight_bps: 10_000,
        decimals: Some(18),
    }];
    let old = minicbor::to_vec(OldEvent::AvsRegistered {
        id: "old".into(),
        name: "old".into(),
        kind: 2,
        slashers: vec![P(slasher())],
        weights: weights.clone(),
        max_slash_bps: 5_000,
        veto_window_ns: 0,
        resolvers: vec![],
        reward_tokens: vec![],
    })
    .expect("encode");
    let e: Event = minicbor::decode(&old).expect("an old AvsRegistered decodes");
    let Event::AvsRegistered { redistribution, .. } = &e else {
        panic!("decoded as {e:?}")
    };
    assert_eq!(*redistribution, None);
    // And an event without an account encodes as the old one did: old logs stay valid.
    assert_eq!(minicbor::to_vec(&e).expect("encode"), old);
    let mut t = T::new();
    t.ok(e);
    t.delegate(staker(0), op1(), cketh(), 1_000_000);
    t.allocate(op1(), "old", cketh(), 5_000);
    t.allocate(op1(), "da", cketh(), 5_000);
    t.advance(DAY_NS);
    t.slash("old", op1(), 2_000);
    t.slash("da", op1(), 2_000);
    // The upgrade: replaying the log (old event included) gives the same state, with the
    // split of the losses still pending settlement, and after settling.
    t.check_replay();
    t.settle_all();
    assert_eq!(slash_ops_of(&t, staker(0), cketh(), "old"), 100_000);
    assert_eq!(slash_ops_of(&t, staker(0), cketh(), "da"), 100_000);
    t.check_slash_destinations();
    t.check_replay();
}

#[test]
fn should_keep_queued_withdrawals_slashable_and_cancellable() {
    let mut t = T::new();
    t.delegate(staker(1), op1(), cketh(), 1_000);
    t.allocate(op1(), "da", cketh(), 10_000);
    t.advance(DAY_NS);
    let Applied::Withdrawal(id) = t.ok(Event::UndelegateRequested {
        staker: P(staker(1)),
        operator: P(op1()),
        ledger: P(cketh()),
        amount: 600,
    }) else {
        panic!()
    };
    let e = t.err(Event::UndelegateRequested {
        staker: P(staker(1)),
        operator: P(op1()),
        ledger: P(cketh()),
        amount: 401,
    });
    assert_eq!(
        e,
        RestakingError::InsufficientDelegation {
            available: Nat::from(400u32)
        }
    );
    t.slash("da", op1(), 5_000);
    let view = t.s.staker_view(staker(1), t.now);
    assert_eq!(view.withdrawals[0].amount, Nat::from(300u32));
    assert_eq!(view.withdrawals[0].seconds_left, 5 * 24 * 3600);
    assert!(
        view.exposure
            .iter()
            .any(|e| e.until == Some(view.withdrawals[0].complete_at))
    );
    // Another staker cannot cancel it.
    let e = t.err(Event::WithdrawalCancelled {
        staker: P(staker(2)),
        id,
    });
    assert_eq!(e, RestakingError::UnknownWithdrawal { id });
    t.ok(Event::WithdrawalCancelled {
        staker: P(staker(1)),
        id,
    });
    assert_eq!(t.value(staker(1), op1(), cketh()), 500);
    assert_eq!(t.s.locked_in_staking(staker(1), cketh()), 1_000);
    t.check_pool_sums();
    t.check_replay();
}

#[test]
fn should_unlock_a_completed_withdrawal_only_after_its_delay() {
    let mut t = T::new();
    t.delegate(staker(1), op1(), cketh(), 1_000);
    let Applied::Withdrawal(id) = t.ok(Event::UndelegateRequested {
        staker: P(staker(1)),
        operator: P(op1()),
        ledger: P(cketh()),
        amount: 1_000,
    }) else {
        panic!()
    };
    let e = t.err(Event::WithdrawalCompleted { id });
    assert!(matches!(e, RestakingError::WithdrawalNotReady { .. }));
    t.advance(7 * DAY_NS);
    t.ok(Event::WithdrawalCompleted { id });
    let unlock: Vec<_> = t.s.ops.values().collect();
    assert_eq!(unlock.len(), 1);
    assert_eq!(unlock[0].kind, OpKind::Unlock);
    assert_eq!(unlock[0].amount, 1_000);
    assert_eq!(t.s.locked_in_staking(staker(1), cketh()), 1_000);
    t.ok(Event::OpSettled { op_id: 1 });
    assert_eq!(t.s.locked_in_staking(staker(1), cketh()), 0);
    t.check_pool_sums();
}

#[test]
fn should_veto_a_subjective_slash_within_the_window_only_by_a_resolver() {
    let mut t = T::new();
    t.delegate(staker(1), op1(), cketh(), 1_000);
    t.allocate(op1(), "confirmation", cketh(), 10_000);
    let e = t.err(Event::SlashRequested {
        slasher: P(p(66)),
        avs: "confirmation".into(),
        operator: P(op1()),
        bps: 100,
        reason: "x".into(),
    });
    assert_eq!(e, RestakingError::NotSlasher);
    let e = t.err(Event::SlashRequested {
        slasher: P(slasher()),
        avs: "confirmation".into(),
        operator: P(op1()),
        bps: 5_001,
        reason: "x".into(),
    });
    assert_eq!(e, RestakingError::SlashTooLarge { max_bps: 5_000 });
    let Applied::Slash(id) = t.ok(Event::SlashRequested {
        slasher: P(slasher()),
        avs: "confirmation".into(),
        operator: P(op1()),
        bps: 100,
        reason: "x".into(),
    }) else {
        panic!()
    };
    let e = t.err(Event::SlashVetoed {
        resolver: P(slasher()),
        id,
    });
    assert_eq!(e, RestakingError::NotResolver);
    t.ok(Event::SlashVetoed {
        resolver: P(resolver()),
        id,
    });
    t.advance(3 * DAY_NS);
    let e = t.err(Event::SlashExecuted { id });
    assert_eq!(e, RestakingError::SlashNotPending { id });
    assert_eq!(t.value(staker(1), op1(), cketh()), 1_000);
    // A veto after the window is refused.
    let Applied::Slash(id) = t.ok(Event::SlashRequested {
        slasher: P(slasher()),
        avs: "confirmation".into(),
        operator: P(op1()),
        bps: 100,
        reason: "y".into(),
    }) else {
        panic!()
    };
    t.advance(2 * DAY_NS);
    let e = t.err(Event::SlashVetoed {
        resolver: P(resolver()),
        id,
    });
    assert_eq!(e, RestakingError::VetoWindowClosed);
    t.ok(Event::SlashExecuted { id });
    assert_eq!(t.value(staker(1), op1(), cketh()), 990);
}

#[test]
fn should_use_an_equivocation_once_and_only_for_a_registered_node() {
    let mut t = T::new();
    t.delegate(staker(1), op1(), cketh(), 1_000);
    t.allocate(op1(), "confirmation", cketh(), 10_000);
    t.advance(DAY_NS);
    let e = t.err(Event::EquivocationSlashed {
        reporter: P(p(5)),
        node: P(node()),
        hub: P(p(40)),
        height: 3,
    });
    assert_eq!(e, RestakingError::UnknownNode { node: node() });
    t.ok(Event::NodeRegistered {
        operator: P(op1()),
        node: P(node()),
        scheme: 3,
        key_name: "k".into(),
        public_key: vec![1; 32],
    });
    t.ok(Event::EquivocationSlashed {
        reporter: P(p(5)),
        node: P(node()),
        hub: P(p(40)),
        height: 3,
    });
    assert_eq!(t.value(staker(1), op1(), cketh()), 500);
    let e = t.err(Event::EquivocationSlashed {
        reporter: P(p(6)),
        node: P(node()),
        hub: P(p(40)),
        height: 3,
    });
    assert_eq!(e, RestakingError::EvidenceAlreadyUsed);
    t.check_replay();
}

#[test]
fn should_pay_commission_then_delegators_pro_rata_weighted_per_asset() {
    let mut t = T::new();
    // op1: 1 000 ckETH (weight 1) from s1, 3 000 from s2; op2: 1 000 ckBTC (weight 2) from s3.
    t.delegate(staker(1), op1(), cketh(), 1_000);
    t.delegate(staker(2), op1(), cketh(), 3_000);
    t.delegate(staker(3), op2(), ckbtc(), 1_000);
    t.allocate(op1(), "da", cketh(), 10_000);
    t.allocate(op2(), "da", ckbtc(), 10_000);
    t.advance(DAY_NS);
    // Weighted stake: op1 4 000 × 1, op2 1 000 × 2 → op1 gets 2/3, op2 1/3.
    t.ok(Event::RewardsDeposited {
        from: P(p(50)),
        avs: "da".into(),
        token: P(reward_token()),
        amount: 60_000,
        period_ns: None,
    });
    let owed = |t: &T, who| {
        t.s.staker_view(who, t.now)
            .pending_rewards
            .iter()
            .fold(Nat::from(0u8), |acc, r| acc + r.amount.clone())
    };
    // op1: 40 000, 10 % commission → 4 000; 36 000 split 1:3.
    assert_eq!(owed(&t, op1()), Nat::from(4_000u32));
    assert_eq!(owed(&t, staker(1)), Nat::from(9_000u32));
    assert_eq!(owed(&t, staker(2)), Nat::from(27_000u32));
    // op2: 20 000, 5 % → 1 000; 19 000 to s3.
    assert_eq!(owed(&t, op2()), Nat::from(1_000u32));
    assert_eq!(owed(&t, staker(3)), Nat::from(19_000u32));
    t.check_replay();
}

#[test]
fn should_claim_all_tokens_of_all_operators_in_one_call_to_a_recipient() {
    let mut t = T::new();
    t.delegate(staker(1), op1(), cketh(), 1_000);
    t.delegate(staker(1), op2(), cketh(), 1_000);
    t.allocate(op1(), "da", cketh(), 10_000);
    t.allocate(op2(), "confirmation", cketh(), 10_000);
    t.advance(DAY_NS);
    for avs in ["da", "confirmation"] {
        t.ok(Event::RewardsDeposited {
            from: P(p(50)),
            avs: avs.into(),
            token: P(reward_token()),
            amount: 10_000,
            period_ns: None,
        });
    }
    let Applied::Claimed(paid) = t.ok(Event::RewardsClaimed {
        owner: P(staker(1)),
        recipient: P(p(88)),
    }) else {
        panic!()
    };
    // 9 000 + 9 500.
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].1, 18_500);
    let op = &t.s.ops[&paid[0].2];
    assert_eq!(op.kind, OpKind::Payout { to: p(88) });
    let e = t.err(Event::RewardsClaimed {
        owner: P(staker(1)),
        recipient: P(p(88)),
    });
    assert_eq!(e, RestakingError::NothingToClaim);
    t.check_replay();
}

#[test]
fn should_hold_rewards_deposited_before_any_allocation_until_stake_is_allocated() {
    let mut t = T::new();
    t.ok(Event::RewardsDeposited {
        from: P(p(50)),
        avs: "da".into(),
        token: P(reward_token()),
        amount: 10_000,
        period_ns: None,
    });
    t.advance(DAY_NS);
    t.ok(Event::StreamsAdvanced);
    assert_eq!(t.s.streams.len(), 1, "nothing allocated: the stream pauses");
    t.delegate(staker(1), op1(), cketh(), 1_000);
    t.allocate(op1(), "da", cketh(), 10_000);
    t.advance(DAY_NS);
    t.ok(Event::StreamsAdvanced);
    assert!(t.s.streams.is_empty());
    let owed: u128 =
        t.s.rewards
            .iter()
            .filter(|((_, tok), _)| *tok == reward_token())
            .map(|(_, v)| *v)
            .sum::<u128>()
            + t.s
                .staker_view(staker(1), t.now)
                .pending_rewards
                .iter()
                .map(|r| u128::try_from(&r.amount.0).unwrap_or(0))
                .sum::<u128>();
    assert!(owed <= 10_000 && owed + 2 >= 10_000, "{owed}");
    t.check_replay();
}

#[test]
fn should_stream_a_deposit_linearly_over_its_period_and_pay_all_of_it_by_the_end() {
    let mut t = T::new();
    t.delegate(staker(1), op1(), cketh(), 1_000);
    t.allocate(op1(), "da", cketh(), 10_000);
    t.advance(DAY_NS);
    t.ok(Event::RewardsDeposited {
        from: P(p(50)),
        avs: "da".into(),
        token: P(reward_token()),
        amount: 1_000_001,
        period_ns: Some(10 * DAY_NS),
    });
    let distributed = |t: &T| {
        t.s.reward_deposited[&reward_token()]
            - t.s.streams.values().map(|s| s.undistributed).sum::<u128>()
    };
    assert_eq!(distributed(&t), 0);
    t.advance(5 * DAY_NS);
    t.ok(Event::StreamsAdvanced);
    // Half of it, rounded down: the odd unit stays in the stream.
    assert_eq!(distributed(&t), 500_000);
    t.advance(3 * DAY_NS);
    t.ok(Event::StreamsAdvanced);
    assert_eq!(distributed(&t), 500_000 + 300_000);
    t.advance(5 * DAY_NS);
    t.ok(Event::StreamsAdvanced);
    assert_eq!(distributed(&t), 1_000_001);
    assert!(t.s.streams.is_empty());
    t.check_replay();
}

/// Registers AVS `id` weighing ckETH (18 decimals) and ckBTC (8 decimals) with the given
/// weights, as `register_avs` logs it after reading the ledgers' decimals.
fn register_mixed_avs(t: &mut T, id: &str, eth_bps: u32, btc_bps: u32) {
    t.ok(Event::AvsRegistered {
        id: id.into(),
        name: id.into(),
        kind: kind_tag(AvsKind::Other),
        slashers: vec![P(slasher())],
        weights: vec![
            AssetWeightEv {
                ledger: P(cketh()),
                weight_bps: eth_bps,
                decimals: Some(18),
            },
            AssetWeightEv {
                ledger: P(ckbtc()),
                weight_bps: btc_bps,
                decimals: Some(8),
            },
        ],
        max_slash_bps: 5_000,
        veto_window_ns: DAY_NS,
        resolvers: vec![],
        reward_tokens: vec![P(reward_token())],
        redistribution: None,
    });
}

fn owed_to(t: &T, who: Principal) -> u128 {
    t.s.staker_view(who, t.now)
        .pending_rewards
        .iter()
        .filter(|r| r.token == reward_token())
        .map(|r| u128::try_from(&r.amount.0).expect("fits"))
        .sum()
}

/// 1 ckETH (10^18 units) staked with op1 and 1 ckBTC (10^8 units) with op2, both fully
/// allocated to `avs`, then `amount` deposited at once.
fn one_eth_and_one_btc(eth_bps: u32, btc_bps: u32, amount: u128) -> T {
    let mut t = T::new();
    register_mixed_avs(&mut t, "mixed", eth_bps, btc_bps);
    t.delegate(staker(1), op1(), cketh(), 1_000_000_000_000_000_000);
    t.delegate(staker(2), op2(), ckbtc(), 100_000_000);
    t.allocate(op1(), "mixed", cketh(), 10_000);
    t.allocate(op2(), "mixed", ckbtc(), 10_000);
    t.advance(DAY_NS);
    t.ok(Event::RewardsDeposited {
        from: P(p(50)),
        avs: "mixed".into(),
        token: P(reward_token()),
        amount,
        period_ns: None,
    });
    t
}

#[test]
fn should_weigh_one_ckbtc_and_one_cketh_alike_with_equal_weights() {
    // 1 000 001 split 1 : 1, rounded down: 500 000 each, 1 unit of dust.
    let t = one_eth_and_one_btc(10_000, 10_000, 1_000_001);
    // op1 takes 10 %, op2 5 %.
    assert_eq!(owed_to(&t, op1()), 50_000);
    assert_eq!(owed_to(&t, staker(1)), 450_000);
    assert_eq!(owed_to(&t, op2()), 25_000);
    assert_eq!(owed_to(&t, staker(2)), 475_000);
    assert_eq!(t.s.reward_dust[&reward_token()], 1);
    t.check_replay();
}

#[test]
fn should_split_rewards_across_decimals_by_the_weight_ratio() {
    // ckBTC weighs 3× ckETH per whole token: 1 000 000 splits 250 000 : 750 000.
    let t = one_eth_and_one_btc(10_000, 30_000, 1_000_000);
    assert_eq!(owed_to(&t, op1()) + owed_to(&t, staker(1)), 250_000);
    assert_eq!(owed_to(&t, op2()) + owed_to(&t, staker(2)), 750_000);
    // 1 : 3 does not divide 1 000 001: each share rounds down, the rest is dust.
    let t = one_eth_and_one_btc(10_000, 30_000, 1_000_001);
    let eth = owed_to(&t, op1()) + owed_to(&t, staker(1));
    let btc = owed_to(&t, op2()) + owed_to(&t, staker(2));
    assert_eq!((eth, btc), (250_000, 750_000));
    assert_eq!(t.s.reward_dust[&reward_token()], 1);
    t.check_replay();
}

#[test]
fn should_keep_weighting_exact_for_stakes_beyond_u128_once_scaled() {
    const E33: u128 = 10u128.pow(33);
    // 2^100 ckBTC units scaled to 18 decimals exceed u128: the split is still 1 : 2.
    let mut t = T::new();
    register_mixed_avs(&mut t, "mixed", 10_000, 10_000);
    t.delegate(staker(1), op1(), ckbtc(), 1 << 100);
    t.delegate(staker(2), op2(), ckbtc(), 1 << 101);
    t.allocate(op1(), "mixed", ckbtc(), 10_000);
    t.allocate(op2(), "mixed", ckbtc(), 10_000);
    t.advance(DAY_NS);
    t.ok(Event::RewardsDeposited {
        from: P(p(50)),
        avs: "mixed".into(),
        token: P(reward_token()),
        amount: 3 * E33,
        period_ns: None,
    });
    // The commissions show each pool's share exactly: 10 % of 1e33 and 5 % of 2e33.
    assert_eq!(owed_to(&t, op1()), E33 / 10);
    assert_eq!(owed_to(&t, op2()), E33 / 10);
    // Delegators: the rest, less the index's rounding (at most shares / 1e18 units).
    let slack = (1u128 << 101) / WAD + 1;
    let s1 = owed_to(&t, staker(1));
    let s2 = owed_to(&t, staker(2));
    assert!(s1 <= E33 * 9 / 10 && s1 + slack >= E33 * 9 / 10, "{s1}");
    assert!(s2 <= E33 * 19 / 10 && s2 + slack >= E33 * 19 / 10, "{s2}");
    t.check_replay();
}

#[test]
fn should_decode_a_weight_logged_before_decimals_as_raw_units() {
    // The pre-decimals encoding: [ledger, weight_bps].
    let mut old = Vec::new();
    let mut e = minicbor::Encoder::new(&mut old);
    e.array(2).expect("array");
    e.bytes(cketh().as_slice()).expect("bytes");
    e.u32(10_000).expect("u32");
    let w: AssetWeightEv = minicbor::decode(&old).expect("an old weight decodes");
    assert_eq!(
        w,
        AssetWeightEv {
            ledger: P(cketh()),
            weight_bps: 10_000,
            decimals: None,
        }
    );
}

#[test]
fn should_scale_stake_to_whole_tokens_by_decimals() {
    use crate::model::normalized_stake;
    let one = |x: u128| crate::math::U256::mul(x, 1);
    assert_eq!(normalized_stake(100_000_000, Some(8)), one(WAD));
    assert_eq!(normalized_stake(WAD, Some(18)), one(WAD));
    assert_eq!(normalized_stake(WAD * 1_000 + 999, Some(21)), one(WAD));
    assert_eq!(normalized_stake(u128::MAX, Some(100)), one(0));
    // Weights logged before decimals were recorded keep raw units.
    assert_eq!(normalized_stake(5, None), one(5));
}

fn deposit_request(amount: u128, period_ns: Option<u64>, key: Option<(u64, &[u8])>) -> Event {
    Event::DepositRequested {
        from: P(p(50)),
        avs: "da".into(),
        token: P(reward_token()),
        amount,
        period_ns,
        created_at_time: key.map(|(t, _)| t),
        memo: key.map(|(_, m)| m.to_vec()),
    }
}

#[test]
fn should_refuse_a_deposit_no_stake_could_receive_before_pulling_anything() {
    let mut t = T::new();
    assert_eq!(
        t.err(deposit_request(1_000, None, None)),
        RestakingError::NoAllocatedStake
    );
    assert_eq!(
        t.err(deposit_request(0, None, None)),
        RestakingError::ZeroAmount
    );
    let e = t.err(Event::DepositRequested {
        from: P(p(50)),
        avs: "da".into(),
        token: P(cketh()),
        amount: 1,
        period_ns: None,
        created_at_time: None,
        memo: None,
    });
    assert!(matches!(e, RestakingError::InvalidArgument(_)), "{e:?}");
    t.delegate(staker(1), op1(), cketh(), 1_000);
    t.allocate(op1(), "da", cketh(), 10_000);
    // Pending allocation: a stream can wait for it, an immediate deposit cannot.
    assert_eq!(
        t.err(deposit_request(1_000, None, None)),
        RestakingError::NoAllocatedStake
    );
    assert!(matches!(
        t.ok(deposit_request(1_000, Some(DAY_NS), None)),
        Applied::Op(_)
    ));
    // Keys: a memo needs its created_at_time; too old, in the future, too long: refused.
    let now = t.now;
    for bad in [
        Event::DepositRequested {
            from: P(p(50)),
            avs: "da".into(),
            token: P(reward_token()),
            amount: 1,
            period_ns: Some(DAY_NS),
            created_at_time: None,
            memo: Some(b"m".to_vec()),
        },
        deposit_request(1, Some(DAY_NS), Some((now - DAY_NS, b"m"))),
        deposit_request(1, Some(DAY_NS), Some((now + DAY_NS, b"m"))),
        deposit_request(1, Some(DAY_NS), Some((now, &[7u8; 33]))),
        deposit_request(
            1,
            Some(DAY_NS),
            Some((now, b"restaking-deposit\0\0\0\0\0\0\0\0")),
        ),
    ] {
        let e = t.err(bad);
        assert!(matches!(e, RestakingError::InvalidArgument(_)), "{e:?}");
    }
    t.check_replay();
}

#[test]
fn should_credit_a_keyed_deposit_once_and_free_the_key_of_a_refused_one() {
    let mut t = T::new();
    t.delegate(staker(1), op1(), cketh(), 1_000);
    t.allocate(op1(), "da", cketh(), 10_000);
    t.advance(DAY_NS);
    let key = (t.now - 5 * NANOS_PER_SEC, &b"forward 1"[..]);
    let Applied::Op(op) = t.ok(deposit_request(10_000, None, Some(key))) else {
        panic!("no op")
    };
    // Journaled with the caller's key, nothing credited yet.
    let o = &t.s.ops[&op];
    assert_eq!(o.created_at, key.0);
    assert!(matches!(&o.kind, OpKind::Deposit { memo, .. } if memo.as_slice() == key.1));
    assert!(t.s.reward_deposited.is_empty());
    let k = (key.0, p(50), reward_token(), key.1.to_vec());
    assert_eq!(
        t.s.deposit_by_key(&k, "da", 10_000, None),
        Ok(Some((op, false)))
    );
    // The same key with other arguments is refused; a second request with it is not logged.
    assert!(t.s.deposit_by_key(&k, "da", 9_999, None).is_err());
    assert!(matches!(
        t.err(deposit_request(10_000, None, Some(key))),
        RestakingError::InvalidArgument(_)
    ));
    t.ok(Event::DepositReceived {
        op_id: op,
        block: 7,
    });
    assert_eq!(
        t.s.deposit_by_key(&k, "da", 10_000, None),
        Ok(Some((op, true)))
    );
    // A second confirmation (a late retry's `Duplicate`) credits nothing more.
    assert_eq!(
        t.err(Event::DepositReceived {
            op_id: op,
            block: 7
        }),
        RestakingError::UnknownOp { op_id: op }
    );
    assert_eq!(t.s.reward_deposited[&reward_token()], 10_000);
    assert_eq!(owed_to(&t, op1()) + owed_to(&t, staker(1)), 10_000);

    // Refused by the ledger: the op goes, and the key may be used again.
    let key2 = (t.now, &b"forward 2"[..]);
    let Applied::Op(op2) = t.ok(deposit_request(500, None, Some(key2))) else {
        panic!("no op")
    };
    t.ok(Event::DepositFailed {
        op_id: op2,
        reason: "InsufficientAllowance".into(),
    });
    assert!(!t.s.ops.contains_key(&op2));
    assert!(matches!(
        t.ok(deposit_request(500, None, Some(key2))),
        Applied::Op(_)
    ));
    assert_eq!(t.s.reward_deposited[&reward_token()], 10_000);
    // Old credited keys are forgotten once no request could reuse them.
    t.advance(DAY_NS);
    t.ok(deposit_request(1, None, None));
    assert!(!t.s.deposit_keys.contains_key(&k));
    t.check_replay();
}

#[test]
fn should_refuse_a_second_guard_for_an_op_in_flight_without_panicking() {
    use crate::ops::OpGuard;
    let first = OpGuard::take(7).expect("free");
    assert!(OpGuard::take(7).is_none(), "in flight");
    assert!(OpGuard::take(8).is_some(), "another op");
    drop(first);
    assert!(OpGuard::take(7).is_some(), "released");
}

#[test]
fn should_find_unsettled_positions_through_the_index_in_batches() {
    let mut t = T::new();
    for n in 0..10 {
        t.delegate(staker(n), op1(), cketh(), 1_000);
    }
    // Another operator's pool, never slashed: the sweep never visits it.
    for n in 0..5 {
        t.delegate(staker(n), op2(), cketh(), 1_000);
    }
    t.ok(Event::UndelegateRequested {
        staker: P(staker(9)),
        operator: P(op1()),
        ledger: P(cketh()),
        amount: 400,
    });
    t.allocate(op1(), "da", cketh(), 10_000);
    t.advance(DAY_NS);
    assert!(t.s.unsettled(100).0.is_empty());
    t.slash("da", op1(), 1_000);
    assert_eq!(
        t.s.unsettled_pools.iter().copied().collect::<Vec<_>>(),
        vec![(op1(), cketh())]
    );
    assert_eq!(t.s.pools[&(op1(), cketh())].unsettled, 11);
    // A staker settles its own position meanwhile: the sweep skips it.
    t.ok(Event::UndelegateRequested {
        staker: P(staker(4)),
        operator: P(op1()),
        ledger: P(cketh()),
        amount: 100,
    });
    let mut seen = Vec::new();
    let mut runs = 0;
    loop {
        let (d, w) = t.s.unsettled(3);
        if d.is_empty() && w.is_empty() {
            break;
        }
        assert!(d.len() + w.len() <= 3);
        for (o, l, s) in d {
            assert_eq!((o, l), (op1(), cketh()));
            assert!(!seen.contains(&s), "{s} returned twice");
            seen.push(s);
            t.ok(Event::DelegationSettled {
                operator: P(o),
                ledger: P(l),
                staker: P(s),
            });
        }
        for id in w {
            t.ok(Event::WithdrawalSettled { id });
        }
        t.check_pool_sums();
        runs += 1;
        assert!(runs < 10);
    }
    // 10 delegations less the self-settled one, and both withdrawals, in 4 runs.
    assert_eq!(seen.len(), 9);
    assert_eq!(runs, 4);
    assert!(t.s.unsettled_pools.is_empty());
    assert_eq!(t.s.pools[&(op1(), cketh())].unsettled, 0);
    t.check_replay();
}

#[derive(Clone, Debug)]
enum Step {
    Delegate(u8, bool, u8, u128),
    Undelegate(u8, bool, u8, u128),
    Allocate(bool, bool, u8, u32),
    Slash(bool, bool, u32),
    Reward(u128),
    Cancel(u8),
    Complete(u8),
    Advance(u64),
    Settle,
    Claim(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            0u8..6,
            any::<bool>(),
            0u8..2,
            1u128..1_000_000_000_000_000_000_000u128
        )
            .prop_map(|(s, o, l, a)| Step::Delegate(s, o, l, a)),
        (
            0u8..6,
            any::<bool>(),
            0u8..2,
            1u128..1_000_000_000_000_000_000u128
        )
            .prop_map(|(s, o, l, a)| Step::Undelegate(s, o, l, a)),
        (any::<bool>(), any::<bool>(), 0u8..2, 0u32..=10_000)
            .prop_map(|(o, a, l, b)| Step::Allocate(o, a, l, b)),
        (any::<bool>(), any::<bool>(), 1u32..=10_000).prop_map(|(o, a, b)| Step::Slash(o, a, b)),
        (1u128..1_000_000_000_000u128).prop_map(Step::Reward),
        (0u8..8).prop_map(Step::Cancel),
        (0u8..8).prop_map(Step::Complete),
        (0u64..10 * DAY_NS).prop_map(Step::Advance),
        Just(Step::Settle),
        (0u8..6).prop_map(Step::Claim),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// After any sequence of operations, slashes included: every pool's totals equal the sums
    /// over its positions; once settled, Σ values = pool total; realized losses cover every
    /// nominal slash; rewards never exceed deposits; replay gives the same state.
    #[test]
    fn should_keep_pool_totals_equal_to_the_sum_over_delegators(steps in prop::collection::vec(step(), 1..40)) {
        let mut t = T::new();
        let ops = |o: bool| if o { op1() } else { op2() };
        let ledger = |l: u8| if l == 0 { cketh() } else { ckbtc() };
        let avs = |a: bool| if a { "confirmation" } else { "da" };
        for s in steps {
            match s {
                Step::Delegate(s, o, l, a) => t.delegate(staker(s), ops(o), ledger(l), a),
                Step::Undelegate(s, o, l, a) => { let _ = t.apply(Event::UndelegateRequested { staker: P(staker(s)), operator: P(ops(o)), ledger: P(ledger(l)), amount: a }); }
                Step::Allocate(o, a, l, b) => { let _ = t.apply(Event::Allocated { operator: P(ops(o)), avs: avs(a).into(), ledger: P(ledger(l)), bps: b }); }
                Step::Slash(o, a, b) => {
                    let max = if a { 5_000 } else { 10_000 };
                    if let Ok(Applied::Slash(id)) = t.apply(Event::SlashRequested { slasher: P(slasher()), avs: avs(a).into(), operator: P(ops(o)), bps: b.min(max), reason: String::new() }) {
                        t.advance(2 * DAY_NS);
                        t.ok(Event::SlashExecuted { id });
                    }
                }
                Step::Reward(a) => { let _ = t.apply(Event::RewardsDeposited { from: P(p(50)), avs: "da".into(), token: P(reward_token()), amount: a, period_ns: None }); }
                Step::Cancel(i) => { if let Some((id, w)) = t.s.withdrawals.iter().nth(usize::from(i)).map(|(id, w)| (*id, w.staker)) { t.ok(Event::WithdrawalCancelled { staker: P(w), id }); } }
                Step::Complete(i) => { if let Some(id) = t.s.withdrawals.keys().nth(usize::from(i)).copied() { let _ = t.apply(Event::WithdrawalCompleted { id }); } }
                Step::Advance(ns) => t.advance(ns),
                Step::Settle => t.settle_all(),
                Step::Claim(s) => { let _ = t.apply(Event::RewardsClaimed { owner: P(staker(s)), recipient: P(staker(s)) }); }
            }
            t.check_pool_sums();
            t.check_slash_destinations();
        }
        // Values never exceed settled amounts; settling makes them equal.
        t.settle_all();
        t.check_slash_destinations();
        for ((o, l), pool) in t.s.pools.clone() {
            let values: u128 = t.s.delegations.iter().filter(|((o2, l2, _), _)| (*o2, *l2) == (o, l)).map(|(_, d)| d.value(&pool)).sum::<u128>()
                + t.s.withdrawals.values().filter(|w| (w.operator, w.ledger) == (o, l)).map(|w| w.stake.value(&pool)).sum::<u128>();
            prop_assert_eq!(values, pool.total_amount);
            prop_assert!(pool.value() <= pool.total_amount);
        }
        // Realized losses (sent to staking) cover the nominal slashes, per asset.
        for l in [cketh(), ckbtc()] {
            let nominal: u128 = t.s.slashes.values().filter_map(|s| s.slashed.get(&l)).sum();
            let realized = t.s.slashed_total.get(&l).copied().unwrap_or(0);
            prop_assert!(realized >= nominal, "realized {} < nominal {}", realized, nominal);
        }
        // Rewards: owed + paid-out ops + dust never exceed what was deposited.
        let token = reward_token();
        let deposited = t.s.reward_deposited.get(&token).copied().unwrap_or(0);
        let owed: u128 = t.s.rewards.iter().filter(|((_, tk), _)| *tk == token).map(|(_, v)| *v).sum();
        let paid: u128 = t.s.ops.values().filter(|o| matches!(o.kind, OpKind::Payout { .. })).map(|o| o.amount).sum();
        let dust = t.s.reward_dust.get(&token).copied().unwrap_or(0);
        prop_assert!(owed + paid + dust <= deposited, "{} + {} + {} > {}", owed, paid, dust, deposited);
        t.check_replay();
    }
}

#[test]
fn should_keep_units_consistent() {
    assert_eq!(BPS, 10_000);
    assert_eq!(WAD, 10u128.pow(18));
}

#[test]
fn should_match_the_checked_in_candid_interface() {
    use candid_parser::utils::{CandidSource, service_equal};
    let generated = crate::__export_service();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../candid/restaking.did");
    if std::env::var_os("UPDATE_CANDID").is_some() {
        std::fs::write(&path, &generated).expect("cannot write candid/restaking.did");
    }
    let checked_in = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    service_equal(
        CandidSource::Text(&generated),
        CandidSource::Text(&checked_in),
    )
    .unwrap_or_else(|e| {
        panic!(
            "candid/restaking.did differs from the generated interface \
                 (regenerate with UPDATE_CANDID=1 cargo test -p restaking): {e}\n{generated}"
        )
    });
}

/// Restaking's in-canister check of an equivocation proof accepts and refuses exactly what
/// the offline verifier `stratros_verify::verify_equivocation` does (both now check each
/// signature with `stratros_signatures::verify_signature`), with restaking's own messages:
/// a valid proof for ECDSA, BIP340 and Ed25519 keys; a second header signed by another key;
/// a forged signature; the same header twice; two heights; another scheme; a malformed key.
#[test]
fn should_verify_equivocations_as_stratros_verify_does() {
    use stratros_confirmation::{
        BatchHeader, Blob, EquivocationEvidence, Hash32, Scheme, SignedHeader,
        header_signing_digest,
    };
    let node = Principal::from_slice(&[7; 10]);
    let header = |height: u64, root: u8| BatchHeader {
        hub: Principal::from_slice(&[1; 10]),
        height,
        prev_header_hash: Hash32([0; 32]),
        merkle_root: Hash32([root; 32]),
        leaf_count: 1,
        first_record_id: height,
        last_record_id: height,
        start_time_nanos: 1,
        end_time_nanos: 2,
        quorum_policy_hash: Hash32([3; 32]),
    };
    let secp = ic_secp256k1::PrivateKey::generate_from_seed(b"restaking equivocation test");
    let other_secp = ic_secp256k1::PrivateKey::generate_from_seed(b"another node");
    let ed = ic_ed25519::PrivateKey::generate_from_seed(b"restaking equivocation test");
    let sign = |scheme: Scheme, other: bool, h: &BatchHeader| -> Vec<u8> {
        let d = header_signing_digest(scheme, &node, h).0;
        let k = if other { &other_secp } else { &secp };
        match scheme {
            Scheme::EcdsaSecp256k1 => k.sign_digest_with_ecdsa(&d).to_vec(),
            Scheme::SchnorrBip340 => k.sign_message_with_bip340_no_rng(&d).to_vec(),
            Scheme::SchnorrEd25519 => ed.sign_message(&d).to_vec(),
            Scheme::Bls12_381 => unreachable!("not generated here"),
        }
    };
    /// What, the evidence, the key, the scheme it is checked under, the expected error prefix.
    type Case = (
        &'static str,
        EquivocationEvidence,
        Vec<u8>,
        Scheme,
        Option<&'static str>,
    );
    let schemes = [
        (
            Scheme::EcdsaSecp256k1,
            secp.public_key().serialize_sec1(true),
        ),
        (
            Scheme::SchnorrBip340,
            secp.public_key().serialize_sec1(true),
        ),
        (
            Scheme::SchnorrEd25519,
            ed.public_key().serialize_raw().to_vec(),
        ),
    ];
    for (scheme, key) in &schemes {
        let evidence = |a: BatchHeader, b: BatchHeader, other_second: bool| EquivocationEvidence {
            node,
            scheme: *scheme,
            key_name: "key".into(),
            first: SignedHeader {
                signature: Blob(sign(*scheme, false, &a)),
                header: a,
            },
            second: SignedHeader {
                signature: Blob(sign(*scheme, other_second, &b)),
                header: b,
            },
        };
        let valid = evidence(header(5, 1), header(5, 2), false);
        let mut forged = valid.clone();
        forged.second.signature.0[10] ^= 1;
        let mut malformed_key = key.clone();
        malformed_key.pop();
        let other_scheme = if *scheme == Scheme::SchnorrEd25519 {
            Scheme::EcdsaSecp256k1
        } else {
            Scheme::SchnorrEd25519
        };
        let cases: Vec<Case> = vec![
            ("valid", valid.clone(), key.clone(), *scheme, None),
            (
                "second signed by another key",
                evidence(header(5, 1), header(5, 2), true),
                key.clone(),
                *scheme,
                // Ed25519 has one key here: its "other" signature is the node's own.
                (*scheme != Scheme::SchnorrEd25519)
                    .then_some("second signature: invalid signature"),
            ),
            (
                "forged",
                forged,
                key.clone(),
                *scheme,
                Some("second signature: invalid signature"),
            ),
            (
                "same header",
                evidence(header(5, 1), header(5, 1), false),
                key.clone(),
                *scheme,
                Some(""),
            ),
            (
                "two heights",
                evidence(header(5, 1), header(6, 2), false),
                key.clone(),
                *scheme,
                Some(""),
            ),
            (
                "another scheme",
                valid.clone(),
                key.clone(),
                other_scheme,
                Some("the evidence names"),
            ),
            (
                "malformed key",
                valid.clone(),
                malformed_key,
                *scheme,
                Some("first signature: malformed public key"),
            ),
        ];
        for (what, ev, key, as_scheme, expected) in cases {
            let ours = crate::verify::verify_equivocation(&ev, &key, as_scheme);
            let theirs = stratros_verify::verify_equivocation(&ev, &key, as_scheme);
            assert_eq!(
                ours.is_ok(),
                theirs.is_ok(),
                "{scheme} {what}: {ours:?} / {theirs:?}"
            );
            match expected {
                None => assert_eq!(ours, Ok(()), "{scheme} {what}"),
                Some(message) => {
                    let e = ours.expect_err(what);
                    assert!(e.starts_with(message), "{scheme} {what}: {e}");
                }
            }
        }
    }
}
