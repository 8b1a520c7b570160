//! Restaking: two operators with the four confirmation nodes, the confirmation AVS and the DA
//! AVS, delegations of staked ckBTC and ckETH, allocations to both AVSs; then (after the
//! records are confirmed) one node equivocates and is slashed by proof, a DA slash is vetoed
//! and another executed after its veto window, and AVS rewards are claimed.
//!
//! After every step restaking's view of what it holds locked in staking is compared with
//! staking's own positions, and staking's accounting invariant is checked.

use super::ledgers::{Ledger, user};
use super::staking::{balance, invariant_checks, positions};
use super::{Check, Demo};
use crate::emu::{self, LOCAL_KEY_NAME};
use anyhow::{Context, Result, anyhow, bail};
use candid::{CandidType, Encode, Nat, Principal};
use ic_emulator::SubnetKind;
use ic_emulator::crypto::SchnorrAlgorithm;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use std::time::Duration;
use stratros_confirmation::{
    BatchHeader, Blob, EquivocationEvidence, Hash32, Scheme, SignedHeader, VETKD_CONTEXT,
    header_signing_digest,
};
use stratros_restaking_api::{
    Account, AllocateArgs, Arg, AssetWeight, AvsKind, AvsView, DelegateArgs, DepositRewardsArgs,
    EquivocationArgs, InitArgs, OperatorView, RegisterAvsArgs, RegisterNodeArgs,
    RegisterOperatorArgs, RequestSlashArgs, RestakingError, SlashStatus, StakerView, TokenAmount,
};

const DAY: Duration = Duration::from_secs(24 * 3600);
const ALLOCATION_DELAY: Duration = DAY;
const VETO_WINDOW: Duration = Duration::from_secs(2 * 24 * 3600);
/// The confirmation AVS slashes an equivocating operator by 10 % at once.
const EQUIVOCATION_BPS: u32 = 1_000;
/// The DA AVS's largest slash per incident.
const DA_MAX_BPS: u32 = 500;
pub const CONFIRMATION_AVS: &str = "confirmation";
pub const DA_AVS: &str = "data-availability";
/// AVS rewards deposited by the treasury, in ckBTC (0.005 ckBTC).
const TREASURY_REWARDS: u128 = 500_000;

pub fn operator(name: &str) -> Principal {
    Principal::self_authenticating(format!("stratros demo operator {name}"))
}
fn council() -> Principal {
    Principal::self_authenticating(b"stratros demo council")
}
fn da_committee() -> Principal {
    Principal::self_authenticating(b"stratros demo DA committee")
}
fn reporter() -> Principal {
    Principal::self_authenticating(b"stratros demo reporter")
}
/// The DA AVS's redistribution account: its slashed tokens go there (a fund that compensates
/// the users of withheld data), where the confirmation AVS's are burned.
pub fn da_fund() -> Principal {
    Principal::self_authenticating(b"stratros demo DA fund")
}

fn nat(n: u128) -> Nat {
    Nat::from(n)
}

fn to_u128(n: &Nat) -> Result<u128> {
    u128::try_from(n.0.clone()).map_err(|_| anyhow!("{n} does not fit u128"))
}

fn ledger(demo: &Demo, name: &str) -> Result<Ledger> {
    demo.ledgers
        .iter()
        .find(|l| l.name == name)
        .cloned()
        .with_context(|| format!("no {name}"))
}

fn restaking(demo: &Demo) -> Result<Principal> {
    demo.restaking.context("no restaking deployed")
}

/// A restaking update call whose `Err` is a `RestakingError`.
fn call<T: CandidType + for<'de> serde::Deserialize<'de>>(
    demo: &mut Demo,
    sender: Principal,
    method: &str,
    arg: impl candid::utils::ArgumentEncoder,
) -> Result<Result<T, RestakingError>> {
    let id = restaking(demo)?;
    let r = emu::update(&mut demo.emu, id, sender, method, arg)?;
    demo.emu.run_until_idle();
    Ok(r)
}

fn ok<T>(what: &str, r: Result<T, RestakingError>) -> Result<T> {
    r.map_err(|e| anyhow!("{what}: {e:?}"))
}

fn query<T: CandidType + for<'de> serde::Deserialize<'de>>(
    demo: &mut Demo,
    method: &str,
    arg: impl candid::utils::ArgumentEncoder,
) -> Result<T> {
    let id = restaking(demo)?;
    let (r,): (T,) = emu::query(&mut demo.emu, id, method, arg)?;
    Ok(r)
}

fn avs(demo: &mut Demo, id: &str) -> Result<AvsView> {
    let v: Option<AvsView> = query(demo, "get_avs", (id.to_string(),))?;
    v.with_context(|| format!("no AVS {id}"))
}

fn operator_view(demo: &mut Demo, op: Principal) -> Result<OperatorView> {
    let v: Option<OperatorView> = query(demo, "get_operator", (op,))?;
    v.with_context(|| format!("no operator {op}"))
}

fn staker(demo: &mut Demo, who: Principal) -> Result<StakerView> {
    query(demo, "get_staker", (who,))
}

fn amount_of(list: &[TokenAmount], token: Principal) -> Result<u128> {
    list.iter()
        .filter(|t| t.token == token)
        .map(|t| to_u128(&t.amount))
        .sum()
}

/// Restaking's locked per owner and asset equals staking's `locked`, for both users.
fn in_step(demo: &mut Demo, when: &str) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let ledgers = [ledger(demo, "ckbtc_ledger")?, ledger(demo, "cketh_ledger")?];
    for name in ["alice", "bob"] {
        let who = user(name);
        let staked = positions(demo, who)?;
        for l in &ledgers {
            let r: Nat = query(demo, "locked_in_staking", (who, l.id))?;
            let s = staked
                .iter()
                .find(|p| p.ledger == l.id)
                .map_or(Nat::from(0u8), |p| p.locked.clone());
            checks.push(Check::eq(
                format!("{when}: {name}'s {} locked, restaking = staking", l.symbol),
                r,
                s,
            ));
        }
    }
    checks.extend(invariant_checks(demo, when)?);
    Ok(checks)
}

/// Deploys restaking, names it in staking, registers operators, their nodes and the two AVSs;
/// the users delegate and the operators allocate.
pub fn run(demo: &mut Demo) -> Result<Vec<Check>> {
    let staking = demo.staking.context("no staking")?;
    let btc = ledger(demo, "ckbtc_ledger")?;
    let eth = ledger(demo, "cketh_ledger")?;
    let mut checks = Vec::new();

    let subnet = demo.emu.subnet_of_kind(SubnetKind::Fiduciary);
    let arg = Arg::Init(InitArgs {
        staking,
        withdrawal_delay_seconds: Some(7 * DAY.as_secs()),
        allocation_delay_seconds: Some(ALLOCATION_DELAY.as_secs()),
        deallocation_delay_seconds: Some(3 * DAY.as_secs()),
        commission_delay_seconds: Some(7 * DAY.as_secs()),
    });
    let id = demo.deploy("restaking", "restaking", subnet, Encode!(&arg)?)?;
    demo.restaking = Some(id);
    // Staking's hooks answer only the restaking canister it names.
    let wasm = demo.wasm.read("staking")?;
    let arg = stratros_staking_api::Arg::Upgrade(Some(stratros_staking_api::UpgradeArgs {
        restaking: Some(id),
        ..Default::default()
    }));
    demo.emu
        .upgrade_canister(staking, &wasm, Encode!(&Some(arg))?, None)
        .map_err(|e| anyhow!("upgrade staking to name restaking: {e:?}"))?;
    demo.emu.run_until_idle();

    // Two operators; alpha runs the secp256k1 nodes, beta the Ed25519 and BLS ones.
    for (name, commission) in [("alpha", 1_000u32), ("beta", 500)] {
        let r: Result<(), _> = call(
            demo,
            operator(name),
            "register_operator",
            (RegisterOperatorArgs {
                name: format!("operator {name}"),
                metadata: format!("https://{name}.example/operator.json"),
                commission_bps: commission,
            },),
        )?;
        ok("register_operator", r)?;
    }
    for n in demo.nodes.clone() {
        let owner = node_operator(n.scheme);
        let info = emu::node_info(&mut demo.emu, n.node)?;
        let public_key = info.public_key.context("node without a public key")?;
        let r: Result<(), _> = call(
            demo,
            operator(owner),
            "register_node",
            (RegisterNodeArgs {
                node: n.node,
                scheme: n.scheme,
                key_name: n.key_name.clone(),
                public_key: Blob(public_key.as_slice().to_vec()),
            },),
        )?;
        ok("register_node", r)?;
    }
    let alpha = operator_view(demo, operator("alpha"))?;
    let beta = operator_view(demo, operator("beta"))?;
    checks.push(Check::eq(
        "operators alpha and beta registered with two nodes each",
        (alpha.nodes.len(), beta.nodes.len()),
        (2, 2),
    ));

    for (id, name, kind, slashers, max_bps) in [
        (
            CONFIRMATION_AVS,
            "Stratros confirmation layer",
            AvsKind::Confirmation,
            vec![],
            EQUIVOCATION_BPS,
        ),
        (
            DA_AVS,
            "Stratros data availability layer",
            AvsKind::DataAvailability,
            vec![da_committee()],
            DA_MAX_BPS,
        ),
    ] {
        let redistribution_account = (id == DA_AVS).then(|| Account {
            owner: da_fund(),
            subaccount: None,
        });
        let r: Result<(), _> = call(
            demo,
            emu::controller(),
            "register_avs",
            (RegisterAvsArgs {
                id: id.into(),
                name: name.into(),
                kind,
                slashers,
                asset_weights: vec![
                    AssetWeight {
                        ledger: btc.id,
                        weight_bps: 10_000,
                    },
                    AssetWeight {
                        ledger: eth.id,
                        weight_bps: 10_000,
                    },
                ],
                max_slash_bps: max_bps,
                veto_window_seconds: VETO_WINDOW.as_secs(),
                resolvers: vec![council()],
                reward_tokens: vec![btc.id],
                redistribution_account,
            },),
        )?;
        ok("register_avs", r)?;
    }
    let unknown: Result<(), _> = call(
        demo,
        user("alice"),
        "register_avs",
        (RegisterAvsArgs {
            id: "rogue".into(),
            name: "not a controller".into(),
            kind: AvsKind::Other,
            slashers: vec![],
            asset_weights: vec![],
            max_slash_bps: 0,
            veto_window_seconds: 0,
            resolvers: vec![],
            reward_tokens: vec![],
            redistribution_account: None,
        },),
    )?;
    checks.push(Check::new(
        "only a controller registers an AVS",
        unknown.is_err(),
        format!("{:?}", unknown.err()),
    ));

    // Delegations: Alice to both operators in both assets, Bob to beta in ckBTC.
    let delegations: [(&str, &str, &Ledger, u128); 4] = [
        ("alice", "alpha", &btc, 20_000_000),
        ("alice", "beta", &btc, 10_000_000),
        ("alice", "alpha", &eth, 10_000_000_000_000_000_000),
        ("bob", "beta", &btc, 10_000_000),
    ];
    for (who, op, l, amount) in delegations {
        let r: Result<u64, _> = call(
            demo,
            user(who),
            "delegate",
            (DelegateArgs {
                operator: operator(op),
                ledger: l.id,
                amount: nat(amount),
            },),
        )?;
        ok("delegate", r)?;
    }
    let too_much: Result<u64, _> = call(
        demo,
        user("bob"),
        "delegate",
        (DelegateArgs {
            operator: operator("alpha"),
            ledger: btc.id,
            amount: nat(10_000_000_000),
        },),
    )?;
    checks.push(Check::new(
        "delegating more than is staked is refused by staking, nothing delegated",
        matches!(too_much, Err(RestakingError::StakingRejected(_))),
        format!("{too_much:?}"),
    ));
    let alice = staker(demo, user("alice"))?;
    checks.push(Check::eq(
        "alice's delegations: ckBTC to alpha and beta, ckETH to alpha",
        alice.delegations.len(),
        3,
    ));
    checks.extend(in_step(demo, "after delegation")?);

    // Allocations: alpha 60 % of both assets to confirmation and 30 % of ckBTC to DA; beta
    // half of its ckBTC to each AVS. They take effect after the allocation delay.
    for (op, avs_id, l, bps) in [
        ("alpha", CONFIRMATION_AVS, &btc, 6_000u32),
        ("alpha", CONFIRMATION_AVS, &eth, 6_000),
        ("alpha", DA_AVS, &btc, 3_000),
        ("beta", CONFIRMATION_AVS, &btc, 5_000),
        ("beta", DA_AVS, &btc, 5_000),
    ] {
        let r: Result<(), _> = call(
            demo,
            operator(op),
            "allocate",
            (AllocateArgs {
                avs: avs_id.into(),
                ledger: l.id,
                bps,
            },),
        )?;
        ok("allocate", r)?;
    }
    let over: Result<(), _> = call(
        demo,
        operator("beta"),
        "allocate",
        (AllocateArgs {
            avs: CONFIRMATION_AVS.into(),
            ledger: btc.id,
            bps: 6_000,
        },),
    )?;
    checks.push(Check::new(
        "an allocation above 100 % of an asset is refused (unique stake)",
        over.is_err(),
        format!("{:?}", over.err()),
    ));
    demo.emu
        .advance_time(ALLOCATION_DELAY + Duration::from_secs(1));
    demo.emu.run_until_idle();
    // ckBTC delegated: alpha 0.2, beta 0.2; ckETH: alpha 10.
    let conf = avs(demo, CONFIRMATION_AVS)?;
    let da = avs(demo, DA_AVS)?;
    checks.push(Check::eq(
        "confirmation AVS secured by 60 % of alpha's and 50 % of beta's ckBTC, 60 % of alpha's ckETH",
        (
            amount_of(&conf.allocated, btc.id)?,
            amount_of(&conf.allocated, eth.id)?,
        ),
        (12_000_000 + 10_000_000, 6_000_000_000_000_000_000),
    ));
    checks.push(Check::eq(
        "DA AVS secured by 30 % of alpha's and 50 % of beta's ckBTC",
        amount_of(&da.allocated, btc.id)?,
        6_000_000 + 10_000_000,
    ));
    checks.extend(in_step(demo, "after allocation")?);
    Ok(checks)
}

/// The operator that runs the demo's node of `scheme`.
fn node_operator(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::EcdsaSecp256k1 | Scheme::SchnorrBip340 => "alpha",
        Scheme::SchnorrEd25519 | Scheme::Bls12_381 => "beta",
    }
}

/// Signs `header` with the key the emulator's subnet derives for `node`: what a node canister
/// whose code was replaced would produce (the real node refuses a second header per height).
fn sign_as(demo: &Demo, scheme: Scheme, node: Principal, header: &BatchHeader) -> Result<Vec<u8>> {
    let digest = header_signing_digest(scheme, &node, header);
    let keys = demo.emu.keys();
    let id = node.as_slice();
    let aux = [7u8; 32];
    let sig = match scheme {
        Scheme::EcdsaSecp256k1 => keys.sign_with_ecdsa(LOCAL_KEY_NAME, id, &[], &digest.0),
        Scheme::SchnorrBip340 => keys.sign_with_schnorr(
            SchnorrAlgorithm::Bip340Secp256k1,
            LOCAL_KEY_NAME,
            id,
            &[],
            &digest.0,
            None,
            aux,
        ),
        Scheme::SchnorrEd25519 => keys.sign_with_schnorr(
            SchnorrAlgorithm::Ed25519,
            LOCAL_KEY_NAME,
            id,
            &[],
            &digest.0,
            None,
            aux,
        ),
        Scheme::Bls12_381 => {
            let mut transport = [0u8; 48];
            transport[0] = 0xc0; // the identity point: E3 is the plain BLS signature
            keys.vetkd_derive_key(
                LOCAL_KEY_NAME,
                id,
                VETKD_CONTEXT,
                &digest.0,
                &transport,
                aux,
            )
            .map(|k| k[144..192].to_vec())
        }
    };
    sig.map_err(|e| anyhow!("sign as {node}: {e:?}"))
}

fn delegated(view: &StakerView, op: Principal, token: Principal) -> Result<u128> {
    view.delegations
        .iter()
        .filter(|d| d.operator == op && d.ledger == token)
        .map(|d| to_u128(&d.amount))
        .sum()
}

fn staked(demo: &mut Demo, who: Principal, token: Principal) -> Result<u128> {
    positions(demo, who)?
        .iter()
        .filter(|p| p.ledger == token)
        .map(|p| to_u128(&p.staked))
        .sum()
}

fn settle(demo: &mut Demo) -> Result<()> {
    let id = restaking(demo)?;
    emu::update::<()>(&mut demo.emu, id, Principal::anonymous(), "process", ())?;
    demo.emu.run_until_idle();
    // Staking's reconciliation timer sends the slashed tokens away.
    demo.emu.advance_time(Duration::from_secs(61));
    demo.emu.run_until_idle();
    Ok(())
}

/// The ECDSA node of operator alpha signs a second header for a height it already confirmed:
/// anyone proves it and alpha's delegators lose 10 % of what alpha allocated to the
/// confirmation AVS; a DA slash is vetoed, another executed after its veto window; AVS rewards
/// are deposited and claimed by delegators and operators.
pub fn slashing_and_rewards(demo: &mut Demo) -> Result<Vec<Check>> {
    let hub = demo.hub.context("no hub")?;
    let btc = ledger(demo, "ckbtc_ledger")?;
    let eth = ledger(demo, "cketh_ledger")?;
    let mut checks = Vec::new();
    let alpha = operator("alpha");
    let beta = operator("beta");
    let alice = user("alice");

    // The first signature: the ECDSA node's real one over batch 0, from the hub.
    let node = demo
        .nodes
        .iter()
        .find(|n| n.scheme == Scheme::EcdsaSecp256k1)
        .cloned()
        .context("no ECDSA node")?;
    let batch = emu::get_batch(&mut demo.emu, hub, 0)?.map_err(|e| anyhow!("batch 0: {e:?}"))?;
    let confirmation = batch
        .nodes
        .iter()
        .find(|p| p.node == node.node)
        .and_then(|p| p.confirmation.clone())
        .context("batch 0 has no ECDSA signature")?;
    let first = batch.header.clone();
    let mut second = first.clone();
    second.merkle_root = Hash32([0x5a; 32]);
    let evidence = EquivocationEvidence {
        node: node.node,
        scheme: node.scheme,
        key_name: node.key_name.clone(),
        first: SignedHeader {
            header: first,
            signature: confirmation.signature.clone(),
        },
        second: SignedHeader {
            signature: Blob(sign_as(demo, node.scheme, node.node, &second)?),
            header: second,
        },
    };
    let mut forged = evidence.clone();
    forged.second.header.leaf_count += 1;
    let r: Result<u64, _> = call(
        demo,
        reporter(),
        "slash_equivocation",
        (EquivocationArgs {
            operator: alpha,
            evidence: forged,
        },),
    )?;
    checks.push(Check::new(
        "a forged equivocation proof is refused",
        matches!(r, Err(RestakingError::InvalidEvidence(_))),
        format!("{r:?}"),
    ));
    let r: Result<u64, _> = call(
        demo,
        reporter(),
        "slash_equivocation",
        (EquivocationArgs {
            operator: beta,
            evidence: evidence.clone(),
        },),
    )?;
    checks.push(Check::new(
        "a proof against an operator that does not run the node is refused",
        r.is_err(),
        format!("{r:?}"),
    ));

    let before_alice = staker(demo, alice)?;
    let before_staked = staked(demo, alice, btc.id)?;
    let before_eth_staked = staked(demo, alice, eth.id)?;
    let before_supply = total_supply(demo, btc.id)?;
    let r: Result<u64, _> = call(
        demo,
        reporter(),
        "slash_equivocation",
        (EquivocationArgs {
            operator: alpha,
            evidence: evidence.clone(),
        },),
    )?;
    let slash_id = ok("slash_equivocation", r)?;
    let again: Result<u64, _> = call(
        demo,
        reporter(),
        "slash_equivocation",
        (EquivocationArgs {
            operator: alpha,
            evidence,
        },),
    )?;
    checks.push(Check::eq(
        "the same proof is used once",
        again,
        Err(RestakingError::EvidenceAlreadyUsed),
    ));
    settle(demo)?;
    // Alice has 0.2 ckBTC and 10 ckETH with alpha, 60 % of both allocated to confirmation:
    // 10 % of that is slashed (rounded up, in the protocol's favour).
    let after_alice = staker(demo, alice)?;
    let btc_loss =
        delegated(&before_alice, alpha, btc.id)? - delegated(&after_alice, alpha, btc.id)?;
    let eth_loss =
        delegated(&before_alice, alpha, eth.id)? - delegated(&after_alice, alpha, eth.id)?;
    checks.push(Check::new(
        "alpha's delegators lose 10 % of the allocated stake (0.012 ckBTC and 0.6 ckETH of alice's)",
        (1_200_000..=1_200_001).contains(&btc_loss)
            && (600_000_000_000_000_000..=600_000_000_000_000_001).contains(&eth_loss),
        format!("ckBTC {btc_loss}, ckETH {eth_loss}"),
    ));
    checks.push(Check::eq(
        "beta's delegators are untouched",
        delegated(&after_alice, beta, btc.id)?,
        delegated(&before_alice, beta, btc.id)?,
    ));
    checks.push(Check::eq(
        "staking's positions drop by exactly the slashed amounts",
        (
            before_staked - staked(demo, alice, btc.id)?,
            before_eth_staked - staked(demo, alice, eth.id)?,
        ),
        (btc_loss, eth_loss),
    ));
    let burnt = before_supply - total_supply(demo, btc.id)?;
    checks.push(Check::new(
        "the slashed ckBTC is burned (sent to the minting account) by staking",
        burnt >= btc_loss && burnt <= btc_loss + 10,
        format!("supply down by {burnt} for a slash of {btc_loss}"),
    ));
    let slash = operator_view(demo, alpha)?
        .slashes
        .into_iter()
        .find(|s| s.id == slash_id)
        .context("slash not recorded")?;
    checks.push(Check::new(
        "the slash is recorded as objective and executed",
        slash.objective && slash.status == SlashStatus::Executed,
        format!("{:?}, {} bps, {}", slash.status, slash.bps, slash.reason),
    ));
    checks.extend(in_step(demo, "after the equivocation slash")?);

    // Subjective slashes on the DA AVS: one vetoed by the council, one executed.
    let request = |bps: u32, reason: &str| RequestSlashArgs {
        avs: DA_AVS.into(),
        operator: beta,
        bps,
        reason: reason.into(),
    };
    let r: Result<u64, _> = call(
        demo,
        alice,
        "request_slash",
        (request(100, "not a slasher"),),
    )?;
    checks.push(Check::new(
        "only the AVS's slashers request a slash",
        r.is_err(),
        format!("{r:?}"),
    ));
    let r: Result<u64, _> = call(
        demo,
        da_committee(),
        "request_slash",
        (request(DA_MAX_BPS + 1, "too much"),),
    )?;
    checks.push(Check::new(
        "a slash above the AVS's largest fraction is refused",
        r.is_err(),
        format!("{r:?}"),
    ));
    let r: Result<u64, _> = call(
        demo,
        da_committee(),
        "request_slash",
        (request(300, "blob withheld (disputed)"),),
    )?;
    let vetoed = ok("request_slash", r)?;
    let r: Result<(), _> = call(demo, council(), "veto_slash", (vetoed,))?;
    ok("veto_slash", r)?;
    let r: Result<u64, _> = call(
        demo,
        da_committee(),
        "request_slash",
        (request(200, "blob withheld at height 7"),),
    )?;
    let executed = ok("request_slash", r)?;
    let early: Result<(), _> = call(demo, reporter(), "execute_slash", (executed,))?;
    checks.push(Check::new(
        "a subjective slash cannot execute inside its veto window",
        early.is_err(),
        format!("{early:?}"),
    ));
    let bob = user("bob");
    let bob_before = staker(demo, bob)?;
    demo.emu.advance_time(VETO_WINDOW + Duration::from_secs(1));
    demo.emu.run_until_idle();
    // Restaking's timer executes a slash whose veto window ended; anyone may also ask.
    let r: Result<(), _> = call(demo, reporter(), "execute_slash", (executed,))?;
    if !matches!(r, Ok(()) | Err(RestakingError::SlashNotPending { .. })) {
        ok("execute_slash", r)?;
    }
    settle(demo)?;
    let bob_after = staker(demo, bob)?;
    // Bob has 0.1 ckBTC with beta, half of it allocated to DA: 2 % of 0.05.
    let loss = delegated(&bob_before, beta, btc.id)? - delegated(&bob_after, beta, btc.id)?;
    checks.push(Check::new(
        "after the veto window the DA slash executes: bob loses 2 % of beta's DA allocation",
        (100_000..=100_001).contains(&loss),
        format!("{loss} of 0.1 ckBTC"),
    ));
    let statuses: Vec<SlashStatus> = operator_view(demo, beta)?
        .slashes
        .iter()
        .map(|s| s.status.clone())
        .collect();
    checks.push(Check::eq(
        "beta's slashes: one vetoed, one executed",
        statuses,
        vec![SlashStatus::Vetoed, SlashStatus::Executed],
    ));
    // The DA AVS redistributes: staking sent its part of the settled losses, less the
    // ledger fee, to its fund (the confirmation AVS's part was burned).
    let da = avs(demo, DA_AVS)?;
    let redistributed = da
        .slashed_tokens
        .iter()
        .find(|t| t.token == btc.id)
        .map(|t| to_u128(&t.amount))
        .transpose()?
        .unwrap_or(0);
    let fund = balance(demo, btc.id, da_fund())?;
    checks.push(Check::new(
        "the DA slash went to the DA AVS's redistribution account (less the ledger fee)",
        redistributed >= loss && fund + to_u128(&btc.fee)? == redistributed,
        format!("attributed {redistributed}, fund holds {fund}"),
    ));
    checks.extend(in_step(demo, "after the DA slash")?);

    checks.extend(rewards(demo, &btc)?);

    // The ledgers' expected state from now on (checked again after their upgrade): every
    // holder, now that slashes burned tokens and rewards reached operators.
    let mut holders = vec![
        user("alice"),
        user("bob"),
        demo.staking.context("no staking")?,
        restaking(demo)?,
        alpha,
        beta,
        da_fund(),
    ];
    holders.extend(demo.fee_holders());
    for l in [btc, eth] {
        let mut balances = Vec::new();
        for owner in holders.iter().copied() {
            balances.push((
                icrc_ledger_types::icrc1::account::Account::from(owner),
                nat(balance(demo, l.id, owner)?),
            ));
        }
        if let Some(entry) = demo.ledgers.iter_mut().find(|x| x.id == l.id) {
            entry.balances = balances;
        }
    }
    Ok(checks)
}

/// The treasury deposits confirmation-AVS rewards in ckBTC; delegators and operators claim.
fn rewards(demo: &mut Demo, btc: &Ledger) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let id = restaking(demo)?;
    let fee = to_u128(&btc.fee)?;
    let treasury = user("alice");
    let approve = ApproveArgs {
        from_subaccount: None,
        spender: id.into(),
        amount: nat(TREASURY_REWARDS + fee),
        expected_allowance: None,
        expires_at: None,
        fee: None,
        memo: None,
        created_at_time: None,
    };
    let r: Result<Nat, ApproveError> =
        emu::update(&mut demo.emu, btc.id, treasury, "icrc2_approve", (approve,))?;
    r.map_err(|e| anyhow!("approve: {e:?}"))?;
    let r: Result<(), _> = call(
        demo,
        treasury,
        "deposit_rewards",
        (DepositRewardsArgs {
            avs: CONFIRMATION_AVS.into(),
            token: btc.id,
            amount: nat(TREASURY_REWARDS),
            period_seconds: None,
            created_at_time: None,
            memo: None,
        },),
    )?;
    ok("deposit_rewards", r)?;
    let conf = avs(demo, CONFIRMATION_AVS)?;
    // Deposited: the services' fees the hub forwarded, and the treasury's deposit.
    let total = TREASURY_REWARDS + demo.fees_forwarded;
    checks.push(Check::eq(
        "the confirmation AVS's rewards deposited: the services' fees (forwarded by the hub) and the treasury's",
        amount_of(&conf.rewards_deposited, btc.id)?,
        total,
    ));
    // Rewards may stream over a period: let it pass.
    demo.emu.advance_time(30 * DAY);
    demo.emu.run_until_idle();
    let mut paid = 0u128;
    for (name, who) in [
        ("alice", user("alice")),
        ("bob", user("bob")),
        ("operator alpha", operator("alpha")),
        ("operator beta", operator("beta")),
    ] {
        let pending = amount_of(&staker(demo, who)?.pending_rewards, btc.id)?;
        let before = balance(demo, btc.id, who)?;
        let r: Result<Vec<TokenAmount>, _> =
            call(demo, who, "claim_rewards", (None::<Principal>,))?;
        let claimed = match r {
            Ok(paid) => amount_of(&paid, btc.id)?,
            // The AVS weighs stake in raw token units, so 6 ckETH (6e18) outweighs any ckBTC
            // allocation: beta and its delegators earn nothing here, and are told so.
            Err(e) => {
                checks.push(Check::new(
                    format!("{name} has nothing pending and is told so"),
                    pending == 0 && e == RestakingError::NothingToClaim,
                    format!("pending {pending}: {e:?}"),
                ));
                continue;
            }
        };
        let after = balance(demo, btc.id, who)?;
        paid += claimed;
        checks.push(Check::new(
            format!("{name} claims its confirmation-AVS rewards"),
            claimed > 0 && after + fee >= before + claimed && after <= before + claimed,
            format!(
                "pending {pending}, claimed {claimed}, received {}",
                after.saturating_sub(before)
            ),
        ));
    }
    checks.push(Check::new(
        "the rewards paid out are the deposits (fee-funded included), up to rounding dust kept by the protocol",
        paid <= total && paid + 100 >= total,
        format!(
            "{paid} of {total} ({} from the services' fees)",
            demo.fees_forwarded
        ),
    ));
    bail_if_pending(demo)?;
    Ok(checks)
}

fn bail_if_pending(demo: &mut Demo) -> Result<()> {
    let ops: Vec<stratros_restaking_api::PendingOpView> = query(demo, "pending_ops", ())?;
    if !ops.is_empty() {
        bail!(
            "restaking still has {} pending staking operations",
            ops.len()
        );
    }
    Ok(())
}

fn total_supply(demo: &mut Demo, ledger: Principal) -> Result<u128> {
    let (s,): (Nat,) = emu::query(&mut demo.emu, ledger, "icrc1_total_supply", ())?;
    to_u128(&s)
}
