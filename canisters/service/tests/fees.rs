//! Per-record fees end to end on the real Wasm: the ICRC ledger fixture, staking, restaking
//! (an operator with stake allocated to the confirmation AVS), the hub charging a fee per
//! record and forwarding what it collects to restaking, four nodes and a service.
//!
//! Written against `ic-testkit`'s `IcBackend`: it runs on the emulator always and on PocketIC
//! when `POCKET_IC_BIN` is set.
//!
//! ```sh
//! bash scripts/build.sh service confirmation confirmation_node icrc_ledger staking restaking
//! cargo test -p service --test fees -- --nocapture
//! ```

use std::time::Duration;

use candid::{CandidType, Nat, Principal};
use ic_testkit::{CanisterSpec, IcBackend, IcBackendExt, SubnetKind, backends_for_test, wasm};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use serde::Deserialize;
use service::{Arg, ConfigUpdate, InitArgs, RecordBody, RecordStatus, RecordView, ServiceStatus};
use stratros_confirmation::hub::{
    Arg as HubArg, ConfigUpdate as HubConfig, FeeAccount, FeeConfig, InitArgs as HubInit,
    Status as HubStatus,
};
use stratros_confirmation::{Hash32, PolicyNode, Scheme};
use stratros_staking_api::{
    Arg as StakingArg, AssetArg, InitArgs as StakingInit, PositionView, StakeArgs, StakeError,
};

const LEDGER_FEE: u128 = 10;
const FEE_PER_RECORD: u128 = 1_000;
const CREDIT_RECORDS: u64 = 10;
const KEY_NAME: &str = "dfx_test_key";

// Mirrors of the ledger fixture's, the node's and restaking's arguments (canister crates
// cannot be linked into one test binary: their entry points would clash).
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
#[derive(CandidType)]
enum RestakingArg {
    Init(RestakingInit),
}
#[derive(CandidType)]
struct RestakingInit {
    staking: Principal,
    withdrawal_delay_seconds: Option<u64>,
    allocation_delay_seconds: Option<u64>,
    deallocation_delay_seconds: Option<u64>,
    commission_delay_seconds: Option<u64>,
}
#[derive(CandidType)]
struct RegisterOperatorArgs {
    name: String,
    metadata: String,
    commission_bps: u32,
}
#[derive(CandidType)]
enum AvsKind {
    Confirmation,
}
#[derive(CandidType)]
struct AssetWeight {
    ledger: Principal,
    weight_bps: u32,
}
#[derive(CandidType)]
struct RegisterAvsArgs {
    id: String,
    name: String,
    kind: AvsKind,
    slashers: Vec<Principal>,
    asset_weights: Vec<AssetWeight>,
    max_slash_bps: u32,
    veto_window_seconds: u64,
    resolvers: Vec<Principal>,
    reward_tokens: Vec<Principal>,
}
#[derive(CandidType)]
struct DelegateArgs {
    operator: Principal,
    ledger: Principal,
    amount: Nat,
}
#[derive(CandidType)]
struct AllocateArgs {
    avs: String,
    ledger: Principal,
    bps: u32,
}
#[derive(CandidType, Deserialize, Debug, Clone, PartialEq, Eq)]
struct TokenAmount {
    token: Principal,
    amount: Nat,
}
/// The part of restaking's `AvsView` the test reads.
#[derive(CandidType, Deserialize, Debug)]
struct AvsView {
    rewards_deposited: Vec<TokenAmount>,
}
type Refusal = candid::Reserved;

fn minter() -> Principal {
    Principal::self_authenticating(b"minter")
}
fn staker() -> Principal {
    Principal::self_authenticating(b"staker")
}
fn operator() -> Principal {
    Principal::self_authenticating(b"operator")
}
fn owner() -> Principal {
    Principal::self_authenticating(b"service owner")
}

struct Net {
    ledger: Principal,
    restaking: Principal,
    hub: Principal,
    service: Principal,
}

fn ok<T: std::fmt::Debug, E: std::fmt::Debug>(what: &str, r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

fn balance(ic: &dyn IcBackend, ledger: Principal, who: Principal) -> u128 {
    let n: Nat = ok(
        "balance",
        ic.query(ledger, "icrc1_balance_of", Account::from(who)),
    );
    u128::try_from(&n.0).expect("u128")
}

fn deploy(ic: &dyn IcBackend) -> Net {
    let app = CanisterSpec::on(SubnetKind::Application);
    let ledger = ok(
        "ledger",
        ic.deploy(
            &app,
            wasm("icrc_ledger"),
            LedgerArg::Init(LedgerInit {
                token_name: "Test USD".into(),
                token_symbol: "TUSD".into(),
                decimals: 6,
                transfer_fee: Nat::from(LEDGER_FEE),
                minting_account: minter().into(),
                initial_balances: vec![
                    (staker().into(), Nat::from(10u128.pow(12))),
                    (owner().into(), Nat::from(10u128.pow(9))),
                ],
                max_memo_length: Some(32),
            }),
        ),
    );
    let staking = ok("create staking", ic.create_canister(&app));
    let restaking = ok("create restaking", ic.create_canister(&app));
    let staking_arg = StakingArg::Init(StakingInit {
        restaking: Some(restaking),
        unbonding_seconds: None,
        reward_period_seconds: None,
        slash_destination: None,
        assets: vec![AssetArg {
            ledger,
            min_stake: Nat::from(1_000u32),
        }],
        reconcile_interval_seconds: Some(60),
    });
    ok(
        "install staking",
        ic.install(
            staking,
            ic_testkit::InstallMode::Install,
            wasm("staking"),
            candid::encode_one(staking_arg).expect("encode"),
            None,
        ),
    );
    let restaking_arg = RestakingArg::Init(RestakingInit {
        staking,
        withdrawal_delay_seconds: None,
        allocation_delay_seconds: Some(1),
        deallocation_delay_seconds: None,
        commission_delay_seconds: None,
    });
    ok(
        "install restaking",
        ic.install(
            restaking,
            ic_testkit::InstallMode::Install,
            wasm("restaking"),
            candid::encode_one(restaking_arg).expect("encode"),
            None,
        ),
    );
    ic.run_until_idle();

    // The staker stakes and delegates; the operator allocates everything to the AVS.
    let stake = 10u128.pow(10);
    let r: Result<Nat, ApproveError> = ok(
        "approve staking",
        ic.update_as(
            ledger,
            Some(staker()),
            "icrc2_approve",
            ApproveArgs {
                from_subaccount: None,
                spender: staking.into(),
                amount: Nat::from(stake + LEDGER_FEE),
                expected_allowance: None,
                expires_at: None,
                fee: None,
                memo: None,
                created_at_time: None,
            },
        ),
    );
    ok("approve", r);
    let r: Result<PositionView, StakeError> = ok(
        "stake",
        ic.update_as(
            staking,
            Some(staker()),
            "stake",
            StakeArgs {
                ledger,
                amount: Nat::from(stake),
                lock_seconds: None,
            },
        ),
    );
    ok("stake", r);
    let r: Result<(), Refusal> = ok(
        "register operator",
        ic.update_as(
            restaking,
            Some(operator()),
            "register_operator",
            RegisterOperatorArgs {
                name: "op".into(),
                metadata: String::new(),
                commission_bps: 1_000,
            },
        ),
    );
    assert!(r.is_ok(), "register operator");
    let r: Result<(), Refusal> = ok(
        "register avs",
        ic.update(
            restaking,
            "register_avs",
            RegisterAvsArgs {
                id: "confirmation".into(),
                name: "Stratros confirmation layer".into(),
                kind: AvsKind::Confirmation,
                slashers: vec![],
                asset_weights: vec![AssetWeight {
                    ledger,
                    weight_bps: 10_000,
                }],
                max_slash_bps: 1_000,
                veto_window_seconds: 3600,
                resolvers: vec![],
                reward_tokens: vec![ledger],
            },
        ),
    );
    assert!(r.is_ok(), "register avs");
    let r: Result<u64, Refusal> = ok(
        "delegate",
        ic.update_as(
            restaking,
            Some(staker()),
            "delegate",
            DelegateArgs {
                operator: operator(),
                ledger,
                amount: Nat::from(stake),
            },
        ),
    );
    assert!(r.is_ok(), "delegate");
    let r: Result<(), Refusal> = ok(
        "allocate",
        ic.update_as(
            restaking,
            Some(operator()),
            "allocate",
            AllocateArgs {
                avs: "confirmation".into(),
                ledger,
                bps: 10_000,
            },
        ),
    );
    assert!(r.is_ok(), "allocate");
    ic.advance_and_settle(Duration::from_secs(5));

    // The hub, its four nodes and the service.
    let hub = ok("create hub", ic.create_canister(&app));
    let service = ok("create service", ic.create_canister(&app));
    let mut nodes = Vec::new();
    for (i, scheme) in Scheme::ALL.into_iter().enumerate() {
        let subnet = if i < 2 {
            SubnetKind::Application
        } else {
            SubnetKind::Fiduciary
        };
        let node = ok(
            "node",
            ic.deploy(
                &CanisterSpec::on(subnet),
                wasm("confirmation_node"),
                NodeArg::Init(NodeInit {
                    scheme,
                    key_name: KEY_NAME.into(),
                    hub,
                }),
            ),
        );
        nodes.push(PolicyNode {
            node,
            scheme,
            key_name: KEY_NAME.into(),
        });
    }
    let hub_arg = HubArg::Init(HubInit {
        submitters: vec![service],
        nodes,
        quorum_rule: None,
        config: Some(HubConfig {
            max_batch_records: Some(100),
            max_batch_age_seconds: Some(2),
            ..Default::default()
        }),
        fees: Some(FeeConfig {
            ledger,
            fee_per_record: FEE_PER_RECORD,
            restaking: Some(restaking),
            avs: "confirmation".into(),
            min_forward: 100,
            forward_interval_seconds: 60,
        }),
        registrars: None,
    });
    ok(
        "install hub",
        ic.install(
            hub,
            ic_testkit::InstallMode::Install,
            wasm("confirmation"),
            candid::encode_one(hub_arg).expect("encode"),
            None,
        ),
    );
    let service_arg = Arg::Init(InitArgs {
        owner: owner(),
        hub,
        writers: vec![],
        kind: "ai-module".into(),
        name: "Service 1".into(),
        config: Some(ConfigUpdate {
            credit_records: Some(CREDIT_RECORDS),
            ..Default::default()
        }),
    });
    ok(
        "install service",
        ic.install(
            service,
            ic_testkit::InstallMode::Install,
            wasm("service"),
            candid::encode_one(service_arg).expect("encode"),
            None,
        ),
    );
    ic.run_until_idle();
    Net {
        ledger,
        restaking,
        hub,
        service,
    }
}

fn model(i: u8) -> RecordBody {
    RecordBody::ModelAttestation {
        model_id: format!("model-{i}"),
        version: "1".into(),
        weights_hash: Hash32([i; 32]),
        metadata: "{}".into(),
    }
}

fn status(ic: &dyn IcBackend, service: Principal) -> ServiceStatus {
    ok("get_status", ic.query(service, "get_status", ()))
}

fn rewards(ic: &dyn IcBackend, net: &Net) -> u128 {
    let view: Option<AvsView> = ok(
        "get_avs",
        ic.query(net.restaking, "get_avs", "confirmation".to_string()),
    );
    view.expect("AVS")
        .rewards_deposited
        .iter()
        .filter(|t| t.token == net.ledger)
        .map(|t| u128::try_from(&t.amount.0).expect("u128"))
        .sum()
}

#[test]
fn should_charge_records_keep_unpaid_ones_pending_and_forward_fees_to_restaking() {
    for ic in backends_for_test("fees") {
        let ic = ic.as_ref();
        let net = deploy(ic);

        // The service reads the hub's fee at install (its init arms the timer at once), before
        // any record: it does not wait for a refused submission to learn it.
        ic.advance_and_settle(Duration::from_secs(1));
        let s = status(ic, net.service);
        assert_eq!(
            (s.fees.fee_per_record, s.fees.ledger),
            (FEE_PER_RECORD, Some(net.ledger))
        );

        // The service's ledger account is empty: the hub refuses for lack of credit, the
        // top-up fails, the records stay pending with the reason.
        let views: Result<Vec<RecordView>, Refusal> = ok(
            "add_records",
            ic.update_as(
                net.service,
                Some(owner()),
                "add_records",
                vec![model(1), model(2)],
            ),
        );
        let views = views.expect("stored");
        for v in &views {
            match &v.status {
                RecordStatus::Pending {
                    last_error: Some(e),
                    ..
                } => assert!(e.contains("fee credit"), "{e}"),
                other => panic!("expected pending, got {other:?}"),
            }
        }
        let s = status(ic, net.service);
        assert_eq!(s.pending, 2);
        assert!(
            s.fees
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("fund")),
            "{:?}",
            s.fees
        );
        let account: FeeAccount = ok(
            "get_fee_account",
            ic.query(net.hub, "get_fee_account", Some(net.service)),
        );
        assert_eq!(
            (account.credit, account.fee_per_record),
            (0, FEE_PER_RECORD)
        );

        // Still unfunded: the timer retries, nothing moves, nothing is lost.
        ic.advance_and_settle(Duration::from_secs(10));
        assert_eq!(status(ic, net.service).pending, 2);

        // The owner funds the service's account; the timer tops up and submits.
        let funding = 50_000u128;
        let r: Result<Nat, TransferError> = ok(
            "fund",
            ic.update_as(
                net.ledger,
                Some(owner()),
                "icrc1_transfer",
                TransferArg {
                    from_subaccount: None,
                    to: net.service.into(),
                    fee: None,
                    created_at_time: None,
                    memo: None,
                    amount: Nat::from(funding),
                },
            ),
        );
        ok("transfer", r);
        let mut confirmed = false;
        for _ in 0..60 {
            ic.advance_and_settle(Duration::from_secs(2));
            let s = status(ic, net.service);
            if s.confirmed == 2 {
                confirmed = true;
                break;
            }
        }
        assert!(confirmed, "{:?}", status(ic, net.service));
        let target = FEE_PER_RECORD * u128::from(CREDIT_RECORDS);
        let s = status(ic, net.service);
        assert_eq!(s.fees.topped_up, target);
        assert_eq!(s.fees.hub_credit, target - 2 * FEE_PER_RECORD);
        assert_eq!(s.fees.last_error, None);

        // The collected fees reach restaking as rewards of the confirmation AVS.
        for _ in 0..5 {
            ic.advance_and_settle(Duration::from_secs(61));
        }
        let forwarded = 2 * FEE_PER_RECORD - 2 * LEDGER_FEE;
        assert_eq!(rewards(ic, &net), forwarded);
        let hub: HubStatus = ok("hub status", ic.query(net.hub, "get_status", ()));
        assert_eq!(hub.fees.forwarded, forwarded);
        assert_eq!(hub.fees.collected, 0);
        assert_eq!(hub.fees.forward, None);

        // Repeated forwarding calls send nothing twice.
        let out: String = ok("forward_fees", ic.update(net.hub, "forward_fees", ()));
        assert!(out.contains("below"), "{out}");
        assert_eq!(rewards(ic, &net), forwarded);

        // Balances are exact: the service paid the target plus two ledger fees (approval and
        // transfer); the hub holds the unspent credit; restaking got the rest.
        assert_eq!(
            balance(ic, net.ledger, net.service),
            funding - target - 2 * LEDGER_FEE
        );
        assert_eq!(
            balance(ic, net.ledger, net.hub),
            target - 2 * FEE_PER_RECORD
        );
        assert_eq!(hub.fees.credits, target - 2 * FEE_PER_RECORD);
    }
}
