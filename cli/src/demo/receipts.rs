//! The real confirmation hub: deployed, nodes registered; records submitted by Service 1 and
//! Service 2 through their own API (each forwards to the hub and pays the per-record fee
//! from its hub credit), sealed by size and by age, confirmed by the four nodes; receipts
//! fetched with `get_receipt`, written and verified offline, and relayed by a service; the
//! fees forwarded to restaking; a service's certified HTTP responses checked as a boundary
//! node checks them.

use super::registry::FEE_PER_RECORD;
use super::services::{self, owner, stranger};
use super::{Check, Demo};
use crate::emu;
use crate::types::ConfigUpdate;
use crate::types::service::{AddError, RecordBody, RecordStatus, RecordView};
use anyhow::{Context, Result, anyhow, bail};
use candid::{Encode, Principal};
use ic_emulator::SubnetKind;
use std::time::Duration;
use stratros_confirmation::{Blob, Receipt, Scheme};

/// A batch is sealed as soon as this many records are pending ...
pub const BATCH_RECORDS: u64 = 7;
/// ... or when the oldest pending record is this old.
pub const BATCH_AGE_SECONDS: u64 = 10;

/// Deploys the `confirmation` hub on the application subnet. It has no submitter yet: the
/// registry (its registrar) authorizes each service it creates.
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
    let status = emu::hub_status(&mut demo.emu, hub)?;
    Ok(vec![
        Check::eq("hub id", status.hub.to_text(), hub.to_text()),
        Check::eq("no submitter yet", status.submitters, 0),
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

/// `count` records of every kind a service holds (models, datasets, inferences,
/// transactions), distinct per service.
fn bodies(service: u8, count: usize) -> Vec<RecordBody> {
    (0..count)
        .map(|i| {
            let tag = format!("service-{service}/{i}");
            match i % 4 {
                0 => RecordBody::Inference {
                    model: "stratros-demo-llm@1.0".into(),
                    input_hash: emu::content_hash(&format!("{tag} prompt")),
                    output: Some(Blob(format!("answer {tag}").into_bytes())),
                    output_hash: emu::content_hash(&format!("answer {tag}")),
                    executor: format!("worker-{service}"),
                },
                1 => RecordBody::ModelAttestation {
                    model_id: format!("adapter-{tag}"),
                    version: "0.1".into(),
                    weights_hash: emu::content_hash(&format!("{tag} weights")),
                    metadata: "{}".into(),
                },
                2 => RecordBody::Dataset {
                    hash: emu::content_hash(&format!("{tag} data")),
                    licence: "CC0-1.0".into(),
                    source: format!("https://example.org/{tag}"),
                },
                _ => RecordBody::Transaction {
                    kind: "payment".into(),
                    payload: Blob(format!("{tag}: 42 credits").into_bytes()),
                },
            }
        })
        .collect()
}

fn two_services(demo: &Demo) -> Result<(Principal, Principal)> {
    match demo.services.as_slice() {
        [s1, s2] => Ok((*s1, *s2)),
        other => bail!("expected Service 1 and Service 2, the registry created {other:?}"),
    }
}

fn all_submitted(views: &[RecordView]) -> bool {
    views
        .iter()
        .all(|v| v.status == RecordStatus::Submitted && v.hub_record_id.is_some())
}

pub fn run(demo: &mut Demo) -> Result<Vec<Check>> {
    let anchors = demo.anchors.clone().context("no trust anchors")?;
    let hub = demo.hub.context("no hub deployed")?;
    let (s1, s2) = two_services(demo)?;
    let dir = demo.out.join("receipts");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let mut checks = Vec::new();
    let before = emu::hub_status(&mut demo.emu, hub)?;

    // Service 1: exactly one batch's worth: sealed by size.
    let one = services::add_records(demo, s1, owner(), bodies(1, 7))?;
    demo.emu.run_until_idle();
    let status = emu::hub_status(&mut demo.emu, hub)?;
    checks.push(Check::eq(
        "Service 1: 7 records forwarded to the hub, sealed by size",
        (
            all_submitted(&one),
            status.batches - before.batches,
            status.pending_records,
        ),
        (true, 1, 0),
    ));
    let refused: Result<Vec<RecordView>, AddError> = emu::update(
        &mut demo.emu,
        s1,
        stranger(),
        "add_records",
        (bodies(9, 1),),
    )?;
    checks.push(Check::new(
        "Service 1 refuses a record from someone who is not a writer",
        matches!(refused, Err(AddError::NotWriter { .. })),
        match &refused {
            Err(AddError::NotWriter { caller }) => {
                format!("NotWriter {{ caller: {} }}", super::ledgers::short(caller))
            }
            other => format!("{other:?}"),
        },
    ));

    // Service 2: fewer records than a batch: sealed by age.
    let two = services::add_records(demo, s2, owner(), bodies(2, 5))?;
    demo.emu.run_until_idle();
    let pending = emu::hub_status(&mut demo.emu, hub)?.pending_records;
    checks.push(Check::eq(
        "Service 2: 5 records forwarded, pending at the hub",
        (all_submitted(&two), pending),
        (true, 5),
    ));
    demo.emu
        .advance_time(Duration::from_secs(BATCH_AGE_SECONDS + 1));
    demo.emu.run_until_idle();
    let status = emu::hub_status(&mut demo.emu, hub)?;
    checks.push(Check::eq(
        "Service 2: sealed by age",
        (status.batches - before.batches, status.pending_records),
        (2, 0),
    ));

    for (height, leaves) in [(before.batches, 7), (before.batches + 1, 5)] {
        emu::wait_confirmed(&mut demo.emu, hub, height)?;
        let batch = emu::get_batch(&mut demo.emu, hub, height)?
            .map_err(|e| anyhow!("get_batch {height}: {e:?}"))?;
        checks.push(Check::eq(
            format!("batch {height}: leaves, confirmations"),
            (batch.header.leaf_count, batch.confirmations().len()),
            (leaves, 4),
        ));
    }
    // The services follow their records to confirmation (their timers scan the hub).
    let settled = emu::run_until(&mut demo.emu, Duration::from_secs(1), 60, |emu| {
        let mut done = true;
        for s in [s1, s2] {
            let (st,): (crate::types::service::ServiceStatus,) =
                emu::query(emu, s, "get_status", ())?;
            done &= st.confirmed == st.records;
        }
        Ok(done)
    })?;
    let (st1, st2) = (services::status(demo, s1)?, services::status(demo, s2)?);
    checks.push(Check::new(
        "both services see every record of theirs confirmed",
        settled,
        format!(
            "Service 1 {}/{}, Service 2 {}/{}",
            st1.confirmed, st1.records, st2.confirmed, st2.records
        ),
    ));

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
        [s1, s2].iter().map(Principal::to_text).collect(),
    ));
    checks.push(Check::eq(
        "every scheme confirmed",
        schemes.into_iter().collect::<Vec<_>>(),
        Scheme::ALL.to_vec(),
    ));
    for s in [s1, s2] {
        checks.push(service_records_match(demo, s, &all)?);
    }
    checks.extend(relayed(demo, s2, &all, options)?);

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
    checks.extend(fees(demo)?);
    checks.extend(http(demo, s1)?);
    Ok(checks)
}

/// Every record of `service` is a hub record of that service: submitter, reference
/// `rec-<local id>`, content hash and kind, and confirmed.
fn service_records_match(demo: &mut Demo, service: Principal, all: &[Receipt]) -> Result<Check> {
    let views = services::records(demo, service)?;
    let mut matched = 0;
    let mut first_mismatch = None;
    for v in &views {
        let hub_record = v
            .hub_record_id
            .and_then(|id| all.iter().find(|r| r.record.id == id))
            .map(|r| &r.record);
        let ok = hub_record.is_some_and(|h| {
            h.submitter == service
                && h.reference == v.reference
                && h.content_hash == v.content_hash
                && h.kind == v.body.hub_kind()
        }) && matches!(v.status, RecordStatus::Confirmed { .. });
        if ok {
            matched += 1;
        } else if first_mismatch.is_none() {
            first_mismatch = Some(format!("record {}: {:?} vs {hub_record:?}", v.id, v.status));
        }
    }
    Ok(Check::new(
        format!(
            "{}: each of its records is its hub record (submitter, reference, content hash, kind), confirmed",
            services::name(demo, service)
        ),
        matched == views.len() && !views.is_empty(),
        first_mismatch.unwrap_or_else(|| format!("{matched} of {}", views.len())),
    ))
}

/// A receipt relayed by the service (its `get_receipt` plus the hub's header certificate)
/// verifies offline and is the hub's own receipt.
fn relayed(
    demo: &mut Demo,
    service: Principal,
    all: &[Receipt],
    options: crate::verify::Options,
) -> Result<Vec<Check>> {
    let anchors = demo.anchors.clone().context("no trust anchors")?;
    let last = services::status(demo, service)?
        .records
        .checked_sub(1)
        .context("the service has no record")?;
    let receipt = services::relayed_receipt(demo, service, last)?;
    let verified = stratros_verify::verify_receipt(
        &receipt,
        &anchors,
        options.now_nanos,
        options.max_cert_age_nanos,
    );
    let same = all
        .iter()
        .find(|r| r.record.id == receipt.record.id)
        .is_some_and(|r| {
            (&r.record, &r.header, &r.proof, &r.confirmations)
                == (
                    &receipt.record,
                    &receipt.header,
                    &receipt.proof,
                    &receipt.confirmations,
                )
        });
    Ok(vec![Check::new(
        format!(
            "{}: a receipt it relays (get_receipt + the hub's header certificate) verifies and is the hub's",
            services::name(demo, service)
        ),
        verified.is_ok() && same,
        match verified {
            Ok(_) => format!("record {last} (hub id {})", receipt.record.id),
            Err(e) => format!("{e}"),
        },
    )])
}

/// Each service was charged the fee for each of its records; the hub forwards what it
/// collected to restaking as confirmation-AVS rewards.
fn fees(demo: &mut Demo) -> Result<Vec<Check>> {
    let hub = demo.hub.context("no hub deployed")?;
    let restaking = demo.restaking.context("no restaking deployed")?;
    let mut checks = Vec::new();
    let mut charged = 0u128;
    for s in demo.services.clone() {
        let account = services::fee_account(demo, s)?;
        let status = services::status(demo, s)?;
        charged += account.charged;
        checks.push(Check::eq(
            format!(
                "{}: charged records × 0.00001 ckBTC, its view of the credit is the hub's",
                status.name
            ),
            (
                account.records_charged,
                account.charged,
                status.fees.hub_credit,
            ),
            (
                status.records,
                u128::from(status.records) * FEE_PER_RECORD,
                account.credit,
            ),
        ));
    }
    // The hub's timer forwards every `forward_interval_seconds` once enough is collected.
    let done = emu::run_until(
        &mut demo.emu,
        Duration::from_secs(super::registry::FORWARD_INTERVAL_SECONDS + 1),
        5,
        |emu| {
            let st = emu::hub_status(emu, hub)?;
            Ok(st.fees.collected == 0 && st.fees.forward.is_none() && st.fees.forwarded > 0)
        },
    )?;
    let st = emu::hub_status(&mut demo.emu, hub)?;
    checks.push(Check::new(
        "the hub forwards every fee collected to restaking (minus the ledger's fees)",
        done && st.fees.forwarded + st.fees.forward_ledger_fees == charged,
        format!(
            "charged {charged}, forwarded {}, ledger fees {}, still collected {}",
            st.fees.forwarded, st.fees.forward_ledger_fees, st.fees.collected
        ),
    ));
    let btc = demo
        .ledgers
        .iter()
        .find(|l| l.name == "ckbtc_ledger")
        .map(|l| l.id)
        .context("no ckBTC ledger")?;
    let (avs,): (Option<stratros_restaking_api::AvsView>,) = emu::query(
        &mut demo.emu,
        restaking,
        "get_avs",
        (super::restaking::CONFIRMATION_AVS.to_string(),),
    )?;
    let deposited: u128 = avs
        .context("no confirmation AVS")?
        .rewards_deposited
        .iter()
        .filter(|t| t.token == btc)
        .map(|t| u128::try_from(t.amount.0.clone()).unwrap_or(u128::MAX))
        .sum();
    checks.push(Check::eq(
        "restaking received them as rewards of the confirmation AVS",
        deposited,
        st.fees.forwarded,
    ));
    demo.fees_forwarded = st.fees.forwarded;
    Ok(checks)
}

/// Service 1 answers plain HTTP (as through an HTTP gateway) with certified responses.
fn http(demo: &mut Demo, service: Principal) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let root_key = demo.emu.root_key();
    for (url, code) in [
        ("/", 200u16),
        ("/status", 200),
        ("/records/0", 200),
        ("/no/such/page", 404),
    ] {
        let response = services::http_get(demo, service, url)?;
        let verified = services::verify_http(&root_key, demo.emu.time_nanos(), service, &response);
        let mut detail = format!(
            "{} {}, {} bytes",
            response.status_code().as_u16(),
            response
                .headers()
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map_or("", |(_, v)| v.as_str()),
            response.body().len()
        );
        let mut ok = response.status_code().as_u16() == code;
        match &verified {
            Ok(path) => detail.push_str(&format!(", certified at {path}")),
            Err(e) => {
                ok = false;
                detail.push_str(&format!(", {e:#}"));
            }
        }
        if url == "/records/0" {
            let json: serde_json::Value =
                serde_json::from_slice(response.body()).unwrap_or_default();
            ok &= json["status"] == "confirmed";
            detail.push_str(&format!(", status {}", json["status"]));
        }
        checks.push(Check::new(
            format!(
                "Service 1: GET {url} answers {code}, certified (verified as a boundary node does)"
            ),
            ok,
            detail,
        ));
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
