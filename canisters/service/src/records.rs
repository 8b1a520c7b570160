//! Records: validation, storage, forwarding to the hub, confirmation tracking, and reading
//! other services' confirmed records.

use candid::Principal;
use sha2::{Digest, Sha256};
use stratros_confirmation::Hash32;

use stratros_confirmation::hub::{ListBatchesArgs, MAX_BATCH_PAGE, RecordProof, SubmitError};
use stratros_confirmation::merkle::verify_proof;
use stratros_confirmation::{RecordInput, header_hash, leaf_hash};

use crate::runtime::{CallError, Runtime};
use crate::state::{Previous, mutate_state, read_state, reference};
use crate::storage::StoredRecord;
use crate::types::{
    AddError, ConfirmedRecord, ReadError, ReceiptRelayError, RecordBody, RecordStatus, RecordView,
    TickReport,
};

/// Domain separator of [`content_hash`].
pub const CONTENT_HASH_DOMAIN: &[u8] = b"stratros-service-record-v1\x00";

/// Pages of hub batches one scan reads at most.
const MAX_SCAN_PAGES: u32 = 5;

/// The hash the hub confirms for a record: SHA-256 of the domain separator and the Candid
/// encoding of the body (deterministic for a given value).
pub fn content_hash(body: &RecordBody) -> Hash32 {
    let bytes = crate::encoding::candid_body(body);
    let mut h = Sha256::new();
    h.update(CONTENT_HASH_DOMAIN);
    h.update(&bytes);
    Hash32(h.finalize().into())
}

fn check_field(index: usize, field: &str, len: usize, max: u32) -> Result<(), AddError> {
    if len > max as usize {
        return Err(AddError::FieldTooLarge {
            index: index as u64,
            field: field.to_string(),
            max,
            got: len as u64,
        });
    }
    Ok(())
}

fn validate(index: usize, body: &RecordBody, max: u32) -> Result<(), AddError> {
    match body {
        RecordBody::ModelAttestation {
            model_id,
            version,
            metadata,
            ..
        } => {
            check_field(index, "model_id", model_id.len(), max)?;
            check_field(index, "version", version.len(), max)?;
            check_field(index, "metadata", metadata.len(), max)
        }
        RecordBody::Dataset {
            licence, source, ..
        } => {
            check_field(index, "licence", licence.len(), max)?;
            check_field(index, "source", source.len(), max)
        }
        RecordBody::Inference {
            model,
            output,
            executor,
            ..
        } => {
            check_field(index, "model", model.len(), max)?;
            check_field(index, "output", output.as_ref().map_or(0, |o| o.len()), max)?;
            check_field(index, "executor", executor.len(), max)
        }
        RecordBody::Transaction { kind, payload } => {
            check_field(index, "kind", kind.len(), max)?;
            check_field(index, "payload", payload.len(), max)
        }
    }
}

/// Stores records (owner and writers only), then forwards them to the hub in one call.
/// The records are stored even if the hub cannot be reached: they stay `Pending` and a timer
/// retries them.
pub async fn add_records<R: Runtime>(
    rt: &R,
    bodies: Vec<RecordBody>,
) -> Result<Vec<RecordView>, AddError> {
    let caller = rt.caller();
    let ids = mutate_state(|s| {
        if !s.is_writer(&caller) {
            return Err(AddError::NotWriter { caller });
        }
        let config = s.config().clone();
        if bodies.is_empty() {
            return Err(AddError::EmptyBatch);
        }
        if bodies.len() > config.max_records_per_call as usize {
            return Err(AddError::TooManyRecords {
                max: config.max_records_per_call,
                got: bodies.len() as u64,
            });
        }
        for (i, b) in bodies.iter().enumerate() {
            validate(i, b, config.max_field_bytes)?;
        }
        let hub = s.meta().hub;
        let now = rt.time();
        let first = s.next_id();
        let records: Vec<StoredRecord> = bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| StoredRecord {
                id: first + i as u64,
                author: caller,
                created_at_nanos: now,
                content_hash: content_hash(&body),
                body,
                hub,
                hub_record_id: None,
                status: RecordStatus::Pending {
                    attempts: 0,
                    last_error: None,
                },
            })
            .collect();
        let ids: Vec<u64> = records.iter().map(|r| r.id).collect();
        s.insert(records);
        Ok(ids)
    })?;
    // The new records' pages are certified once, after the hub's answer (in the callback),
    // not also now: between the two, `/records/<id>` answers the certified 404.
    let mut report = TickReport::default();
    submit_pending(rt, &mut report).await;
    certify(rt);
    reschedule(rt);
    // Read from the heap: the records the callback just certified.
    Ok(read_state(|s| {
        ids.iter().filter_map(|id| s.view(*id)).collect()
    }))
}

fn input(r: &StoredRecord) -> RecordInput {
    RecordInput {
        content_hash: r.content_hash,
        kind: r.body.hub_kind().to_string(),
        reference: reference(r.id),
        payload: None,
    }
}

fn mark_failed(r: &mut StoredRecord, error: &str) {
    if let RecordStatus::Pending {
        attempts,
        last_error,
    } = &mut r.status
    {
        *attempts = attempts.saturating_add(1);
        *last_error = Some(error.to_string());
    }
}

/// Submits every pending record not already in a call, in batches of `max_records_per_call`.
/// The hub deduplicates by `reference`, so a retry after an unknown outcome never creates a
/// second hub record. A submission the hub refuses for lack of fee credit leaves its records
/// `Pending` (the reason in `last_error`), tops the credit up once, and goes on if that worked.
pub async fn submit_pending<R: Runtime>(rt: &R, report: &mut TickReport) {
    let mut topped_up = false;
    loop {
        // Taken (in flight) before any `await`: the message that stored them submits them.
        let (batch, mut hub) = mutate_state(|s| {
            let limit = s.config().max_records_per_call as usize;
            (s.take_pending(limit), s.meta().hub)
        });
        if batch.is_empty() {
            return;
        }
        // The hub's fee is learned (and the credit topped up) before a submission, not from
        // a refusal: a new service's first submission is not refused for lack of credit.
        if !topped_up && read_state(|s| s.fees().fee_unknown() || s.fees().wants_top_up()) {
            // If it worked, a refusal (e.g. `credit_records` 0) may still top up what it needs.
            let worked = crate::fees::top_up(rt, 0).await;
            certify(rt);
            topped_up = !worked;
            hub = read_state(|s| s.meta().hub);
        }
        let inputs: Vec<RecordInput> = batch.iter().map(input).collect();
        let ids: Vec<u64> = batch.iter().map(|r| r.id).collect();
        let result = rt.hub_submit(hub, inputs).await;
        let progressed: (bool, Option<u128>) = mutate_state(|s| {
            s.release(&ids);
            // Records re-read: an upgrade of the hub id or a concurrent update may have happened.
            let mut records: Vec<StoredRecord> =
                ids.iter().filter_map(|id| s.record(*id)).collect();
            let previous: Vec<Previous> = records.iter().map(Previous::of).collect();
            let mut short_of = None;
            let progressed = match result {
                Ok(Ok(submitted)) if submitted.len() == records.len() => {
                    let new = submitted.iter().filter(|s| !s.duplicate).count() as u64;
                    s.mutate_fees(|f| f.note_charged(new));
                    for (r, sub) in records.iter_mut().zip(submitted) {
                        r.hub = hub;
                        r.hub_record_id = Some(sub.id);
                        r.status = RecordStatus::Submitted;
                    }
                    report.submitted += records.len() as u64;
                    true
                }
                Ok(Err(SubmitError::InsufficientCredit { needed, available })) => {
                    let e = format!(
                        "the hub's fee credit does not cover these records (needs {needed}, \
                         has {available}): waiting for a top-up from the service's ledger account"
                    );
                    records.iter_mut().for_each(|r| mark_failed(r, &e));
                    report.errors.push(e);
                    short_of = Some(needed);
                    false
                }
                Ok(Ok(submitted)) => {
                    let e = format!(
                        "the hub answered {} ids for {} records",
                        submitted.len(),
                        records.len()
                    );
                    records.iter_mut().for_each(|r| mark_failed(r, &e));
                    report.errors.push(e);
                    false
                }
                Ok(Err(SubmitError::RecordTooLarge {
                    index,
                    field,
                    max,
                    got,
                })) => {
                    // Refused for good; the others are retried at once without it.
                    let reason = format!("the hub limits {field} to {max} bytes, got {got}");
                    if let Some(r) = records.get_mut(index as usize) {
                        r.status = RecordStatus::Refused {
                            reason: reason.clone(),
                        };
                    }
                    report.errors.push(reason);
                    true
                }
                Ok(Err(e)) => {
                    let e = format!("the hub refused the submission: {e:?}");
                    records.iter_mut().for_each(|r| mark_failed(r, &e));
                    report.errors.push(e);
                    false
                }
                Err(e) => {
                    let e = format!("cannot reach the hub: {e}");
                    records.iter_mut().for_each(|r| mark_failed(r, &e));
                    report.errors.push(e);
                    false
                }
            };
            s.update(previous.into_iter().zip(records).collect());
            (progressed, short_of)
        });
        certify(rt);
        match progressed {
            (true, _) => {}
            (false, Some(needed)) if !topped_up => {
                topped_up = true;
                let covered = crate::fees::top_up(rt, needed).await;
                certify(rt);
                if !covered {
                    return;
                }
            }
            (false, _) => return,
        }
    }
}

/// Reads the hub's batches from the scan height on and moves records to `Sealed` or
/// `Confirmed`. One scan at a time.
pub async fn scan_confirmations<R: Runtime>(rt: &R, report: &mut TickReport) {
    if !read_state(|s| s.has_unconfirmed()) || !mutate_state(|s| s.try_start_scan()) {
        return;
    }
    for _ in 0..MAX_SCAN_PAGES {
        let (hub, start) = read_state(|s| (s.meta().hub, s.meta().scan_height));
        let page = rt
            .hub_list_batches(
                hub,
                ListBatchesArgs {
                    start,
                    limit: MAX_BATCH_PAGE,
                },
            )
            .await;
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                report
                    .errors
                    .push(format!("cannot list the hub's batches: {e}"));
                break;
            }
        };
        let full = page.batches.len() as u64 == MAX_BATCH_PAGE;
        mutate_state(|s| {
            let mut next_scan = start;
            let mut all_confirmed_so_far = true;
            let mut changes = Vec::new();
            for batch in &page.batches {
                let h = &batch.header;
                for id in s.local_ids_for_hub_range(h.first_record_id, h.last_record_id) {
                    let Some(mut r) = s.record(id) else { continue };
                    if r.hub != hub {
                        continue;
                    }
                    let status = match batch.confirmed_at_nanos {
                        Some(at) => RecordStatus::Confirmed {
                            height: h.height,
                            header_hash: batch.header_hash,
                            confirmed_at_nanos: at,
                        },
                        None => RecordStatus::Sealed { height: h.height },
                    };
                    if r.status != status && !matches!(r.status, RecordStatus::Confirmed { .. }) {
                        if matches!(status, RecordStatus::Confirmed { .. }) {
                            report.newly_confirmed += 1;
                        }
                        let previous = Previous::of(&r);
                        r.status = status;
                        changes.push((previous, r));
                    }
                }
                if batch.confirmed_at_nanos.is_some() && all_confirmed_so_far {
                    next_scan = h.height + 1;
                } else {
                    all_confirmed_so_far = false;
                }
            }
            s.update(changes);
            s.set_scan_height(next_scan);
        });
        certify(rt);
        if !full || !read_state(|s| s.has_unconfirmed()) {
            break;
        }
    }
    mutate_state(|s| s.end_scan());
}

/// Certifies the pages changed by this message and sets the certified data to the new root.
pub fn certify<R: Runtime>(rt: &R) {
    if mutate_state(|s| s.certify_pages()) {
        rt.set_certified_data(&read_state(|s| s.certified_root()));
    }
}

/// Re-arms the timer while anything waits: pending submissions or unconfirmed records.
pub fn reschedule<R: Runtime>(rt: &R) {
    let (work, delay) = read_state(|s| {
        (
            s.has_pending()
                || s.has_unconfirmed()
                || s.fees().top_up.is_some()
                || s.fees().fee_unknown(),
            s.config().retry_seconds,
        )
    });
    if work {
        rt.schedule_tick(delay);
    }
}

/// The timer's work (also callable by anyone as `tick`): submit what is pending, then scan
/// the hub for confirmations.
pub async fn tick<R: Runtime>(rt: &R) -> TickReport {
    let mut report = TickReport::default();
    // With records pending, `submit_pending` tops up first; without, it is done here.
    if read_state(|s| !s.has_pending() && (s.fees().fee_unknown() || s.fees().wants_top_up())) {
        crate::fees::top_up(rt, 0).await;
        certify(rt);
    }
    submit_pending(rt, &mut report).await;
    scan_confirmations(rt, &mut report).await;
    report.still_pending = read_state(|s| s.status().pending);
    reschedule(rt);
    report
}

fn call_failed(canister: Principal, e: CallError) -> ReadError {
    ReadError::CallFailed {
        canister,
        reject_code: e.reject_code,
        message: e.message,
    }
}

/// Checks the hub's proof for a record another service (`service`) claims: the hub's record
/// is that service's record (submitter, reference, content hash), its leaf hash is the leaf of
/// that record, the Merkle path leads from the leaf to the batch's root, and the batch is the
/// claimed one (height, header hash).
pub fn check_proof(
    proof: &RecordProof,
    service: Principal,
    record: &RecordView,
    height: u64,
    claimed_header_hash: &Hash32,
) -> Result<(), String> {
    let r = &proof.record;
    if Some(r.id) != record.hub_record_id {
        return Err(format!("the hub's proof is for record {}", r.id));
    }
    if r.submitter != service || r.reference != record.reference {
        return Err("the hub's record was submitted by another service or reference".into());
    }
    if r.content_hash != record.content_hash {
        return Err("the hub's record has another content hash".into());
    }
    if leaf_hash(r) != proof.leaf_hash {
        return Err("the leaf hash is not the hash of the record".into());
    }
    let header = &proof.header;
    if !verify_proof(
        &header.merkle_root,
        &proof.leaf_hash,
        proof.leaf_index,
        header.leaf_count,
        &proof.proof,
    ) {
        return Err("the record is not a leaf of the batch's Merkle root".into());
    }
    if header.height != height
        || header_hash(header) != proof.header_hash
        || proof.header_hash != *claimed_header_hash
    {
        return Err(format!("batch {height} has another header at the hub"));
    }
    Ok(())
}

/// The hub's proof for local record `id` (leaf, Merkle path, header, confirmations), relayed:
/// with the hub's `get_header_certificate(height)` (a query) it is a full receipt.
pub async fn get_receipt<R: Runtime>(rt: &R, id: u64) -> Result<RecordProof, ReceiptRelayError> {
    let record = read_state(|s| s.record(id)).ok_or(ReceiptRelayError::UnknownRecord { id })?;
    let hub_id = match (&record.status, record.hub_record_id) {
        (RecordStatus::Confirmed { .. }, Some(hub_id)) => hub_id,
        (status, _) => {
            return Err(ReceiptRelayError::NotConfirmed {
                status: status.clone(),
            });
        }
    };
    match rt.hub_record_proof(record.hub, hub_id).await {
        Ok(Ok(proof)) => Ok(proof),
        Ok(Err(e)) => Err(ReceiptRelayError::Hub {
            message: format!("{e:?}"),
        }),
        Err(e) => Err(ReceiptRelayError::CallFailed {
            reject_code: e.reject_code,
            message: e.message,
        }),
    }
}

/// Reads record `id` of another service and checks, with this service's own hub, that it is
/// confirmed: the hub's proof shows the record (submitter, reference, content hash) as a leaf
/// of the claimed batch's Merkle root, the batch is confirmed (the hub serves proofs of
/// confirmed batches only) with the claimed header hash; and the content hash matches the
/// body.
pub async fn read_confirmed<R: Runtime>(
    rt: &R,
    service: Principal,
    id: u64,
) -> Result<ConfirmedRecord, ReadError> {
    let record = rt
        .service_get_record(service, id)
        .await
        .map_err(|e| call_failed(service, e))?
        .ok_or(ReadError::UnknownRecord { service, id })?;
    let hub = read_state(|s| s.meta().hub);
    if record.hub != hub {
        return Err(ReadError::OtherHub { hub: record.hub });
    }
    if content_hash(&record.body) != record.content_hash {
        return Err(ReadError::ContentHashMismatch);
    }
    let (height, header_hash) = match &record.status {
        RecordStatus::Confirmed {
            height,
            header_hash,
            ..
        } => (*height, *header_hash),
        other => {
            return Err(ReadError::NotConfirmed {
                status: other.clone(),
            });
        }
    };
    let hub_id = record.hub_record_id.ok_or_else(|| ReadError::HubMismatch {
        message: "a confirmed record without a hub record id".to_string(),
    })?;
    let proof = rt
        .hub_record_proof(hub, hub_id)
        .await
        .map_err(|e| call_failed(hub, e))?
        .map_err(|e| ReadError::HubMismatch {
            message: format!("the hub has no confirmed record {hub_id}: {e:?}"),
        })?;
    check_proof(&proof, service, &record, height, &header_hash)
        .map_err(|message| ReadError::HubMismatch { message })?;
    let confirmed_at_nanos = match record.status {
        RecordStatus::Confirmed {
            confirmed_at_nanos, ..
        } => confirmed_at_nanos,
        _ => 0,
    };
    Ok(ConfirmedRecord {
        service,
        record,
        header_hash,
        confirmed_at_nanos,
    })
}
