//! The hub's costs (issue 3), the real `confirmation` Wasm with four real nodes on the emulator,
//! following `canisters/confirmation/tests/bench.rs`: `submit` (Candid) and `submit_packed` at
//! 100 records per call, one seal of 10,000 leaves, `get_receipt` over that history.

use super::confirmation_node::instructions_since;
use super::{Context, Measurement};
use crate::emu;
use crate::types::ConfigUpdate;
use anyhow::{Result, anyhow};
use candid::Principal;
use ic_emulator::{Emulator, SubnetKind};
use stratros_confirmation::{Blob, PolicyNode, RecordInput, Scheme};

/// Issue 3: `submit` ≤ 60,000 instructions per record at 100 records per call.
pub const SUBMIT_TARGET: u64 = 60_000;
/// Issue 3: sealing ≤ 40,000 instructions per leaf at 10,000 leaves.
pub const SEAL_TARGET: u64 = 40_000;
/// Issue 3: `get_receipt` ≤ 5,000,000 instructions, flat in the history.
pub const RECEIPT_TARGET: u64 = 5_000_000;

const LEAVES: u64 = 10_000;
const PER_CALL: u64 = 100;
/// One call in this many is a Candid `submit`.
const CANDID_EVERY: u64 = 10;

/// Instructions of the hub's executions after `mark` whose entry point contains `entry`.
fn entry_instructions(emu: &Emulator, hub: Principal, mark: usize, entry: &str) -> u64 {
    emu.executions()[mark..]
        .iter()
        .filter(|e| e.canister == hub && e.entry.contains(entry))
        .map(|e| e.instructions)
        .sum()
}

pub fn hub(ctx: &Context) -> Result<Vec<Measurement>> {
    let hub_wasm = ctx.wasm.read("confirmation")?;
    let node_wasm = ctx.wasm.read("confirmation_node")?;
    let mut emu = Emulator::new();
    let app = emu.subnet_of_kind(SubnetKind::Application);
    let fid = emu.subnet_of_kind(SubnetKind::Fiduciary);
    let config = ConfigUpdate {
        max_batch_records: Some(100_000),
        max_batch_age_seconds: Some(86_400),
        max_records_per_call: Some(1_000),
        ..Default::default()
    };
    let hub = emu::install_hub(&mut emu, app, &hub_wasm, config)?;
    for (i, scheme) in Scheme::ALL.into_iter().enumerate() {
        let subnet = if i < 2 { fid } else { app };
        let node = emu::install_node(
            &mut emu,
            subnet,
            &node_wasm,
            scheme,
            emu::LOCAL_KEY_NAME,
            hub,
        )?;
        emu::register_node(
            &mut emu,
            hub,
            PolicyNode {
                node,
                scheme,
                key_name: emu::LOCAL_KEY_NAME.into(),
            },
        )?;
    }
    let submitter = Principal::self_authenticating(b"stratros bench service");
    emu::add_submitter(&mut emu, hub, submitter)?;

    // Every tenth call is a Candid `submit`, the others `submit_packed`: both forms over the
    // same history.
    let (mut packed_total, mut packed_records) = (0, 0);
    let (mut candid_total, mut candid_records) = (0, 0);
    for call in 0..LEAVES / PER_CALL {
        let inputs: Vec<RecordInput> = (call * PER_CALL..(call + 1) * PER_CALL)
            .map(|i| emu::record_input("inference", &format!("ref-{i}"), &format!("bench {i}")))
            .collect();
        let mark = emu.executions().len();
        if call % CANDID_EVERY == 0 {
            let r: Result<Vec<crate::types::Submitted>, crate::types::SubmitError> =
                emu::update(&mut emu, hub, submitter, "submit", (inputs,))?;
            r.map_err(|e| anyhow!("submit: {e:?}"))?;
            candid_total += entry_instructions(&emu, hub, mark, "submit");
            candid_records += PER_CALL;
        } else {
            let blob = Blob(stratros_confirmation::encode_packed(&inputs));
            let r: Result<Vec<crate::types::Submitted>, crate::types::SubmitError> =
                emu::update(&mut emu, hub, submitter, "submit_packed", (blob,))?;
            r.map_err(|e| anyhow!("submit_packed: {e:?}"))?;
            packed_total += entry_instructions(&emu, hub, mark, "submit_packed");
            packed_records += PER_CALL;
        }
    }
    let mark = emu.executions().len();
    let height = emu::seal_now(&mut emu, hub)?;
    let seal = entry_instructions(&emu, hub, mark, "seal_now");
    emu::wait_confirmed(&mut emu, hub, height)?;

    let mut receipt_worst = 0;
    for k in 0..10u64 {
        let id = (LEAVES - 1) * k / 9;
        let mark = emu.executions().len();
        emu::get_receipt(&mut emu, hub, id)?.map_err(|e| anyhow!("get_receipt {id}: {e:?}"))?;
        receipt_worst = receipt_worst.max(instructions_since(&emu, hub, mark));
    }
    Ok(vec![
        Measurement {
            name: "confirmation/submit/per_record".into(),
            issue: 3,
            value: candid_total / candid_records,
            target: SUBMIT_TARGET,
            unit: "instructions",
            note: format!(
                "mean per record of {} Candid `submit` calls of {PER_CALL} records",
                candid_records / PER_CALL
            ),
        },
        Measurement {
            name: "confirmation/submit_packed/per_record".into(),
            issue: 3,
            value: packed_total / packed_records,
            target: SUBMIT_TARGET,
            unit: "instructions",
            note: format!(
                "mean per record of {} `submit_packed` calls of {PER_CALL} records",
                packed_records / PER_CALL
            ),
        },
        Measurement {
            name: "confirmation/seal/per_leaf".into(),
            issue: 3,
            value: seal / LEAVES,
            target: SEAL_TARGET,
            unit: "instructions",
            note: format!("one `seal_now` of {LEAVES} leaves: {seal} instructions in all"),
        },
        Measurement {
            name: "confirmation/get_receipt".into(),
            issue: 3,
            value: receipt_worst,
            target: RECEIPT_TARGET,
            unit: "instructions",
            note: format!("worst of 10 ids spread over a history of {LEAVES} records"),
        },
    ])
}
