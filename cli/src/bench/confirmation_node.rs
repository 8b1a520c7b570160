//! The confirmation node's signing cost (issue 3), the real Wasm on the emulator.

use super::{Context, Measurement};
use crate::emu;
use anyhow::{Context as _, Result, bail};
use candid::Principal;
use ic_emulator::{Emulator, SubnetKind};
use stratros_confirmation::{BatchHeader, Hash32, Scheme};

/// Instructions of one new signature, update plus reply callback. The node README measured
/// 2.70–2.83 M per scheme (24 Nov 2026); the target is that figure rounded up, so a regression
/// shows as a miss.
pub const SIGN_TARGET: u64 = 3_000_000;
/// Instructions of a repeated request answered from the log (README: ≈ 2.25 M).
pub const REPEAT_TARGET: u64 = 2_500_000;

/// `sign_header` per scheme (new signature), and the repeat of a signed header.
pub fn sign_header(ctx: &Context) -> Result<Vec<Measurement>> {
    let wasm = ctx.wasm.read("confirmation_node")?;
    let mut emu = Emulator::new();
    let hub = Principal::self_authenticating(b"stratros bench hub");
    let subnet = emu.subnet_of_kind(SubnetKind::Application);
    let mut rows = Vec::new();
    let mut repeat_max = 0;
    for scheme in Scheme::ALL {
        let node = emu::install_node(&mut emu, subnet, &wasm, scheme, emu::LOCAL_KEY_NAME, hub)?;
        let header = BatchHeader {
            hub,
            height: 0,
            prev_header_hash: Hash32::ZERO,
            merkle_root: Hash32([1; 32]),
            leaf_count: 1,
            first_record_id: 0,
            last_record_id: 0,
            start_time_nanos: 1,
            end_time_nanos: 2,
            quorum_policy_hash: Hash32([3; 32]),
        };
        let mark = emu.executions().len();
        let signed = emu::sign_header(&mut emu, node, &header)?;
        if let Err(e) = signed {
            bail!("{scheme} node refused to sign: {e:?}");
        }
        let new = instructions_since(&emu, node, mark);
        let mark = emu.executions().len();
        emu::sign_header(&mut emu, node, &header)?
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .context("repeat")?;
        repeat_max = repeat_max.max(instructions_since(&emu, node, mark));
        rows.push(Measurement {
            name: format!("confirmation_node/sign_header/{scheme}"),
            issue: 3,
            value: new,
            target: SIGN_TARGET,
            unit: "instructions",
            note: String::new(),
        });
    }
    rows.push(Measurement {
        name: "confirmation_node/sign_header/repeat".into(),
        issue: 3,
        value: repeat_max,
        target: REPEAT_TARGET,
        unit: "instructions",
        note: "update + callbacks on the emulator; targets: the node README's figures rounded up \
               (regression guard); repeat = most expensive scheme"
            .into(),
    });
    Ok(rows)
}

/// Instructions `canister` spent in every execution after `mark` (update, callbacks, timers).
pub fn instructions_since(emu: &Emulator, canister: Principal, mark: usize) -> u64 {
    emu.executions()[mark..]
        .iter()
        .filter(|e| e.canister == canister)
        .map(|e| e.instructions)
        .sum()
}
