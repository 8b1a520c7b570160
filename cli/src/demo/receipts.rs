//! The real confirmation hub: deployed, nodes registered, records submitted by two services,
//! sealed by size and by age, confirmed by the four nodes, receipts fetched with `get_receipt`,
//! written and verified offline.

use super::{Check, Demo};
use crate::emu;
use crate::types::ConfigUpdate;
use anyhow::{Context, Result, bail};
use candid::{Encode, Principal};
use ic_emulator::SubnetKind;
use stratros_confirmation::{RecordInput, Scheme};

/// A batch is sealed as soon as this many records are pending ...
pub const BATCH_RECORDS: u64 = 7;
/// ... or when the oldest pending record is this old.
pub const BATCH_AGE_SECONDS: u64 = 10;

/// The submitters of the demo's records: they stand for Service 1 and Service 2 until the
/// registry and service canisters exist.
pub fn service(n: u8) -> Principal {
    Principal::self_authenticating(format!("stratros demo service {n}"))
}

/// Deploys the `confirmation` hub on the application subnet and authorizes the two services.
pub fn deploy_hub(demo: &mut Demo) -> Result<Vec<Check>> {
    let subnet = demo.emu.subnet_of_kind(SubnetKind::Application);
    let arg = crate::types::Arg::Init(crate::types::InitArgs {
        submitters: Vec::new(),
        nodes: Vec::new(),
        quorum_rule: None,
        config: Some(ConfigUpdate {
            max_batch_records: Some(BATCH_RECORDS),
            max_batch_age_seconds: Some(BATCH_AGE_SECONDS),
            ..Default::default()
        }),
        ..Default::default()
    });
    let hub = demo.deploy("confirmation", "confirmation", subnet, Encode!(&arg)?)?;
    demo.hub = Some(hub);
    for n in [1, 2] {
        emu::add_submitter(&mut demo.emu, hub, service(n))?;
    }
    let status = emu::hub_status(&mut demo.emu, hub)?;
    Ok(vec![
        Check::eq("hub id", status.hub.to_text(), hub.to_text()),
        Check::eq("two submitters authorized", status.submitters, 2),
        Check::eq(
            "batch size and age",
            (
                status.config.max_batch_records,
                status.config.max_batch_age_seconds,
            ),
            (BATCH_RECORDS, BATCH_AGE_SECONDS),
        ),
        Check::eq("no valid quorum before nodes", status.quorum_valid, false),
    ])
}

fn inputs(service: u8, count: usize) -> Vec<RecordInput> {
    let kinds = ["model", "dataset", "inference"];
    (0..count)
        .map(|i| {
            let kind = kinds[i % kinds.len()];
            emu::record_input(
                kind,
                &format!("service-{service}/{kind}-{i}"),
                &format!("demo content {service}/{i}"),
            )
        })
        .collect()
}

pub fn run(demo: &mut Demo) -> Result<Vec<Check>> {
    let anchors = demo.anchors.clone().context("no trust anchors")?;
    let hub = demo.hub.context("no hub deployed")?;
    let dir = demo.out.join("receipts");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let mut checks = Vec::new();

    // Service 1: exactly one batch's worth: sealed by size.
    let one = emu::submit(&mut demo.emu, hub, service(1), &inputs(1, 7))?
        .map_err(|e| anyhow::anyhow!("service 1 submit: {e:?}"))?;
    demo.emu.run_until_idle();
    let status = emu::hub_status(&mut demo.emu, hub)?;
    checks.push(Check::eq(
        "service 1: 7 records, ids 0..7, sealed by size",
        (
            one.iter().map(|s| s.id).collect::<Vec<_>>(),
            status.batches,
            status.pending_records,
        ),
        ((0..7).collect(), 1, 0),
    ));
    // Resubmitting returns the same ids (idempotent references).
    let again = emu::submit(&mut demo.emu, hub, service(1), &inputs(1, 2))?
        .map_err(|e| anyhow::anyhow!("service 1 resubmit: {e:?}"))?;
    checks.push(Check::eq(
        "service 1: a resubmission is a duplicate with the same ids",
        again
            .iter()
            .map(|s| (s.id, s.duplicate))
            .collect::<Vec<_>>(),
        vec![(0, true), (1, true)],
    ));

    // Service 2: fewer records than a batch: sealed by age.
    emu::submit(&mut demo.emu, hub, service(2), &inputs(2, 5))?
        .map_err(|e| anyhow::anyhow!("service 2 submit: {e:?}"))?;
    demo.emu.run_until_idle();
    let pending = emu::hub_status(&mut demo.emu, hub)?.pending_records;
    checks.push(Check::eq("service 2: 5 records pending", pending, 5));
    demo.emu
        .advance_time(std::time::Duration::from_secs(BATCH_AGE_SECONDS + 1));
    demo.emu.run_until_idle();
    let status = emu::hub_status(&mut demo.emu, hub)?;
    checks.push(Check::eq(
        "service 2: sealed by age",
        (status.batches, status.pending_records),
        (2, 0),
    ));

    for height in 0..2 {
        emu::wait_confirmed(&mut demo.emu, hub, height)?;
        let batch = emu::get_batch(&mut demo.emu, hub, height)?
            .map_err(|e| anyhow::anyhow!("get_batch {height}: {e:?}"))?;
        checks.push(Check::eq(
            format!("batch {height}: leaves, confirmations"),
            (batch.header.leaf_count, batch.confirmations().len()),
            (if height == 0 { 7 } else { 5 }, 4),
        ));
    }

    let options = crate::verify::Options {
        now_nanos: demo.emu.time_nanos(),
        max_cert_age_nanos: 3_600 * 1_000_000_000,
    };
    let next_id = emu::hub_status(&mut demo.emu, hub)?.next_record_id;
    let mut all = Vec::new();
    let mut valid = 0;
    let mut schemes = std::collections::BTreeSet::new();
    for id in 0..next_id {
        let r = match emu::get_receipt(&mut demo.emu, hub, id)? {
            Ok(r) => r,
            Err(e) => bail!("get_receipt {id}: {e:?}"),
        };
        let path = dir.join(format!("record-{id:04}.json"));
        std::fs::write(&path, r.to_json())?;
        match crate::verify::verify_file(&path, &anchors, options) {
            Ok(v) => {
                valid += 1;
                schemes.extend(v.confirmed_by.iter().map(|(_, s)| *s));
            }
            Err(e) => checks.push(Check::new(format!("receipt of record {id}"), false, e)),
        }
        demo.receipts.push(path);
        all.push(r);
    }
    checks.push(Check::new(
        "receipts fetched with get_receipt, written and verified offline",
        valid == all.len() && valid >= 10,
        format!("{valid} of {}", all.len()),
    ));
    checks.push(Check::eq(
        "submitters are the two services",
        all.iter()
            .map(|r| r.record.submitter.to_text())
            .collect::<std::collections::BTreeSet<_>>(),
        [service(1), service(2)]
            .iter()
            .map(Principal::to_text)
            .collect(),
    ));
    checks.push(Check::eq(
        "every scheme confirmed",
        schemes.into_iter().collect::<Vec<_>>(),
        Scheme::ALL.to_vec(),
    ));

    // Any changed byte fails: flip one byte of the receipt file.
    if let Some(path) = demo.receipts.first().cloned() {
        let text = std::fs::read_to_string(&path)?;
        let bad = flip_signature_byte(&text)?;
        let bad_path = demo.out.join("tampered.json");
        std::fs::write(&bad_path, bad)?;
        let result = crate::verify::verify_file(&bad_path, &anchors, options);
        std::fs::remove_file(&bad_path)?;
        checks.push(Check::new(
            "a flipped byte in a receipt's signature fails",
            result.is_err(),
            result.err().unwrap_or_default(),
        ));
    }
    // A node never signs a second header for a height it signed.
    if let Some(r) = all.first() {
        let mut other = r.header.clone();
        other.merkle_root.0[0] ^= 1;
        for n in demo.nodes.clone() {
            let refused = emu::sign_header(&mut demo.emu, n.node, &other)?;
            checks.push(Check::new(
                format!("{} refuses a second header for height 0", n.scheme),
                matches!(
                    refused,
                    Err(crate::types::SignError::AlreadySignedOtherHeader { .. })
                ),
                format!(
                    "{:?}",
                    refused
                        .err()
                        .map(|e| format!("{e:?}").chars().take(40).collect::<String>())
                ),
            ));
        }
    }
    Ok(checks)
}

/// The receipt JSON with one hex digit of the first signature changed.
fn flip_signature_byte(json: &str) -> Result<String> {
    let mut value: serde_json::Value = serde_json::from_str(json)?;
    let sig = value
        .pointer_mut("/confirmations/0/signature")
        .context("no confirmations/0/signature in the receipt JSON")?;
    let hex = sig
        .as_str()
        .context("signature is not a string")?
        .to_string();
    let mut bytes = hex::decode(&hex)?;
    bytes[0] ^= 1;
    *sig = serde_json::Value::String(hex::encode(bytes));
    Ok(serde_json::to_string_pretty(&value)?)
}
