//! The real `restaking`, `staking`, `icrc_ledger` and `confirmation_node` Wasm on the IC
//! emulator: stake, delegate, allocate, an equivocation proof per scheme, slash, and the
//! cross-canister invariant (restaking's locked per owner/asset == staking's locked) after
//! every step. Prints the instruction counts written in the crate README.
//!
//! Needs `bash scripts/build.sh restaking staking icrc_ledger confirmation_node`.
//!
//! The conflicting signature: a node canister refuses a second header for a height (that is
//! its job), so the first signature comes from the real node Wasm through the threshold API,
//! and the second is made with the emulator's own threshold keys (`Emulator::keys()`) for the
//! very key the subnet derives for that node canister: the same key, the same signing digest,
//! exactly what a compromised or buggy node would produce. A second node instance would not
//! do: its key is derived for another canister id, so it is not an equivocation of the first.

use std::time::Duration;

use candid::{CandidType, Encode, Nat, Principal};
use ic_emulator::Emulator;
use ic_emulator::crypto::SchnorrAlgorithm;
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use restaking::types::{
    AllocateArgs, Arg, AssetWeight, AvsKind, DelegateArgs, EquivocationArgs, InitArgs,
    RegisterAvsArgs, RegisterNodeArgs, RegisterOperatorArgs, RestakingError, StakerView,
};
use stratros_confirmation::{
    BatchHeader, Blob, EquivocationEvidence, Hash32, Scheme, SignedHeader, VETKD_CONTEXT,
    header_signing_digest,
};
use stratros_staking_api::{
    Arg as StakingArg, AssetArg, InitArgs as StakingInit, PositionView, StakeArgs, StakeError,
};

mod common;

const KEY: &str = "dfx_test_key";

// The fixtures' install arguments and replies, as Candid (their crates export
// `canister_init` too, so they cannot be linked into this test binary).
#[derive(CandidType)]
enum LedgerArg {
    Init(LedgerInit),
}

#[derive(CandidType)]
struct LedgerInit {
    token_name: String,
    token_symbol: String,
    decimals: u8,
    transfer_fee: Nat,
    minting_account: Account,
    initial_balances: Vec<(Account, Nat)>,
    max_memo_length: Option<u16>,
}

#[derive(CandidType)]
enum NodeArg {
    Init(NodeInit),
}

#[derive(CandidType)]
struct NodeInit {
    scheme: Scheme,
    key_name: String,
    hub: Principal,
}

#[derive(CandidType, serde::Deserialize)]
struct SignResponse {
    confirmation: stratros_confirmation::Confirmation,
}
const DAY: Duration = Duration::from_secs(24 * 3600);
const FEE: u128 = 2_000_000_000_000;

/// `out/<name>.wasm`, or `$STRATROS_WASM_DIR/<name>.wasm` (as the other suites).
fn out(name: &str) -> Vec<u8> {
    ic_testkit::wasm(name)
}

fn user(n: u64) -> Principal {
    Principal::self_authenticating(format!("restaker {n}"))
}
fn operator() -> Principal {
    Principal::self_authenticating(b"operator")
}
fn hub() -> Principal {
    Principal::self_authenticating(b"stratros test hub")
}
fn minter() -> Principal {
    Principal::self_authenticating(b"minter")
}

struct Suite {
    emu: Emulator,
    eth: Principal,
    staking: Principal,
    restaking: Principal,
    restaking_wasm: Vec<u8>,
}

impl Suite {
    fn new(n_users: u64) -> Suite {
        let mut emu = Emulator::new();
        let eth = emu.create_canister();
        let balances = (0..n_users)
            .map(|i| (Account::from(user(i)), Nat::from(10u128.pow(24))))
            .collect();
        let arg = LedgerArg::Init(LedgerInit {
            token_name: "ckETH".into(),
            token_symbol: "ckETH".into(),
            decimals: 18,
            transfer_fee: Nat::from(FEE),
            minting_account: minter().into(),
            initial_balances: balances,
            max_memo_length: Some(32),
        });
        emu.install_canister(
            eth,
            &out("icrc_ledger"),
            Encode!(&arg).expect("encode"),
            None,
        )
        .expect("install ledger");
        let staking = emu.create_canister();
        let restaking = emu.create_canister();
        let arg = StakingArg::Init(StakingInit {
            restaking: Some(restaking),
            unbonding_seconds: None,
            reward_period_seconds: None,
            slash_destination: None,
            assets: vec![AssetArg {
                ledger: eth,
                min_stake: Nat::from(1_000u32),
            }],
            reconcile_interval_seconds: Some(60),
        });
        emu.install_canister(
            staking,
            &out("staking"),
            Encode!(&arg).expect("encode"),
            None,
        )
        .expect("install staking");
        let restaking_wasm = out("restaking");
        let arg = Arg::Init(InitArgs {
            staking,
            withdrawal_delay_seconds: None,
            allocation_delay_seconds: None,
            deallocation_delay_seconds: None,
            commission_delay_seconds: None,
        });
        emu.install_canister(
            restaking,
            &restaking_wasm,
            Encode!(&arg).expect("encode"),
            None,
        )
        .expect("install restaking");
        emu.run_until_idle();
        Suite {
            emu,
            eth,
            staking,
            restaking,
            restaking_wasm,
        }
    }

    /// The reply and the instructions restaking spent on it (all its executions).
    fn call<T: CandidType + for<'de> serde::Deserialize<'de>>(
        &mut self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> (T, u64) {
        let mark = self.emu.executions().len();
        let bytes = self
            .emu
            .update_call(canister, sender, method, arg)
            .unwrap_or_else(|e| panic!("{method} rejected: {e:?}"));
        let instructions = self.emu.executions()[mark..]
            .iter()
            .filter(|e| e.canister == self.restaking && !e.entry.contains("timer"))
            .map(|e| e.instructions)
            .sum();
        let reply = candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: {e}"));
        (reply, instructions)
    }

    fn query<T: CandidType + for<'de> serde::Deserialize<'de>>(
        &mut self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> T {
        let bytes = self
            .emu
            .query_call(canister, Principal::anonymous(), method, arg)
            .unwrap_or_else(|e| panic!("{method} rejected: {e:?}"));
        candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn stake(&mut self, who: Principal, amount: u128) {
        let arg = ApproveArgs {
            from_subaccount: None,
            spender: self.staking.into(),
            amount: Nat::from(amount + FEE),
            expected_allowance: None,
            expires_at: None,
            fee: None,
            memo: None,
            created_at_time: None,
        };
        let (r, _): (Result<Nat, ApproveError>, _) = self.call(
            self.eth,
            who,
            "icrc2_approve",
            Encode!(&arg).expect("encode"),
        );
        r.expect("approve");
        let arg = StakeArgs {
            ledger: self.eth,
            amount: Nat::from(amount),
            lock_seconds: None,
        };
        let (r, _): (Result<PositionView, StakeError>, _) =
            self.call(self.staking, who, "stake", Encode!(&arg).expect("encode"));
        r.expect("stake");
    }

    fn delegate(&mut self, who: Principal, amount: u128) -> (Result<u64, RestakingError>, u64) {
        let arg = DelegateArgs {
            operator: operator(),
            ledger: self.eth,
            amount: Nat::from(amount),
        };
        self.call(
            self.restaking,
            who,
            "delegate",
            Encode!(&arg).expect("encode"),
        )
    }

    fn staking_locked(&mut self, who: Principal) -> Nat {
        let positions: Vec<PositionView> =
            self.query(self.staking, "get_position", Encode!(&who).expect("encode"));
        positions
            .into_iter()
            .find(|p| p.ledger == self.eth)
            .map_or(Nat::from(0u8), |p| p.locked)
    }

    /// Restaking's locked per owner and asset equals staking's locked.
    fn check(&mut self, users: &[Principal]) {
        for u in users {
            let r: Nat = self.query(
                self.restaking,
                "locked_in_staking",
                Encode!(u, &self.eth).expect("encode"),
            );
            let s = self.staking_locked(*u);
            assert_eq!(r, s, "restaking and staking disagree on {u}");
        }
    }

    fn process(&mut self) {
        self.emu
            .update_call(
                self.restaking,
                Principal::anonymous(),
                "process",
                Encode!().expect("encode"),
            )
            .expect("process");
        self.emu.run_until_idle();
    }
}

fn header(height: u64, root: u8) -> BatchHeader {
    BatchHeader {
        hub: hub(),
        height,
        prev_header_hash: Hash32([0; 32]),
        merkle_root: Hash32([root; 32]),
        leaf_count: 1,
        first_record_id: height,
        last_record_id: height,
        start_time_nanos: 1,
        end_time_nanos: 2,
        quorum_policy_hash: Hash32([3; 32]),
    }
}

/// Signs `header` with the key the subnet derives for `node` (see the module comment).
fn sign_as(emu: &Emulator, scheme: Scheme, node: Principal, header: &BatchHeader) -> Vec<u8> {
    let digest = header_signing_digest(scheme, &node, header);
    let keys = emu.keys();
    let id = node.as_slice();
    match scheme {
        Scheme::EcdsaSecp256k1 => keys.sign_with_ecdsa(KEY, id, &[], &digest.0),
        Scheme::SchnorrBip340 => keys.sign_with_schnorr(
            SchnorrAlgorithm::Bip340Secp256k1,
            KEY,
            id,
            &[],
            &digest.0,
            None,
            [7; 32],
        ),
        Scheme::SchnorrEd25519 => keys.sign_with_schnorr(
            SchnorrAlgorithm::Ed25519,
            KEY,
            id,
            &[],
            &digest.0,
            None,
            [7; 32],
        ),
        Scheme::Bls12_381 => {
            let mut transport = [0u8; 48];
            transport[0] = 0xc0;
            keys.vetkd_derive_key(KEY, id, VETKD_CONTEXT, &digest.0, &transport, [7; 32])
                .map(|k| k[144..192].to_vec())
        }
    }
    .expect("sign")
}

#[test]
fn should_slash_an_equivocating_operator_and_keep_staking_in_step() {
    let mut s = Suite::new(3);
    let users: Vec<Principal> = (0..3).map(user).collect();
    let amount = 5 * 10u128.pow(18);
    for u in &users {
        s.stake(*u, amount);
    }
    let (r, _): (Result<(), RestakingError>, _) = s.call(
        s.restaking,
        operator(),
        "register_operator",
        Encode!(&RegisterOperatorArgs {
            name: "op".into(),
            metadata: String::new(),
            commission_bps: 1_000,
        })
        .expect("encode"),
    );
    r.expect("register operator");
    let avs = RegisterAvsArgs {
        id: "confirmation".into(),
        name: "Stratros confirmation layer".into(),
        kind: AvsKind::Confirmation,
        slashers: vec![],
        asset_weights: vec![AssetWeight {
            ledger: s.eth,
            weight_bps: 10_000,
        }],
        max_slash_bps: 1_000,
        veto_window_seconds: 2 * 24 * 3600,
        resolvers: vec![],
        reward_tokens: vec![s.eth],
        redistribution_account: None,
    };
    let (r, _): (Result<(), RestakingError>, _) = s.call(
        s.restaking,
        Principal::anonymous(),
        "register_avs",
        Encode!(&avs).expect("encode"),
    );
    r.expect("register avs");

    let mut delegate_cost = 0;
    for u in &users {
        let (r, cost) = s.delegate(*u, amount / 2);
        r.expect("delegate");
        delegate_cost = cost;
        s.check(&users);
    }
    // Delegating more than is staked: staking refuses, nothing is delegated.
    let (r, _) = s.delegate(users[0], amount);
    assert!(
        matches!(r, Err(RestakingError::StakingRejected(_))),
        "{r:?}"
    );
    s.check(&users);

    let (r, allocate_cost): (Result<(), RestakingError>, _) = s.call(
        s.restaking,
        operator(),
        "allocate",
        Encode!(&AllocateArgs {
            avs: "confirmation".into(),
            ledger: s.eth,
            bps: 10_000,
        })
        .expect("encode"),
    );
    r.expect("allocate");
    s.emu.advance_time(DAY);

    let mut figures = Vec::new();
    for (i, scheme) in Scheme::ALL.into_iter().enumerate() {
        let node = s.emu.create_canister();
        let arg = NodeArg::Init(NodeInit {
            scheme,
            key_name: KEY.into(),
            hub: hub(),
        });
        s.emu
            .install_canister(
                node,
                &out("confirmation_node"),
                Encode!(&arg).expect("encode"),
                None,
            )
            .expect("install node");
        s.emu.run_until_idle();
        let first = header(i as u64, 1);
        let bytes = s
            .emu
            .update_call(node, hub(), "sign_header", Encode!(&first).expect("encode"))
            .expect("sign_header");
        let signed: Result<SignResponse, candid::Reserved> =
            candid::decode_one(&bytes).expect("decode");
        let confirmation = signed.expect("signed").confirmation;
        let second = header(i as u64, 2);
        let second_sig = sign_as(&s.emu, scheme, node, &second);
        let (r, _): (Result<(), RestakingError>, _) = s.call(
            s.restaking,
            operator(),
            "register_node",
            Encode!(&RegisterNodeArgs {
                node,
                scheme,
                key_name: KEY.into(),
                public_key: confirmation.public_key.clone(),
            })
            .expect("encode"),
        );
        r.expect("register node");
        let evidence = EquivocationEvidence {
            node,
            scheme,
            key_name: KEY.into(),
            first: SignedHeader {
                header: first.clone(),
                signature: confirmation.signature.clone(),
            },
            second: SignedHeader {
                header: second.clone(),
                signature: Blob(second_sig.clone()),
            },
        };
        // Forged: the second signature over another header.
        let mut forged = evidence.clone();
        forged.second.header.merkle_root = Hash32([9; 32]);
        let (r, _): (Result<u64, RestakingError>, _) = s.call(
            s.restaking,
            user(9),
            "slash_equivocation",
            Encode!(&EquivocationArgs {
                operator: operator(),
                evidence: forged,
            })
            .expect("encode"),
        );
        assert!(
            matches!(r, Err(RestakingError::InvalidEvidence(_))),
            "{r:?}"
        );
        let (r, cost): (Result<u64, RestakingError>, _) = s.call(
            s.restaking,
            user(9),
            "slash_equivocation",
            Encode!(&EquivocationArgs {
                operator: operator(),
                evidence: evidence.clone(),
            })
            .expect("encode"),
        );
        r.expect("slash");
        figures.push((scheme, cost));
        let (r, _): (Result<u64, RestakingError>, _) = s.call(
            s.restaking,
            user(9),
            "slash_equivocation",
            Encode!(&EquivocationArgs {
                operator: operator(),
                evidence,
            })
            .expect("encode"),
        );
        assert_eq!(r, Err(RestakingError::EvidenceAlreadyUsed));
        // Restaking's view drops at once; staking follows when the positions settle.
        s.process();
        s.check(&users);
    }
    // Four slashes of 10 %: every delegator keeps floor(2.5e18 × 0.9^4) or a unit less.
    let view: StakerView = s.query(
        s.restaking,
        "get_staker",
        Encode!(&users[0]).expect("encode"),
    );
    let left = u128::try_from(view.delegations[0].amount.0.clone()).expect("u128");
    let expected = amount / 2 * 6561 / 10_000;
    assert!(
        left <= expected && left + 4 >= expected,
        "{left} vs {expected}"
    );
    assert_eq!(s.staking_locked(users[0]), Nat::from(left));

    // Upgrade: the state is rebuilt from the event log.
    let before: StakerView = s.query(
        s.restaking,
        "get_staker",
        Encode!(&users[1]).expect("encode"),
    );
    let wasm = s.restaking_wasm.clone();
    s.emu
        .upgrade_canister(
            s.restaking,
            &wasm,
            Encode!(&Some(Arg::Upgrade(None))).expect("encode"),
            None,
        )
        .expect("upgrade");
    let after: StakerView = s.query(
        s.restaking,
        "get_staker",
        Encode!(&users[1]).expect("encode"),
    );
    assert_eq!(before, after);
    s.check(&users);

    println!("| operation | instructions |");
    println!("|---|---|");
    println!("| delegate (incl. staking lock callback) | {delegate_cost} |");
    println!("| allocate | {allocate_cost} |");
    for (scheme, cost) in figures {
        println!("| slash_equivocation, {scheme} | {cost} |");
        assert!(cost < 40_000_000_000 / 4, "{scheme}: {cost}");
    }
}

/// Two AVSs with redistribution accounts and one without slash the same operator: an
/// equivocation proof slashes both confirmation AVSs (the Suite's `confirmation`, without an
/// account, and `confirmation-r`, with one), and the DA AVS executes a subjective slash. Once
/// the positions settle, staking sends each AVS's part to its own account: each account holds
/// exactly the part restaking attributed to its AVS (minus the one ledger fee of staking's
/// transfer), the parts sum to what staking took, and the cross-canister invariants hold,
/// across an upgrade of restaking too.
#[test]
fn should_send_each_avss_part_of_the_settled_slashes_to_its_redistribution_account() {
    use common::{E18, Suite as Scenario, admin, nat};
    use ic_testkit::{CanisterSpec, EmulatorBackend, IcBackendExt};
    use restaking::types::{Account as AvsAccount, AvsView, RequestSlashArgs};

    let backend = EmulatorBackend::new();
    let s = Scenario::new(&backend, 3);
    let amount = 10 * E18;
    for u in s.users.clone() {
        s.stake(u, amount);
        s.delegate(u, amount).expect("delegate");
        s.check();
    }
    let conf_account = Account {
        owner: Principal::self_authenticating(b"confirmation treasury"),
        subaccount: Some([5; 32]),
    };
    let da_account = Account {
        owner: Principal::self_authenticating(b"da treasury"),
        subaccount: None,
    };
    let register = |id: &str, kind: AvsKind, max_slash_bps: u32, to: &Account| {
        let r: Result<(), RestakingError> = s.update(
            admin(),
            "register_avs",
            RegisterAvsArgs {
                id: id.into(),
                name: id.into(),
                kind,
                slashers: vec![admin()],
                asset_weights: vec![AssetWeight {
                    ledger: s.eth,
                    weight_bps: 10_000,
                }],
                max_slash_bps,
                veto_window_seconds: 0,
                resolvers: vec![],
                reward_tokens: vec![],
                redistribution_account: Some(AvsAccount {
                    owner: to.owner,
                    subaccount: to.subaccount.map(|b| Blob(b.to_vec())),
                }),
            },
        );
        r.expect("register avs");
    };
    register(
        "confirmation-r",
        AvsKind::Confirmation,
        1_000,
        &conf_account,
    );
    register("da", AvsKind::DataAvailability, 5_000, &da_account);
    s.allocate_on("confirmation", s.eth, 2_000);
    s.allocate_on("confirmation-r", s.eth, 3_000);
    s.allocate_on("da", s.eth, 4_000);
    s.pass_time(DAY);

    // A node of the operator, and its equivocation.
    let spec = CanisterSpec::default().controller(admin());
    let node =
        s.ic.deploy(
            &spec,
            out("confirmation_node"),
            NodeArg::Init(NodeInit {
                scheme: Scheme::SchnorrEd25519,
                key_name: KEY.into(),
                hub: hub(),
            }),
        )
        .expect("install node");
    s.ic.run_until_idle();
    let first = header(1, 1);
    let signed: Result<SignResponse, candid::Reserved> =
        s.ic.update_as(node, Some(hub()), "sign_header", first.clone())
            .expect("sign_header");
    let confirmation = signed.expect("signed").confirmation;
    let r: Result<(), RestakingError> = s.update(
        common::operator(),
        "register_node",
        RegisterNodeArgs {
            node,
            scheme: Scheme::SchnorrEd25519,
            key_name: KEY.into(),
            public_key: confirmation.public_key.clone(),
        },
    );
    r.expect("register node");
    let second = header(1, 2);
    let second_sig = {
        let emu = backend.emulator().borrow();
        sign_as(&emu, Scheme::SchnorrEd25519, node, &second)
    };
    let r: Result<u64, RestakingError> = s.update(
        user(9),
        "slash_equivocation",
        EquivocationArgs {
            operator: common::operator(),
            evidence: EquivocationEvidence {
                node,
                scheme: Scheme::SchnorrEd25519,
                key_name: KEY.into(),
                first: SignedHeader {
                    header: first,
                    signature: confirmation.signature.clone(),
                },
                second: SignedHeader {
                    header: second,
                    signature: Blob(second_sig),
                },
            },
        },
    );
    r.expect("equivocation slash");
    s.check();
    // The DA AVS's subjective slash: requested, then executed (no veto window).
    let id: Result<u64, RestakingError> = s.update(
        admin(),
        "request_slash",
        RequestSlashArgs {
            avs: "da".into(),
            operator: common::operator(),
            bps: 2_500,
            reason: "withheld data".into(),
        },
    );
    let id = id.expect("request slash");
    let r: Result<(), RestakingError> = s.update(admin(), "execute_slash", id);
    r.expect("execute slash");
    s.check();

    // Settle every position; staking sends each destination's bucket on its next run.
    s.process();
    s.check();
    s.pass_time(std::time::Duration::from_secs(120));
    s.check_settled();
    let view = |id: &str| -> AvsView {
        let v: Option<AvsView> =
            s.ic.query(s.restaking, "get_avs", id.to_string())
                .expect("get_avs");
        v.expect("avs")
    };
    let part = |id: &str| -> u128 {
        view(id)
            .slashed_tokens
            .iter()
            .filter(|t| t.token == s.eth)
            .map(|t| nat(&t.amount))
            .sum()
    };
    let (burned, conf_part, da_part) = (part("confirmation"), part("confirmation-r"), part("da"));
    assert!(burned > 0 && conf_part > 0 && da_part > 0);
    // 10 % of 20 % and of 30 %, 25 % of 40 %: 2 %, 3 % and 10 % of 30 ckETH (each position's
    // loss rounds up by at most one unit, which goes to one AVS).
    assert!(burned.abs_diff(6 * E18 / 10) <= 3, "{burned}");
    assert!(conf_part.abs_diff(9 * E18 / 10) <= 3, "{conf_part}");
    assert!(da_part.abs_diff(3 * E18) <= 3, "{da_part}");
    assert_eq!(
        burned + conf_part + da_part,
        s.slashes_taken_by_staking(),
        "the parts sum to what staking took"
    );
    assert_eq!(s.balance(conf_account), conf_part - common::FEE);
    assert_eq!(s.balance(da_account), da_part - common::FEE);
    assert_eq!(
        view("da").redistribution_account.map(|a| a.owner),
        Some(da_account.owner)
    );
    assert_eq!(view("confirmation").redistribution_account, None);

    // The upgrade replays the log (accounts and attributed totals included).
    let before: Vec<AvsView> = ["confirmation", "confirmation-r", "da"].map(view).to_vec();
    s.upgrade_restaking();
    let after: Vec<AvsView> = ["confirmation", "confirmation-r", "da"].map(view).to_vec();
    assert_eq!(before, after);
    s.check_settled();
}
