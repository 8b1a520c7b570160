//! Restaking's costs (issue 5): the real `restaking`, `staking`, `icrc_ledger` and
//! `confirmation_node` Wasm on the emulator. Each figure is restaking's own instructions for
//! the call (the update and the callbacks of the calls it makes; timer executions excluded).

use super::{Context, Measurement};
use crate::emu;
use crate::types::{LedgerArg, LedgerInitArgs, SignResponse};
use anyhow::{Context as _, Result, anyhow, bail};
use candid::{CandidType, Encode, Nat, Principal};
use ic_emulator::crypto::SchnorrAlgorithm;
use ic_emulator::{Emulator, SubnetKind};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use std::time::{Duration, Instant};
use stratros_confirmation::{
    BatchHeader, Blob, EquivocationEvidence, Hash32, Scheme, SignedHeader, VETKD_CONTEXT,
    header_signing_digest,
};
use stratros_restaking_api::{
    AllocateArgs, Arg, AssetWeight, AvsKind, DelegateArgs, DepositRewardsArgs, EquivocationArgs,
    InitArgs, RegisterAvsArgs, RegisterNodeArgs, RegisterOperatorArgs, RequestSlashArgs,
    RestakingError, TokenAmount,
};
use stratros_staking_api::{
    Arg as StakingArg, AssetArg, InitArgs as StakingInit, PositionView, StakeArgs, StakeError,
};

/// The README's budget for a restaking operation (delegate, allocate, claim, a slash): under
/// 3 M instructions each. Issue 5 gives no number for them.
pub const OPERATION_TARGET: u64 = 3_000_000;
/// Issue 5: verifying an equivocation proof "must fit the 40 B update limit with a wide
/// margin": a tenth of it.
pub const PROOF_TARGET: u64 = 4_000_000_000;
/// Issue 5: the slash "must be flat" in the number of delegators: the large slash may cost at
/// most this many tenths of the 10-delegator one.
pub const FLAT_TENTHS: u64 = 15;
/// The delegators of the large slash, unless `STRATROS_BENCH_DELEGATORS` says otherwise.
pub const DEFAULT_LARGE: u64 = 1_000;
const SMALL: u64 = 10;
const FEE: u128 = 2_000_000_000_000;
const E18: u128 = 1_000_000_000_000_000_000;
const AVS: &str = "confirmation";

fn user(i: u64) -> Principal {
    Principal::self_authenticating(format!("stratros bench restaker {i}"))
}
fn operator() -> Principal {
    Principal::self_authenticating(b"stratros bench operator")
}
fn funder() -> Principal {
    Principal::self_authenticating(b"stratros bench AVS treasury")
}
fn reporter() -> Principal {
    Principal::self_authenticating(b"stratros bench reporter")
}
fn hub() -> Principal {
    Principal::self_authenticating(b"stratros bench hub")
}

/// Restaking's instructions since `mark`, timer executions excluded.
fn restaking_since(emu: &Emulator, restaking: Principal, mark: usize) -> u64 {
    emu.executions()[mark..]
        .iter()
        .filter(|e| e.canister == restaking && !e.entry.contains("timer"))
        .map(|e| e.instructions)
        .sum()
}

struct Net {
    emu: Emulator,
    ledger: Principal,
    restaking: Principal,
}

impl Net {
    /// An update to restaking whose `Err` is a `RestakingError`, and restaking's instructions.
    fn call<T: CandidType + for<'de> serde::Deserialize<'de>>(
        &mut self,
        sender: Principal,
        method: &str,
        arg: impl candid::utils::ArgumentEncoder,
    ) -> Result<(T, u64)> {
        let mark = self.emu.executions().len();
        let r: Result<T, RestakingError> =
            emu::update(&mut self.emu, self.restaking, sender, method, arg)?;
        let cost = restaking_since(&self.emu, self.restaking, mark);
        self.emu.run_until_idle();
        Ok((r.map_err(|e| anyhow!("{method}: {e:?}"))?, cost))
    }

    fn approve(&mut self, from: Principal, spender: Principal, amount: u128) -> Result<()> {
        let arg = ApproveArgs {
            from_subaccount: None,
            spender: spender.into(),
            amount: Nat::from(amount),
            expected_allowance: None,
            expires_at: None,
            fee: None,
            memo: None,
            created_at_time: None,
        };
        let r: Result<Nat, ApproveError> =
            emu::update(&mut self.emu, self.ledger, from, "icrc2_approve", (arg,))?;
        r.map(|_| ()).map_err(|e| anyhow!("approve: {e:?}"))
    }
}

/// Ledger, staking and restaking; one operator with the confirmation AVS (slashable by the
/// treasury, no veto window); `delegators` users stake 10 tokens each and delegate them all;
/// the operator allocates everything. Returns the net and the most expensive `delegate`.
fn setup(ctx: &Context, delegators: u64) -> Result<(Net, u64, u64)> {
    let mut emu = Emulator::new();
    let subnet = emu.subnet_of_kind(SubnetKind::Fiduciary);
    let ledger_arg = LedgerArg::Init(LedgerInitArgs {
        token_name: "ckETH".into(),
        token_symbol: "ckETH".into(),
        decimals: 18,
        transfer_fee: Nat::from(FEE),
        minting_account: Account::from(Principal::self_authenticating(b"stratros bench minter")),
        initial_balances: (0..delegators)
            .map(user)
            .chain([funder()])
            .map(|p| (Account::from(p), Nat::from(1_000 * E18)))
            .collect(),
        max_memo_length: Some(32),
    });
    let ledger = emu::install(
        &mut emu,
        subnet,
        &ctx.wasm.read("icrc_ledger")?,
        Encode!(&ledger_arg)?,
    )?;
    // Staking names restaking at init: create restaking's canister first.
    let restaking = emu
        .create_canister_on_subnet(
            subnet,
            vec![Principal::anonymous()],
            ic_emulator::DEFAULT_CANISTER_CYCLES,
        )
        .map_err(|e| anyhow!("create restaking: {e:?}"))?;
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
    let staking = emu::install(
        &mut emu,
        subnet,
        &ctx.wasm.read("staking")?,
        Encode!(&staking_arg)?,
    )?;
    let arg = Arg::Init(InitArgs {
        staking,
        withdrawal_delay_seconds: None,
        allocation_delay_seconds: None,
        deallocation_delay_seconds: None,
        commission_delay_seconds: None,
    });
    emu.install_canister(
        restaking,
        &ctx.wasm.read("restaking")?,
        Encode!(&arg)?,
        None,
    )
    .map_err(|e| anyhow!("install restaking: {e:?}"))?;
    emu.run_until_idle();
    let mut net = Net {
        emu,
        ledger,
        restaking,
    };
    let ((), _) = net.call(
        operator(),
        "register_operator",
        (RegisterOperatorArgs {
            name: "bench operator".into(),
            metadata: String::new(),
            commission_bps: 1_000,
        },),
    )?;
    let ((), _) = net.call(
        Principal::anonymous(),
        "register_avs",
        (RegisterAvsArgs {
            id: AVS.into(),
            name: "Stratros confirmation layer".into(),
            kind: AvsKind::Confirmation,
            slashers: vec![funder()],
            asset_weights: vec![AssetWeight {
                ledger,
                weight_bps: 10_000,
            }],
            max_slash_bps: 1_000,
            veto_window_seconds: 0,
            resolvers: vec![],
            reward_tokens: vec![ledger],
            redistribution_account: None,
        },),
    )?;
    let amount = 10 * E18;
    let mut delegate = 0;
    for i in 0..delegators {
        let who = user(i);
        net.approve(who, staking, amount + FEE)?;
        let r: Result<PositionView, StakeError> = emu::update(
            &mut net.emu,
            staking,
            who,
            "stake",
            (StakeArgs {
                ledger,
                amount: Nat::from(amount),
                lock_seconds: None,
            },),
        )?;
        r.map_err(|e| anyhow!("stake: {e:?}"))?;
        let (_, cost): (u64, u64) = net.call(
            who,
            "delegate",
            (DelegateArgs {
                operator: operator(),
                ledger,
                amount: Nat::from(amount),
            },),
        )?;
        delegate = delegate.max(cost);
    }
    let ((), allocate) = net.call(
        operator(),
        "allocate",
        (AllocateArgs {
            avs: AVS.into(),
            ledger,
            bps: 10_000,
        },),
    )?;
    net.emu.advance_time(Duration::from_secs(24 * 3600));
    net.emu.run_until_idle();
    Ok((net, delegate, allocate))
}

/// A subjective slash of 10 % requested by the AVS's slasher and executed at once (no veto
/// window): restaking's instructions for `execute_slash`.
fn execute_slash(net: &mut Net) -> Result<u64> {
    let (id, _): (u64, u64) = net.call(
        funder(),
        "request_slash",
        (RequestSlashArgs {
            avs: AVS.into(),
            operator: operator(),
            bps: 1_000,
            reason: "bench".into(),
        },),
    )?;
    let mark = net.emu.executions().len();
    let r: Result<(), RestakingError> = emu::update(
        &mut net.emu,
        net.restaking,
        reporter(),
        "execute_slash",
        (id,),
    )?;
    let cost = restaking_since(&net.emu, net.restaking, mark);
    match r {
        // The timer may have executed it already (no veto window).
        Ok(()) => Ok(cost),
        Err(RestakingError::SlashNotPending { .. }) => {
            bail!("the slash was executed by the timer before execute_slash could be measured")
        }
        Err(e) => bail!("execute_slash: {e:?}"),
    }
}

fn header(height: u64, root: u8) -> BatchHeader {
    BatchHeader {
        hub: hub(),
        height,
        prev_header_hash: Hash32::ZERO,
        merkle_root: Hash32([root; 32]),
        leaf_count: 1,
        first_record_id: height,
        last_record_id: height,
        start_time_nanos: 1,
        end_time_nanos: 2,
        quorum_policy_hash: Hash32([3; 32]),
    }
}

/// Signs `header` with the key the emulator's subnet derives for `node`: the second signature
/// of an equivocation (the real node refuses a second header for a height).
fn sign_as(
    emu: &Emulator,
    scheme: Scheme,
    node: Principal,
    header: &BatchHeader,
) -> Result<Vec<u8>> {
    let digest = header_signing_digest(scheme, &node, header);
    let keys = emu.keys();
    let id = node.as_slice();
    let key = emu::LOCAL_KEY_NAME;
    let sig = match scheme {
        Scheme::EcdsaSecp256k1 => keys.sign_with_ecdsa(key, id, &[], &digest.0),
        Scheme::SchnorrBip340 => keys.sign_with_schnorr(
            SchnorrAlgorithm::Bip340Secp256k1,
            key,
            id,
            &[],
            &digest.0,
            None,
            [7; 32],
        ),
        Scheme::SchnorrEd25519 => keys.sign_with_schnorr(
            SchnorrAlgorithm::Ed25519,
            key,
            id,
            &[],
            &digest.0,
            None,
            [7; 32],
        ),
        Scheme::Bls12_381 => {
            let mut transport = [0u8; 48];
            transport[0] = 0xc0; // the identity point: E3 is the plain BLS signature
            keys.vetkd_derive_key(key, id, VETKD_CONTEXT, &digest.0, &transport, [7; 32])
                .map(|k| k[144..192].to_vec())
        }
    };
    sig.map_err(|e| anyhow!("sign as {node}: {e:?}"))
}

/// `slash_equivocation` per scheme: a real node signs one header, the emulator's key for that
/// node signs another for the same height; restaking verifies both and slashes.
fn equivocations(ctx: &Context, net: &mut Net) -> Result<Vec<(Scheme, u64)>> {
    let node_wasm = ctx.wasm.read("confirmation_node")?;
    let subnet = net.emu.subnet_of_kind(SubnetKind::Application);
    let mut costs = Vec::new();
    for (i, scheme) in Scheme::ALL.into_iter().enumerate() {
        let node = emu::install_node(
            &mut net.emu,
            subnet,
            &node_wasm,
            scheme,
            emu::LOCAL_KEY_NAME,
            hub(),
        )?;
        let first = header(i as u64, 1);
        let signed: Result<SignResponse, crate::types::SignError> =
            emu::sign_header(&mut net.emu, node, &first)?;
        let confirmation = signed
            .map_err(|e| anyhow!("{scheme} node sign_header: {e:?}"))?
            .confirmation;
        let second = header(i as u64, 2);
        let second_sig = sign_as(&net.emu, scheme, node, &second)?;
        let ((), _) = net.call(
            operator(),
            "register_node",
            (RegisterNodeArgs {
                node,
                scheme,
                key_name: emu::LOCAL_KEY_NAME.into(),
                public_key: confirmation.public_key.clone(),
            },),
        )?;
        let evidence = EquivocationEvidence {
            node,
            scheme,
            key_name: emu::LOCAL_KEY_NAME.into(),
            first: SignedHeader {
                header: first,
                signature: confirmation.signature.clone(),
            },
            second: SignedHeader {
                header: second,
                signature: Blob(second_sig),
            },
        };
        let (_, cost): (u64, u64) = net
            .call(
                reporter(),
                "slash_equivocation",
                (EquivocationArgs {
                    operator: operator(),
                    evidence,
                },),
            )
            .with_context(|| format!("{scheme} equivocation"))?;
        costs.push((scheme, cost));
        // Let the slashed positions settle in staking before the next one.
        let _ = net.call::<()>(Principal::anonymous(), "process", ());
        net.emu.advance_time(Duration::from_secs(61));
        net.emu.run_until_idle();
    }
    Ok(costs)
}

fn row(name: String, value: u64, target: u64, note: impl Into<String>) -> Measurement {
    Measurement {
        name,
        issue: 5,
        value,
        target,
        unit: "instructions",
        note: note.into(),
    }
}

/// The number of delegators of the large slash: `STRATROS_BENCH_DELEGATORS`, else
/// [`DEFAULT_LARGE`].
pub fn large_delegators() -> u64 {
    std::env::var("STRATROS_BENCH_DELEGATORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_LARGE)
}

pub fn restaking(ctx: &Context) -> Result<Vec<Measurement>> {
    let (mut net, delegate, allocate) = setup(ctx, SMALL)?;
    let mut rows = vec![
        row(
            "restaking/delegate".into(),
            delegate,
            OPERATION_TARGET,
            "update + staking's lock callback, worst of 10; target: the README's \"under 3 M \
             per operation\" (issue 5 gives no number)",
        ),
        row("restaking/allocate".into(), allocate, OPERATION_TARGET, ""),
    ];
    // Rewards: the treasury deposits, a delegator claims (with the payout's callback).
    let deposit = 6 * E18;
    net.approve(funder(), net.restaking, deposit + FEE)?;
    let ((), _) = net.call(
        funder(),
        "deposit_rewards",
        (DepositRewardsArgs {
            avs: AVS.into(),
            token: net.ledger,
            amount: Nat::from(deposit),
            period_seconds: None,
            created_at_time: None,
            memo: None,
        },),
    )?;
    net.emu.advance_time(Duration::from_secs(30 * 24 * 3600));
    net.emu.run_until_idle();
    let (_, claim): (Vec<TokenAmount>, u64) =
        net.call(user(0), "claim_rewards", (None::<Principal>,))?;
    rows.push(row(
        "restaking/claim_rewards".into(),
        claim,
        OPERATION_TARGET,
        "one delegator, one token, with the payout transfer's callback",
    ));
    let small_slash = execute_slash(&mut net)?;
    for (scheme, cost) in equivocations(ctx, &mut net)? {
        rows.push(row(
            format!("restaking/slash_equivocation/{scheme}"),
            cost,
            PROOF_TARGET,
            if scheme == Scheme::Bls12_381 {
                "both signatures verified in the canister and the slash; target: a tenth of the \
                 40 B update limit (issue 5: \"with a wide margin\")"
            } else {
                ""
            },
        ));
    }
    rows.push(row(
        format!("restaking/execute_slash/{SMALL}_delegators"),
        small_slash,
        OPERATION_TARGET,
        "a 10 % slash of the operator's allocation, all its delegators at once (scaling \
         factors); settlement in staking is batched by the timer and not counted",
    ));
    let large = large_delegators();
    let start = Instant::now();
    let (mut big, _, _) = setup(ctx, large)?;
    let large_slash = execute_slash(&mut big)?;
    rows.push(row(
        format!("restaking/execute_slash/{large}_delegators"),
        large_slash,
        small_slash * FLAT_TENTHS / 10,
        format!(
            "flat: target 1.5 × the {SMALL}-delegator slash; set-up of {large} delegators took \
             {:.0} s (STRATROS_BENCH_DELEGATORS=10000 for issue 5's figure)",
            start.elapsed().as_secs_f64()
        ),
    ));
    Ok(rows)
}
