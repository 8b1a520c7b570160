//! Every deployed canister upgraded; state checked afterwards. The services are upgraded the
//! production way: the registry rolls a new version out, one instance at a time.

use super::{Check, Demo};
use crate::emu;
use crate::types::registry::{InstanceStatus, Rollout, RolloutError, RolloutState};
use anyhow::{Context, Result, anyhow};
use candid::{Encode, Principal};
use std::time::Duration;

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
    checks.extend(upgrade_restaking(demo)?);
    checks.extend(upgrade_registry(demo)?);
    checks.extend(upgrade_services(demo)?);
    checks.extend(continues(demo)?);
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
    checks.push(Check::new(
        "after upgrade: hub fee books (replayed from its event log) and registrars unchanged",
        after.fees == before.fees && after.registrars == before.registrars,
        format!(
            "credits {}, forwarded {}, {} events",
            after.fees.credits, after.fees.forwarded, after.fees.events
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

/// Restaking upgraded (with `Upgrade(None)`; it rebuilds its state from its event log):
/// every AVS, operator and staker view unchanged, and still in agreement with staking.
fn upgrade_restaking(demo: &mut Demo) -> Result<Vec<Check>> {
    let Some(restaking) = demo.restaking else {
        return Ok(Vec::new());
    };
    let before = restaking_views(demo, restaking)?;
    let wasm = demo.wasm.read("restaking")?;
    let arg = Encode!(&stratros_restaking_api::Arg::Upgrade(None))?;
    demo.emu
        .upgrade_canister(restaking, &wasm, arg, None)
        .map_err(|e| anyhow!("upgrade restaking: {e:?}"))?;
    demo.emu.run_until_idle();
    let after = restaking_views(demo, restaking)?;
    let mut checks = Vec::new();
    for ((what, b), (_, a)) in before.into_iter().zip(after) {
        checks.push(Check::new(
            format!("after upgrade: restaking's {what} unchanged"),
            a == b,
            if a == b {
                "the same view".to_string()
            } else {
                format!("before {b}\n after {a}")
            },
        ));
    }
    let staking_locks = super::ledgers::user_names()
        .iter()
        .map(|u| super::staking::positions(demo, super::ledgers::user(u)))
        .collect::<Result<Vec<_>>>()?;
    let mut agree = true;
    for (u, positions) in super::ledgers::user_names().iter().zip(staking_locks) {
        for p in positions {
            let (locked,): (candid::Nat,) = emu::query(
                &mut demo.emu,
                restaking,
                "locked_in_staking",
                (super::ledgers::user(u), p.ledger),
            )?;
            agree &= locked == p.locked;
        }
    }
    checks.push(Check::eq(
        "after upgrade: restaking's locks equal staking's for every user and asset",
        agree,
        true,
    ));
    Ok(checks)
}

/// Restaking's views of both AVSs, both operators and both users, as Debug text.
fn restaking_views(demo: &mut Demo, restaking: Principal) -> Result<Vec<(String, String)>> {
    let mut views = Vec::new();
    for avs in [super::restaking::CONFIRMATION_AVS, super::restaking::DA_AVS] {
        let (v,): (Option<stratros_restaking_api::AvsView>,) =
            emu::query(&mut demo.emu, restaking, "get_avs", (avs.to_string(),))?;
        views.push((format!("AVS {avs}"), format!("{v:?}")));
    }
    for op in ["alpha", "beta"] {
        let (v,): (Option<stratros_restaking_api::OperatorView>,) = emu::query(
            &mut demo.emu,
            restaking,
            "get_operator",
            (super::restaking::operator(op),),
        )?;
        views.push((format!("operator {op}"), format!("{v:?}")));
    }
    for u in super::ledgers::user_names() {
        let (v,): (stratros_restaking_api::StakerView,) = emu::query(
            &mut demo.emu,
            restaking,
            "get_staker",
            (super::ledgers::user(u),),
        )?;
        views.push((format!("staker {u}"), format!("{v:?}")));
    }
    Ok(views)
}

/// The registry upgraded (`Upgrade(None)`): its directory and status unchanged.
fn upgrade_registry(demo: &mut Demo) -> Result<Vec<Check>> {
    let Some(registry) = demo.registry else {
        return Ok(Vec::new());
    };
    let services_before = super::registry::list_services(demo)?;
    let status_before = super::registry::registry_status(demo)?;
    let wasm = demo.wasm.read("registry")?;
    let arg = Encode!(&crate::types::registry::Arg::Upgrade(None))?;
    demo.emu
        .upgrade_canister(registry, &wasm, arg, None)
        .map_err(|e| anyhow!("upgrade the registry: {e:?}"))?;
    demo.emu.run_until_idle();
    let services_after = super::registry::list_services(demo)?;
    let status_after = super::registry::registry_status(demo)?;
    Ok(vec![
        Check::new(
            "after upgrade: the registry's directory unchanged",
            services_after == services_before,
            format!("{} services", services_after.len()),
        ),
        Check::eq(
            "after upgrade: the registry's hub, CMC, kinds and services",
            (
                status_after.hub.to_text(),
                status_after.cmc.map(|c| c.to_text()),
                status_after.kinds,
                status_after.services,
            ),
            (
                status_before.hub.to_text(),
                status_before.cmc.map(|c| c.to_text()),
                status_before.kinds,
                status_before.services,
            ),
        ),
    ])
}

/// The services upgraded by the registry: the same code with a release label in a custom
/// section is a new module hash, so it is published as version 2 and rolled out one instance
/// at a time (each stopped, upgraded, started). Every record, its status and the fee state
/// survive; the certified pages are rebuilt.
fn upgrade_services(demo: &mut Demo) -> Result<Vec<Check>> {
    if demo.services.is_empty() {
        return Ok(Vec::new());
    }
    let registry = super::registry::registry(demo)?;
    let mut before = Vec::new();
    for s in demo.services.clone() {
        before.push((
            super::services::records(demo, s)?,
            super::services::status(demo, s)?,
        ));
    }
    let v2_module = with_custom_section(
        &demo.wasm.read("service")?,
        "stratros:release",
        b"demo version 2",
    );
    let v2 = super::registry::publish(demo, &v2_module)?;
    let r: Result<Rollout, RolloutError> = emu::update(
        &mut demo.emu,
        registry,
        super::services::owner(),
        "upgrade_services",
        (super::registry::KIND.to_string(), v2.version),
    )?;
    r.map_err(|e| anyhow!("upgrade_services: {e:?}"))?;
    let done = emu::run_until(&mut demo.emu, Duration::from_secs(1), 60, |emu| {
        let (r,): (Option<Rollout>,) = emu::query(emu, registry, "get_rollout", ())?;
        Ok(r.is_some_and(|r| r.state != RolloutState::Running))
    })?;
    let (rollout,): (Option<Rollout>,) = emu::query(&mut demo.emu, registry, "get_rollout", ())?;
    let rollout = rollout.context("no rollout after upgrade_services")?;
    let mut checks = vec![Check::new(
        "the registry rolls version 2 out to both services, one at a time",
        done && rollout.state == RolloutState::Done
            && rollout.instances.len() == demo.services.len()
            && rollout
                .instances
                .iter()
                .all(|i| i.status == InstanceStatus::Done && i.from_version == 1),
        format!(
            "{:?}: {}",
            rollout.state,
            rollout
                .instances
                .iter()
                .map(|i| format!("{:?} ({} instructions)", i.status, i.instructions))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )];
    let directory = super::registry::list_services(demo)?;
    checks.push(Check::eq(
        "after upgrade: the directory shows both at version 2 with its module hash",
        directory
            .iter()
            .map(|s| (s.version, hex::encode(&s.module_hash)))
            .collect::<Vec<_>>(),
        vec![(2, hex::encode(&v2.hash)); demo.services.len()],
    ));
    let root_key = demo.emu.root_key();
    for (s, (records, status)) in demo.services.clone().into_iter().zip(before) {
        let name = super::services::name(demo, s);
        let module_hash = demo
            .emu
            .canister_status(s)
            .map_err(|e| anyhow!("canister_status {name}: {e:?}"))?
            .module_hash
            .map(hex::encode);
        checks.push(Check::eq(
            format!("after upgrade: {name} runs version 2"),
            module_hash,
            Some(hex::encode(&v2.hash)),
        ));
        let after = super::services::records(demo, s)?;
        checks.push(Check::new(
            format!("after upgrade: {name}'s records, hub ids and statuses unchanged"),
            after == records,
            format!("{} records", after.len()),
        ));
        let status_after = super::services::status(demo, s)?;
        checks.push(Check::new(
            format!("after upgrade: {name}'s counts and fee state unchanged"),
            (
                status_after.records,
                status_after.confirmed,
                &status_after.fees,
            ) == (status.records, status.confirmed, &status.fees),
            format!(
                "{} records, {} confirmed, hub credit {}",
                status_after.records, status_after.confirmed, status_after.fees.hub_credit
            ),
        ));
        let response = super::services::http_get(demo, s, "/records/0")?;
        let verified = super::services::verify_http(&root_key, demo.emu.time_nanos(), s, &response);
        checks.push(Check::new(
            format!("after upgrade: {name}'s GET /records/0 still certified"),
            verified.is_ok() && response.status_code().as_u16() == 200,
            match verified {
                Ok(path) => format!("{} at {path}", response.status_code().as_u16()),
                Err(e) => format!("{e:#}"),
            },
        ));
    }
    Ok(checks)
}

/// `module` with a custom section `name` holding `content` appended (same code, new hash).
fn with_custom_section(module: &[u8], name: &str, content: &[u8]) -> Vec<u8> {
    fn leb128(out: &mut Vec<u8>, mut v: usize) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut payload = Vec::new();
    leb128(&mut payload, name.len());
    payload.extend_from_slice(name.as_bytes());
    payload.extend_from_slice(content);
    let mut out = module.to_vec();
    out.push(0); // custom section
    leb128(&mut out, payload.len());
    out.extend_from_slice(&payload);
    out
}

/// After every upgrade the flow continues where it stopped: Service 1 records an inference,
/// pays its fee from the credit it kept, the hub seals it by age, the nodes confirm it, the
/// service sees it confirmed, and the receipt it relays verifies (written with the others).
fn continues(demo: &mut Demo) -> Result<Vec<Check>> {
    let (Some(hub), Some(&service)) = (demo.hub, demo.services.first()) else {
        return Ok(Vec::new());
    };
    let anchors = demo.anchors.clone().context("no trust anchors")?;
    let before = emu::hub_status(&mut demo.emu, hub)?;
    let credit_before = super::services::fee_account(demo, service)?.credit;
    let body = crate::types::service::RecordBody::Inference {
        model: "stratros-demo-llm@1.0".into(),
        input_hash: emu::content_hash("after the upgrades: prompt"),
        output: None,
        output_hash: emu::content_hash("after the upgrades: answer"),
        executor: "worker-1".into(),
    };
    let views = super::services::add_records(demo, service, super::services::owner(), vec![body])?;
    let view = views.first().context("add_records returned no record")?;
    let id = view.id;
    let mut checks = vec![Check::eq(
        "after every upgrade: Service 1 records again, the hub accepts it",
        view.status.clone(),
        crate::types::service::RecordStatus::Submitted,
    )];
    demo.emu
        .advance_time(Duration::from_secs(super::receipts::BATCH_AGE_SECONDS + 1));
    emu::wait_confirmed(&mut demo.emu, hub, before.batches)?;
    let confirmed = emu::run_until(&mut demo.emu, Duration::from_secs(1), 30, |emu| {
        let (r,): (Option<crate::types::service::RecordView>,) =
            emu::query(emu, service, "get_record", (id,))?;
        Ok(r.is_some_and(|r| {
            matches!(
                r.status,
                crate::types::service::RecordStatus::Confirmed { .. }
            )
        }))
    })?;
    let credit_after = super::services::fee_account(demo, service)?.credit;
    checks.push(Check::new(
        "after every upgrade: it is sealed by age, confirmed by the four nodes, paid from the credit",
        confirmed && credit_before - credit_after == super::registry::FEE_PER_RECORD,
        format!(
            "batch {}, credit {credit_before} -> {credit_after}",
            before.batches
        ),
    ));
    let receipt = super::services::relayed_receipt(demo, service, id)?;
    let verified = stratros_verify::verify_receipt(
        &receipt,
        &anchors,
        demo.emu.time_nanos(),
        3_600_000_000_000,
    );
    let path = demo
        .out
        .join("receipts")
        .join(format!("record-{:04}.json", receipt.record.id));
    std::fs::write(&path, receipt.to_json())
        .with_context(|| format!("cannot write {}", path.display()))?;
    demo.receipts.push(path);
    checks.push(Check::new(
        "after every upgrade: the receipt Service 1 relays verifies offline",
        verified.is_ok(),
        match verified {
            Ok(_) => format!("hub record {}", receipt.record.id),
            Err(e) => format!("{e}"),
        },
    ));
    Ok(checks)
}
