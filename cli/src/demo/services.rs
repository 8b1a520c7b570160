//! Typed calls to the demo's service canisters (created by the registry) and the check a
//! boundary node makes of a certified HTTP response.

use super::Demo;
use crate::emu;
use crate::types::service::{AddError, ReceiptRelayError, RecordBody, RecordView, ServiceStatus};
use crate::types::{BatchError, FeeAccount, HeaderCertificate, RecordProof};
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use candid::{Encode, Principal};
use ic_cbor::{CertificateToCbor, HashTreeToCbor};
use ic_certificate_verification::VerifyCertificate;
use ic_certification::{Certificate, HashTree, LookupResult};
use ic_http_certification::{
    CERTIFICATE_HEADER_NAME, DefaultCelBuilder, DefaultResponseCertification, HttpRequest,
    HttpResponse, response_hash,
};
use sha2::Digest;
use stratros_confirmation::Receipt;

/// The owner of both services: a registry controller, who creates them and writes to them.
pub fn owner() -> Principal {
    Principal::self_authenticating(b"stratros demo service owner")
}

/// Someone who is neither a writer of a service nor a submitter at the hub.
pub fn stranger() -> Principal {
    Principal::self_authenticating(b"stratros demo stranger")
}

/// The demo name of a service ("Service 1"), or its id.
pub fn name(demo: &Demo, service: Principal) -> String {
    match demo.services.iter().position(|s| *s == service) {
        Some(i) => format!("Service {}", i + 1),
        None => service.to_text(),
    }
}

/// `add_records` as `writer`; an error names the service and the refusal.
pub fn add_records(
    demo: &mut Demo,
    service: Principal,
    writer: Principal,
    bodies: Vec<RecordBody>,
) -> Result<Vec<RecordView>> {
    let r: Result<Vec<RecordView>, AddError> =
        emu::update(&mut demo.emu, service, writer, "add_records", (bodies,))?;
    r.map_err(|e| anyhow!("add_records on {}: {e:?}", name(demo, service)))
}

pub fn status(demo: &mut Demo, service: Principal) -> Result<ServiceStatus> {
    let (s,): (ServiceStatus,) = emu::query(&mut demo.emu, service, "get_status", ())?;
    Ok(s)
}

pub fn record(demo: &mut Demo, service: Principal, id: u64) -> Result<RecordView> {
    let (r,): (Option<RecordView>,) = emu::query(&mut demo.emu, service, "get_record", (id,))?;
    r.with_context(|| format!("{} has no record {id}", name(demo, service)))
}

/// Every record of `service`, in id order.
pub fn records(demo: &mut Demo, service: Principal) -> Result<Vec<RecordView>> {
    let total = status(demo, service)?.records;
    (0..total).map(|id| record(demo, service, id)).collect()
}

/// `submitter`'s fee account at the hub.
pub fn fee_account(demo: &mut Demo, submitter: Principal) -> Result<FeeAccount> {
    let hub = demo.hub.context("no hub deployed")?;
    let (a,): (FeeAccount,) =
        emu::query(&mut demo.emu, hub, "get_fee_account", (Some(submitter),))?;
    Ok(a)
}

/// A receipt relayed by `service` (`get_receipt`, an update: the hub's proof) completed with
/// the hub's certificate and witness of the header (`get_header_certificate`, a query).
pub fn relayed_receipt(demo: &mut Demo, service: Principal, id: u64) -> Result<Receipt> {
    let hub = demo.hub.context("no hub deployed")?;
    let r: Result<RecordProof, ReceiptRelayError> =
        emu::update(&mut demo.emu, service, stranger(), "get_receipt", (id,))?;
    let proof = r.map_err(|e| anyhow!("get_receipt {id} on {}: {e:?}", name(demo, service)))?;
    let (c,): (Result<HeaderCertificate, BatchError>,) = emu::query(
        &mut demo.emu,
        hub,
        "get_header_certificate",
        (proof.header.height,),
    )?;
    let c = c.map_err(|e| anyhow!("get_header_certificate {}: {e:?}", proof.header.height))?;
    Ok(proof.into_receipt(c))
}

/// `http_request` GET `url` on `service` (a query, as a boundary node sends it).
pub fn http_get(demo: &mut Demo, service: Principal, url: &str) -> Result<HttpResponse<'static>> {
    let request = HttpRequest::get(url.to_string()).build();
    let reply = demo
        .emu
        .query_call(
            service,
            Principal::anonymous(),
            "http_request",
            Encode!(&request)?,
        )
        .map_err(|e| anyhow!("http_request {url} on {service} was rejected: {e:?}"))?;
    candid::decode_one(&reply).with_context(|| format!("http_request {url}: bad reply"))
}

fn header_field(value: &str, name: &str) -> Result<Vec<u8>> {
    let start = value
        .find(&format!("{name}=:"))
        .with_context(|| format!("no {name} in the IC-Certificate header"))?
        + name.len()
        + 2;
    let end = start
        + value[start..]
            .find(':')
            .with_context(|| format!("{name} is not closed in the IC-Certificate header"))?;
    base64::engine::general_purpose::STANDARD
        .decode(&value[start..end])
        .with_context(|| format!("{name} is not base64"))
}

/// Verifies an HTTP response as a boundary node does (response verification v2, the
/// service's response-only CEL expression with no header excluded): the certificate against
/// the root key, the witness against the canister's certified data, and the response's hash
/// in the witness at the expression path. Returns the expression path.
pub fn verify_http(
    root_key: &[u8],
    now_nanos: u64,
    canister: Principal,
    response: &HttpResponse,
) -> Result<String> {
    let value = response
        .headers()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(CERTIFICATE_HEADER_NAME))
        .map(|(_, v)| v.clone())
        .context("no IC-Certificate header")?;
    let cert = Certificate::from_cbor(&header_field(&value, "certificate")?)
        .map_err(|e| anyhow!("certificate: {e}"))?;
    cert.verify(
        canister.as_slice(),
        root_key,
        &u128::from(now_nanos),
        &300_000_000_000,
    )
    .map_err(|e| anyhow!("the certificate does not verify against the root key: {e}"))?;
    let certified = match cert.tree.lookup_path([
        b"canister".as_slice(),
        canister.as_slice(),
        b"certified_data",
    ]) {
        LookupResult::Found(v) => v.to_vec(),
        other => bail!("the certificate has no certified data for {canister}: {other:?}"),
    };
    let tree =
        HashTree::from_cbor(&header_field(&value, "tree")?).map_err(|e| anyhow!("witness: {e}"))?;
    if tree.digest().to_vec() != certified {
        bail!("the witness's root is not the canister's certified data");
    }
    let expr_path: Vec<String> =
        ciborium::from_reader(header_field(&value, "expr_path")?.as_slice())
            .context("expr_path is not a CBOR list of text")?;
    let cel = DefaultCelBuilder::response_only_certification()
        .with_response_certification(DefaultResponseCertification::response_header_exclusions(
            vec![],
        ))
        .build();
    let cel_hash = sha2::Sha256::digest(cel.to_string().as_bytes()).to_vec();
    let mut bare = response.clone();
    bare.headers_mut()
        .retain(|(k, _)| !k.eq_ignore_ascii_case(CERTIFICATE_HEADER_NAME));
    let resp_hash = response_hash(&bare, &cel.response, None).to_vec();
    let mut path: Vec<Vec<u8>> = expr_path.iter().map(|s| s.as_bytes().to_vec()).collect();
    path.push(cel_hash);
    path.push(vec![]);
    path.push(resp_hash);
    match tree.lookup_path(path.iter().map(|p| p.as_slice())) {
        LookupResult::Found(_) => Ok(expr_path.join("/")),
        other => bail!("the response's hash is not in the witness at {expr_path:?}: {other:?}"),
    }
}
