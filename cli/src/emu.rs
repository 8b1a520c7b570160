//! Helpers on the embedded emulator shared by the demo, the benches and the tests: installing the
//! real canister Wasm, typed calls, the emulator's trust anchors, and confirmed receipts.
//!
//! The receipts are the real hub's (`out/confirmation.wasm`): it seals, the real
//! `confirmation_node` Wasm signs every header with the emulator's threshold keys, and
//! `get_receipt` returns the IC certificate (signed by the emulator's subnet with a delegation
//! from its root) and the witness of the header.

use crate::types::{
    AdminError, Arg as HubArg, Batch, BatchError, ConfigUpdate as HubConfigUpdate,
    InitArgs as HubInitArgs, NodeArg, NodeInfo, NodeInitArgs, ReceiptError, SignError,
    SignResponse, Status as HubStatus, SubmitError, Submitted,
};
use anyhow::{Context, Result, anyhow, bail};
use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Encode, Principal};
use ic_emulator::Emulator;
use stratros_confirmation::{BatchHeader, Blob, Hash32, PolicyNode, Receipt, RecordInput, Scheme};
use stratros_verify::{MasterKey, TrustAnchors};

/// The key name the emulator (like a local replica and PocketIC) offers for tests.
pub const LOCAL_KEY_NAME: &str = "dfx_test_key";

/// The emulator's root key and master public keys, in the form `stratros verify --trust` reads.
pub fn anchors(emu: &Emulator) -> Result<TrustAnchors> {
    let master_keys = emu
        .keys()
        .master_public_keys()
        .into_iter()
        .map(|info| {
            let scheme = *Scheme::ALL
                .iter()
                .find(|s| s.name() == info.scheme)
                .ok_or_else(|| anyhow!("the emulator has an unknown scheme {}", info.scheme))?;
            Ok(MasterKey {
                scheme,
                key_name: info.key_name,
                public_key: Blob(hex::decode(&info.public_key_hex)?),
                chain_code: info.chain_code_hex.map(hex::decode).transpose()?.map(Blob),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TrustAnchors {
        root_key: Blob(emu.root_key()),
        master_keys,
    })
}

/// An ingress update call, its reply decoded.
pub fn update<T: CandidType + for<'de> serde::Deserialize<'de>>(
    emu: &mut Emulator,
    canister: Principal,
    sender: Principal,
    method: &str,
    arg: impl ArgumentEncoder,
) -> Result<T> {
    let arg = candid::encode_args(arg)?;
    let reply = emu
        .update_call(canister, sender, method, arg)
        .map_err(|e| anyhow!("{method} on {canister} was rejected: {e:?}"))?;
    candid::decode_one(&reply).with_context(|| format!("{method} on {canister}: bad reply"))
}

/// A query call, its reply decoded.
pub fn query<T: for<'de> ArgumentDecoder<'de>>(
    emu: &mut Emulator,
    canister: Principal,
    method: &str,
    arg: impl ArgumentEncoder,
) -> Result<T> {
    let arg = candid::encode_args(arg)?;
    let reply = emu
        .query_call(canister, Principal::anonymous(), method, arg)
        .map_err(|e| anyhow!("{method} on {canister} was rejected: {e:?}"))?;
    candid::decode_args(&reply).with_context(|| format!("{method} on {canister}: bad reply"))
}

/// Creates a canister on `subnet` (controlled by the anonymous principal, default cycles) and
/// installs `wasm` with `arg`, then runs the emulator until idle (init timers).
pub fn install(
    emu: &mut Emulator,
    subnet: Principal,
    wasm: &[u8],
    arg: Vec<u8>,
) -> Result<Principal> {
    let id = emu
        .create_canister_on_subnet(
            subnet,
            vec![Principal::anonymous()],
            ic_emulator::DEFAULT_CANISTER_CYCLES,
        )
        .map_err(|e| anyhow!("create_canister on subnet {subnet}: {e:?}"))?;
    emu.install_canister(id, wasm, arg, None)
        .map_err(|e| anyhow!("install on {id}: {e:?}"))?;
    emu.run_until_idle();
    Ok(id)
}

/// Installs a `confirmation_node` for `scheme` whose hub is `hub`.
pub fn install_node(
    emu: &mut Emulator,
    subnet: Principal,
    wasm: &[u8],
    scheme: Scheme,
    key_name: &str,
    hub: Principal,
) -> Result<Principal> {
    let arg = NodeArg::Init(NodeInitArgs {
        scheme,
        key_name: key_name.into(),
        hub,
    });
    install(emu, subnet, wasm, Encode!(&arg)?).with_context(|| format!("{scheme} node"))
}

/// The node's `node_info`.
pub fn node_info(emu: &mut Emulator, node: Principal) -> Result<NodeInfo> {
    let (info,): (NodeInfo,) = query(emu, node, "node_info", ())?;
    Ok(info)
}

/// Asks `node` to sign `header` as the hub `header.hub`.
pub fn sign_header(
    emu: &mut Emulator,
    node: Principal,
    header: &BatchHeader,
) -> Result<Result<SignResponse, SignError>> {
    update(emu, node, header.hub, "sign_header", (header,))
}

/// The hub's controller in the emulator: the anonymous principal controls every canister that
/// [`install`] creates.
pub fn controller() -> Principal {
    Principal::anonymous()
}

/// Installs the real `confirmation` hub on `subnet` with no node and no submitter yet (nodes need
/// the hub's id first; add them with [`register_node`] and [`add_submitter`]).
pub fn install_hub(
    emu: &mut Emulator,
    subnet: Principal,
    wasm: &[u8],
    config: HubConfigUpdate,
) -> Result<Principal> {
    let arg = HubArg::Init(HubInitArgs {
        submitters: Vec::new(),
        nodes: Vec::new(),
        quorum_rule: None,
        config: Some(config),
        ..Default::default()
    });
    install(emu, subnet, wasm, Encode!(&arg)?).context("confirmation hub")
}

/// A controller call on the hub that returns `Result<(), AdminError>`.
pub fn hub_admin(
    emu: &mut Emulator,
    hub: Principal,
    method: &str,
    arg: impl ArgumentEncoder,
) -> Result<()> {
    let result: Result<(), AdminError> = update(emu, hub, controller(), method, arg)?;
    result.map_err(|e| anyhow!("{method} on the hub: {e:?}"))
}

/// Registers `node` in the hub's quorum policy.
pub fn register_node(emu: &mut Emulator, hub: Principal, node: PolicyNode) -> Result<()> {
    hub_admin(emu, hub, "register_node", (node,))
}

/// Authorizes `submitter` on the hub.
pub fn add_submitter(emu: &mut Emulator, hub: Principal, submitter: Principal) -> Result<()> {
    hub_admin(emu, hub, "add_submitter", (submitter,))
}

/// `submit` as `submitter`.
pub fn submit(
    emu: &mut Emulator,
    hub: Principal,
    submitter: Principal,
    records: &[RecordInput],
) -> Result<Result<Vec<Submitted>, SubmitError>> {
    update(emu, hub, submitter, "submit", (records,))
}

/// `seal_now` (controller): the new batch's height.
pub fn seal_now(emu: &mut Emulator, hub: Principal) -> Result<u64> {
    let result: Result<u64, AdminError> = update(emu, hub, controller(), "seal_now", ())?;
    result.map_err(|e| anyhow!("seal_now: {e:?}"))
}

/// `get_receipt` (as a query: the certificate exists only there).
pub fn get_receipt(
    emu: &mut Emulator,
    hub: Principal,
    id: u64,
) -> Result<Result<Receipt, ReceiptError>> {
    let (r,) = query(emu, hub, "get_receipt", (id,))?;
    Ok(r)
}

/// `get_batch`.
pub fn get_batch(
    emu: &mut Emulator,
    hub: Principal,
    height: u64,
) -> Result<Result<Batch, BatchError>> {
    let (r,) = query(emu, hub, "get_batch", (height,))?;
    Ok(r)
}

/// `get_status`.
pub fn hub_status(emu: &mut Emulator, hub: Principal) -> Result<HubStatus> {
    let (s,) = query(emu, hub, "get_status", ())?;
    Ok(s)
}

/// Runs every round, advancing time by `step` between rounds, until `done` or `max_steps`.
pub fn run_until(
    emu: &mut Emulator,
    step: std::time::Duration,
    max_steps: usize,
    mut done: impl FnMut(&mut Emulator) -> Result<bool>,
) -> Result<bool> {
    for _ in 0..max_steps {
        emu.run_until_idle();
        if done(emu)? {
            return Ok(true);
        }
        emu.advance_time(step);
    }
    emu.run_until_idle();
    done(emu)
}

/// Runs until every batch below `height + 1` is confirmed (or gives up after 60 simulated
/// seconds).
pub fn wait_confirmed(emu: &mut Emulator, hub: Principal, height: u64) -> Result<()> {
    let done = run_until(emu, std::time::Duration::from_secs(1), 60, |emu| {
        Ok(get_batch(emu, hub, height)?.is_ok_and(|b| b.is_confirmed()))
    })?;
    if !done {
        bail!(
            "batch {height} not confirmed: {:?}",
            get_batch(emu, hub, height)?
        );
    }
    Ok(())
}

/// A demo or test record: the content hash of `text`.
pub fn record_input(kind: &str, reference: &str, text: &str) -> RecordInput {
    RecordInput {
        content_hash: content_hash(text),
        kind: kind.into(),
        reference: reference.into(),
        payload: None,
    }
}

/// A content hash for demo and test records.
pub fn content_hash(text: &str) -> Hash32 {
    use sha2::Digest;
    Hash32(sha2::Sha256::digest(text.as_bytes()).into())
}
