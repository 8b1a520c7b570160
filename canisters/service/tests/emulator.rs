//! The real `service` Wasm with the real hub (`confirmation`) and its four nodes on the
//! project's IC emulator: Service 1 and Service 2 on two subnets submit records, the hub
//! confirms them, receipts verify offline, Service 2 reads Service 1's confirmed model
//! attestation, the hub is made unreachable and the records survive, an upgrade keeps
//! everything, and HTTP responses carry certificates that verify against the root key.
//!
//! Needs `out/service.wasm`, `out/confirmation.wasm`, `out/confirmation_node.wasm`:
//! `bash scripts/build.sh service confirmation confirmation_node`.

use std::time::Duration;

use base64::Engine;
use candid::{Encode, Principal};
use ic_cbor::{CertificateToCbor, HashTreeToCbor};
use ic_certificate_verification::VerifyCertificate;
use ic_certification::{Certificate, HashTree, LookupResult};
use ic_emulator::Emulator;
use ic_http_certification::{
    CERTIFICATE_HEADER_NAME, DefaultCelBuilder, DefaultResponseCertification, HttpRequest,
    HttpResponse, response_hash,
};
use service::{
    AddError, Arg, ConfirmedRecord, ReadError, ReceiptRelayError, RecordStatus, RecordView,
    TickReport, UpgradeArgs,
};
use sha2::{Digest, Sha256};
use stratros_confirmation::hub::{BatchError, HeaderCertificate, RecordProof};
use stratros_verify::verify_receipt;

mod common;

use common::*;

#[test]
fn services_on_two_subnets_confirm_records_and_share_them() {
    let mut t = Suite::new();
    let (s1, s2) = (t.s1, t.s2);
    assert_ne!(t.emu.get_subnet(s1), t.emu.get_subnet(s2));
    // Each reports the subnet it runs on (the registry records it for CMC placements).
    assert_eq!(t.status(s1).subnet, t.emu.get_subnet(s1));
    assert_eq!(t.status(s2).subnet, t.emu.get_subnet(s2));

    let mark = t.mark();
    let views = t
        .add(s1, owner(1), vec![model(1), dataset(2), inference(3)])
        .expect("service 1 adds");
    let (svc, hub) = (
        t.instructions_since(s1, mark),
        t.instructions_since(t.hub, mark),
    );
    println!(
        "add_records(3): service {svc} instructions, hub {hub} (per record: {} + {})",
        svc / 3,
        hub / 3
    );
    assert!(views.iter().all(|v| v.status == RecordStatus::Submitted));
    let mark = t.mark();
    let one = t.add(s1, owner(1), vec![inference(4)]).expect("one");
    println!(
        "add_records(1): service {} instructions, hub {}",
        t.instructions_since(s1, mark),
        t.instructions_since(t.hub, mark)
    );
    assert_eq!(one[0].id, 3);
    t.add(s2, owner(2), vec![inference(9)])
        .expect("service 2 adds");
    assert!(matches!(
        t.add(s2, stranger(), vec![inference(1)]),
        Err(AddError::NotWriter { .. })
    ));

    assert!(t.settle(s1), "service 1 confirms");
    assert!(t.settle(s2), "service 2 confirms");

    // Every record's receipt (from the hub, by the id the service stores) verifies offline and
    // commits to the service's content hash.
    let anchors = anchors(&t.emu);
    for id in 0..4 {
        let v = t.record(s1, id);
        assert!(matches!(v.status, RecordStatus::Confirmed { .. }), "{v:?}");
        let receipt = t
            .receipt(v.hub_record_id.expect("hub id"))
            .expect("receipt");
        assert_eq!(receipt.record.content_hash, v.content_hash);
        assert_eq!(receipt.record.submitter, s1);
        assert_eq!(receipt.record.reference, v.reference);
        verify_receipt(&receipt, &anchors, t.emu.time_nanos(), 300_000_000_000)
            .expect("receipt verifies");
    }

    // Service 2 reads Service 1's confirmed model attestation, checked with the hub.
    let read: Result<ConfirmedRecord, ReadError> = t.update(
        s2,
        owner(2),
        "read_confirmed",
        Encode!(&s1, &0u64).expect("e"),
    );
    let read = read.expect("confirmed read");
    assert_eq!(read.record.body, model(1));
    assert_eq!(read.service, s1);

    // The receipt relayed by the service (a replicated call to the hub's `get_record_proof`)
    // plus the hub's certificate and witness (a query) verify offline.
    for id in 0..4u64 {
        let proof: Result<RecordProof, ReceiptRelayError> =
            t.update(s1, stranger(), "get_receipt", Encode!(&id).expect("e"));
        let proof = proof.expect("relayed proof");
        let cert: Result<HeaderCertificate, BatchError> = t.query(
            t.hub,
            "get_header_certificate",
            Encode!(&proof.header.height).expect("e"),
        );
        let receipt = proof.into_receipt(cert.expect("certificate"));
        verify_receipt(&receipt, &anchors, t.emu.time_nanos(), 300_000_000_000)
            .expect("relayed receipt verifies");
    }
    let missing: Result<ConfirmedRecord, ReadError> = t.update(
        s2,
        owner(2),
        "read_confirmed",
        Encode!(&s1, &99u64).expect("e"),
    );
    assert!(matches!(missing, Err(ReadError::UnknownRecord { .. })));
}

#[test]
fn records_survive_an_unreachable_hub_and_an_upgrade() {
    let mut t = Suite::new();
    let s1 = t.s1;
    t.emu.hold_messages(t.hub);
    let id = t
        .emu
        .submit_call(
            s1,
            owner(1),
            "add_records",
            Encode!(&vec![model(1), model(2)]).expect("e"),
        )
        .expect("submitted");
    // The bounded-wait call to the hub times out.
    for _ in 0..80 {
        t.emu.run_until_idle();
        if t.emu.ingress_status(id).is_some() {
            break;
        }
        t.emu.advance_time(Duration::from_secs(1));
    }
    let reply = t.emu.await_call(id).expect("add_records answers");
    let views: Result<Vec<RecordView>, AddError> = candid::decode_one(&reply).expect("decode");
    let views = views.expect("stored");
    assert!(
        views
            .iter()
            .all(|v| matches!(v.status, RecordStatus::Pending { .. })),
        "{views:?}"
    );
    assert_eq!(t.status(s1).pending, 2);

    // Upgrade while pending; then the hub comes back: the timer submits, nothing is lost.
    let arg = Arg::Upgrade(Some(UpgradeArgs {
        hub: None,
        config: None,
    }));
    let wasm = t.service_wasm.clone();
    t.emu
        .upgrade_canister(s1, &wasm, Encode!(&arg).expect("e"), None)
        .expect("upgrade");
    t.emu.release_messages(t.hub);
    assert!(t.settle(s1), "records confirm after the hub is back");
    let r0 = t.record(s1, 0);
    let r1 = t.record(s1, 1);
    assert_ne!(r0.hub_record_id, r1.hub_record_id);
    let report: TickReport = t.update(s1, stranger(), "tick", Encode!().expect("e"));
    assert_eq!(report.still_pending, 0);
}

fn cel_hash_and_response_hash(response: &HttpResponse) -> (Vec<u8>, Vec<u8>) {
    let cel = DefaultCelBuilder::response_only_certification()
        .with_response_certification(DefaultResponseCertification::response_header_exclusions(
            vec![],
        ))
        .build();
    let cel_hash = Sha256::digest(cel.to_string().as_bytes()).to_vec();
    let mut bare = response.clone();
    bare.headers_mut()
        .retain(|(k, _)| !k.eq_ignore_ascii_case(CERTIFICATE_HEADER_NAME));
    (cel_hash, response_hash(&bare, &cel.response, None).to_vec())
}

fn header_field(value: &str, name: &str) -> Vec<u8> {
    let start = value
        .find(&format!("{name}=:"))
        .unwrap_or_else(|| panic!("no {name} in {value}"))
        + name.len()
        + 2;
    let end = start + value[start..].find(':').expect("closing colon");
    base64::engine::general_purpose::STANDARD
        .decode(&value[start..end])
        .expect("base64")
}

/// Verifies an HTTP response as a boundary node does (certificate v2, response-only CEL).
fn verify_http(emu: &Emulator, canister: Principal, response: &HttpResponse) {
    let value = response
        .headers()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(CERTIFICATE_HEADER_NAME))
        .map(|(_, v)| v.clone())
        .expect("IC-Certificate header");
    let cert = Certificate::from_cbor(&header_field(&value, "certificate")).expect("cert");
    cert.verify(
        canister.as_slice(),
        &emu.root_key(),
        &u128::from(emu.time_nanos()),
        &300_000_000_000,
    )
    .expect("certificate verifies against the root key");
    let certified = match cert.tree.lookup_path([
        b"canister".as_slice(),
        canister.as_slice(),
        b"certified_data",
    ]) {
        LookupResult::Found(v) => v.to_vec(),
        other => panic!("no certified data: {other:?}"),
    };
    let tree = HashTree::from_cbor(&header_field(&value, "tree")).expect("tree");
    assert_eq!(
        tree.digest().to_vec(),
        certified,
        "witness root = certified data"
    );
    let expr_path: Vec<String> =
        ciborium::from_reader(header_field(&value, "expr_path").as_slice()).expect("expr_path");
    let (cel_hash, resp_hash) = cel_hash_and_response_hash(response);
    let mut path: Vec<Vec<u8>> = expr_path.iter().map(|s| s.as_bytes().to_vec()).collect();
    path.push(cel_hash);
    path.push(vec![]);
    path.push(resp_hash);
    assert!(
        matches!(
            tree.lookup_path(path.iter().map(|p| p.as_slice())),
            LookupResult::Found(_)
        ),
        "the response's hash is in the certified tree at {expr_path:?}"
    );
}

#[test]
fn http_responses_are_certified() {
    let mut t = Suite::new();
    let s1 = t.s1;
    t.add(s1, owner(1), vec![model(1)]).expect("add");
    assert!(t.settle(s1));
    for (url, status) in [
        ("/", 200),
        ("/status", 200),
        ("/records/0", 200),
        ("/records/7", 404),
    ] {
        let request = HttpRequest::get(url.to_string()).build();
        let mark = t.mark();
        let response: HttpResponse = t.query(s1, "http_request", Encode!(&request).expect("e"));
        println!(
            "http_request {url}: {} instructions",
            t.instructions_since(s1, mark)
        );
        assert_eq!(response.status_code().as_u16(), status, "{url}");
        verify_http(&t.emu, s1, &response);
        if url == "/records/0" {
            let json: serde_json::Value = serde_json::from_slice(response.body()).expect("json");
            assert_eq!(json["status"], "confirmed");
        }
    }
}
