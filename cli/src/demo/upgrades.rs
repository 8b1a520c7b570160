//! Every deployed canister upgraded; state checked afterwards.

use super::{Check, Demo};
use crate::emu;
use anyhow::{Result, anyhow};
use candid::Encode;

pub fn run(demo: &mut Demo) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    for ledger in demo.ledgers.clone() {
        let wasm = demo.wasm.read("icrc_ledger")?;
        let arg = Encode!(&crate::types::LedgerArg::Upgrade(None))?;
        demo.emu
            .upgrade_canister(ledger.id, &wasm, arg, None)
            .map_err(|e| anyhow!("upgrade {}: {e:?}", ledger.name))?;
        checks.extend(
            super::ledgers::check_ledger(demo, &ledger)?
                .into_iter()
                .map(|c| Check {
                    name: format!("after upgrade: {}", c.name),
                    ..c
                }),
        );
    }
    let nodes = demo.nodes.clone();
    let wasm = demo.wasm.read("confirmation_node")?;
    for n in nodes {
        let before = emu::node_info(&mut demo.emu, n.node)?;
        let arg = Encode!(&crate::types::NodeArg::Upgrade(None))?;
        demo.emu
            .upgrade_canister(n.node, &wasm, arg, None)
            .map_err(|e| anyhow!("upgrade {} node: {e:?}", n.scheme))?;
        demo.emu.run_until_idle();
        let after = emu::node_info(&mut demo.emu, n.node)?;
        checks.push(Check::eq(
            format!("after upgrade: {} node keeps its log and key", n.scheme),
            (after.log_length, after.public_key),
            (before.log_length, before.public_key),
        ));
    }
    checks.extend(upgrade_hub(demo)?);
    checks.extend(upgrade_staking(demo)?);
    Ok(checks)
}

/// The hub upgraded (with `Upgrade(Some(UpgradeArgs { config: None }))`): its status and header
/// chain unchanged, every receipt still served and verifying, equal to the one written before
/// (up to the certificate, which is fresh).
fn upgrade_hub(demo: &mut Demo) -> Result<Vec<Check>> {
    let Some(hub) = demo.hub else {
        return Ok(Vec::new());
    };
    let mut checks = Vec::new();
    let before = emu::hub_status(&mut demo.emu, hub)?;
    let wasm = demo.wasm.read("confirmation")?;
    let arg = Encode!(&crate::types::Arg::Upgrade(Some(
        crate::types::UpgradeArgs::default()
    )))?;
    demo.emu
        .upgrade_canister(hub, &wasm, arg, None)
        .map_err(|e| anyhow!("upgrade the hub: {e:?}"))?;
    demo.emu.run_until_idle();
    let after = emu::hub_status(&mut demo.emu, hub)?;
    checks.push(Check::new(
        "after upgrade: hub quorum policy unchanged",
        after.quorum == before.quorum,
        format!("{} nodes", after.quorum.nodes.len()),
    ));
    checks.push(Check::eq(
        "after upgrade: hub batches, next record id, last header hash",
        (after.batches, after.next_record_id, after.last_header_hash),
        (
            before.batches,
            before.next_record_id,
            before.last_header_hash,
        ),
    ));
    let anchors = demo
        .anchors
        .clone()
        .ok_or_else(|| anyhow!("no trust anchors"))?;
    let now = demo.emu.time_nanos();
    let mut same = 0;
    let mut valid = 0;
    for path in demo.receipts.clone() {
        let written = stratros_confirmation::Receipt::from_json(&std::fs::read_to_string(&path)?)?;
        let served = emu::get_receipt(&mut demo.emu, hub, written.record.id)?
            .map_err(|e| anyhow!("get_receipt {} after upgrade: {e:?}", written.record.id))?;
        if (
            &served.record,
            &served.header,
            &served.proof,
            &served.confirmations,
        ) == (
            &written.record,
            &written.header,
            &written.proof,
            &written.confirmations,
        ) {
            same += 1;
        }
        if stratros_verify::verify_receipt(&served, &anchors, now, 3_600_000_000_000).is_ok() {
            valid += 1;
        }
    }
    checks.push(Check::eq(
        "after upgrade: every receipt served again, unchanged and verifying",
        (same, valid),
        (demo.receipts.len(), demo.receipts.len()),
    ));
    Ok(checks)
}

/// Staking upgraded (with `Upgrade(Some(UpgradeArgs::default()))`): every position, the assets
/// and the accounting unchanged, the invariant still holds.
fn upgrade_staking(demo: &mut Demo) -> Result<Vec<Check>> {
    let Some(staking) = demo.staking else {
        return Ok(Vec::new());
    };
    let users = [super::ledgers::user("alice"), super::ledgers::user("bob")];
    let mut before = Vec::new();
    for u in users {
        before.push(super::staking::positions(demo, u)?);
    }
    let accounting_before = super::staking::accounting(demo)?;
    let wasm = demo.wasm.read("staking")?;
    let arg = Encode!(&stratros_staking_api::Arg::Upgrade(Some(
        stratros_staking_api::UpgradeArgs::default()
    )))?;
    demo.emu
        .upgrade_canister(staking, &wasm, arg, None)
        .map_err(|e| anyhow!("upgrade staking: {e:?}"))?;
    demo.emu.run_until_idle();
    let mut after = Vec::new();
    for u in users {
        after.push(super::staking::positions(demo, u)?);
    }
    let accounting_after = super::staking::accounting(demo)?;
    let mut checks = vec![
        Check::new(
            "after upgrade: staking positions unchanged",
            after == before,
            format!("{} positions", after.iter().map(Vec::len).sum::<usize>()),
        ),
        Check::new(
            "after upgrade: staking accounting unchanged (up to when the balance was read)",
            without_read_time(accounting_after.clone()) == without_read_time(accounting_before),
            format!("{} assets", accounting_after.len()),
        ),
    ];
    checks.extend(super::staking::invariant_checks(demo, "after upgrade")?);
    Ok(checks)
}

/// The accounting without `ledger_balance_at`, which moves whenever the timer reads the ledger.
fn without_read_time(
    views: Vec<stratros_staking_api::AccountingView>,
) -> Vec<stratros_staking_api::AccountingView> {
    views
        .into_iter()
        .map(|v| stratros_staking_api::AccountingView {
            ledger_balance_at: None,
            ..v
        })
        .collect()
}
