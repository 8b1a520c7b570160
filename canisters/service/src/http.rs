//! Certified HTTP: the status page (HTML at `/`, JSON at `/status`), one JSON page per record
//! at `/records/<id>`, and a certified 404 for every other path.
//!
//! Every response is built when the state it shows changes (in an update, callback or timer),
//! certified in an `HttpCertificationTree` (response-only CEL expression: the request does not
//! matter, every response header except `IC-Certificate` is certified), and the tree's root is
//! the canister's certified data. `http_request` only looks the response up and adds the
//! `IC-Certificate` header (certificate, witness, expression path), so a boundary node
//! verifies it against the subnet's signature.

use std::cell::RefCell;
use std::collections::BTreeMap;

use candid::Principal;

use ic_http_certification::utils::add_v2_certificate_header;
use ic_http_certification::{
    CERTIFICATE_EXPRESSION_HEADER_NAME, DefaultCelBuilder, DefaultResponseCertification,
    DefaultResponseOnlyCelExpression, HttpCertification, HttpCertificationPath,
    HttpCertificationTree, HttpCertificationTreeEntry, HttpResponse, StatusCode,
    filter_response_headers, response_headers_hash,
};

use serde::Serialize;
use sha2::{Digest, Sha256};
use stratros_confirmation::Hash32;

use crate::types::{RecordBody, RecordStatus, RecordView, ServiceStatus};

/// The path of the fallback (404) response: a wildcard over every path.
const NOT_FOUND_PATH: &str = "";

/// What a page is: its status code and content type. Every page of a kind has the same
/// headers, so their hash is computed once per heap ([`Certifier`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Json,
    Html,
    NotFound,
}

const KINDS: [Kind; 3] = [Kind::Json, Kind::Html, Kind::NotFound];

impl Kind {
    fn status(self) -> StatusCode {
        match self {
            Kind::Json | Kind::Html => StatusCode::OK,
            Kind::NotFound => StatusCode::NOT_FOUND,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Kind::Json | Kind::NotFound => "application/json",
            Kind::Html => "text/html; charset=utf-8",
        }
    }

    fn index(self) -> usize {
        match self {
            Kind::Json => 0,
            Kind::Html => 1,
            Kind::NotFound => 2,
        }
    }
}

fn cel() -> DefaultResponseOnlyCelExpression<'static> {
    DefaultCelBuilder::response_only_certification()
        .with_response_certification(DefaultResponseCertification::response_header_exclusions(
            vec![],
        ))
        .build()
}

/// The response of a page (without the `IC-Certificate` header).
fn response(kind: Kind, cel_text: &str, body: &[u8]) -> HttpResponse<'static> {
    HttpResponse::builder()
        .with_status_code(kind.status())
        .with_headers(vec![
            ("content-type".to_string(), kind.content_type().to_string()),
            ("cache-control".to_string(), "no-cache".to_string()),
            (
                CERTIFICATE_EXPRESSION_HEADER_NAME.to_string(),
                cel_text.to_string(),
            ),
        ])
        .with_body(body.to_vec())
        .build()
}

/// What certifying a page needs, computed once per heap: the CEL expression (text and hash)
/// and, per kind, the representation-independent hash of the certified headers (status
/// pseudo-header included). A page's response hash is then `SHA-256(headers hash ‖
/// SHA-256(body))`, as `ic-http-certification`'s `response_hash` computes it (a native test
/// checks it against `HttpCertification::response_only` for every kind).
struct Certifier {
    cel_text: String,
    cel_hash: [u8; 32],
    header_hashes: [[u8; 32]; 3],
}

impl Certifier {
    fn new() -> Certifier {
        let cel = cel();
        let cel_text = cel.to_string();
        let cel_hash: [u8; 32] = Sha256::digest(cel_text.as_bytes()).into();
        let header_hashes = KINDS.map(|kind| {
            let template = response(kind, &cel_text, &[]);
            let headers = filter_response_headers(&template, &cel.response);
            response_headers_hash(&u64::from(kind.status().as_u16()), &headers)
        });
        Certifier {
            cel_text,
            cel_hash,
            header_hashes,
        }
    }

    fn certify(&self, kind: Kind, body: &[u8]) -> HttpCertification {
        let body_hash = Sha256::digest(body);
        let mut h = Sha256::new();
        h.update(self.header_hashes[kind.index()]);
        h.update(body_hash);
        HttpCertification::response_only_prehashed(self.cel_hash, h.finalize().into())
    }
}

thread_local! {
    /// Built once per heap: every page has the same expression.
    static CERTIFIER: Certifier = Certifier::new();
}

struct Page {
    path: HttpCertificationPath<'static>,
    kind: Kind,
    body: Vec<u8>,
    certification: HttpCertification,
}

impl Page {
    fn new(path: HttpCertificationPath<'static>, kind: Kind, body: Vec<u8>) -> Page {
        let certification = CERTIFIER.with(|c| c.certify(kind, &body));
        Page {
            path,
            kind,
            body,
            certification,
        }
    }

    fn entry(&self) -> HttpCertificationTreeEntry<'_> {
        HttpCertificationTreeEntry::new(&self.path, self.certification)
    }

    fn response(&self) -> HttpResponse<'static> {
        CERTIFIER.with(|c| response(self.kind, &c.cel_text, &self.body))
    }
}

/// The certified responses and their tree.
pub struct CertifiedPages {
    tree: HttpCertificationTree,
    /// Exact request path -> page.
    pages: BTreeMap<String, Page>,
    not_found: Page,
}

impl Default for CertifiedPages {
    fn default() -> Self {
        let mut tree = HttpCertificationTree::default();
        let not_found = Page::new(
            HttpCertificationPath::wildcard(NOT_FOUND_PATH),
            Kind::NotFound,
            br#"{"error":"not found"}"#.to_vec(),
        );
        tree.insert(&not_found.entry());
        CertifiedPages {
            tree,
            pages: BTreeMap::new(),
            not_found,
        }
    }
}

impl CertifiedPages {
    fn put(&mut self, url: String, kind: Kind, body: Vec<u8>) {
        if self
            .pages
            .get(&url)
            .is_some_and(|old| old.kind == kind && old.body == body)
        {
            // Unchanged: certified as it is.
            return;
        }
        if let Some(old) = self.pages.remove(&url) {
            self.tree.delete(&old.entry());
        }
        let page = Page::new(HttpCertificationPath::exact(url.clone()), kind, body);
        self.tree.insert(&page.entry());
        self.pages.insert(url, page);
    }

    pub fn put_record(&mut self, record: &RecordView) {
        let body = serde_json::to_vec(&record_json(record))
            .unwrap_or_else(|e| panic!("BUG: cannot encode a record as JSON: {e}"));
        self.put(format!("/records/{}", record.id), Kind::Json, body);
    }

    pub fn put_status(&mut self, status: &ServiceStatus) {
        let json = serde_json::to_vec(status)
            .unwrap_or_else(|e| panic!("BUG: cannot encode the status as JSON: {e}"));
        self.put("/status".to_string(), Kind::Json, json);
        self.put(
            "/".to_string(),
            Kind::Html,
            status_html(status).into_bytes(),
        );
    }

    pub fn root_hash(&self) -> [u8; 32] {
        self.tree.root_hash()
    }

    /// The certified response for `url` (path and optional query), with its `IC-Certificate`
    /// header when a certificate is given (there is one only in non-replicated queries).
    pub fn serve(&self, url: &str, certificate: Option<&[u8]>) -> HttpResponse<'static> {
        let path = url.split(['?', '#']).next().unwrap_or("/");
        let path = if path.is_empty() { "/" } else { path };
        let page = self.pages.get(path).unwrap_or(&self.not_found);
        let mut response = page.response();
        if let Some(certificate) = certificate {
            match self.tree.witness(&page.entry(), path) {
                Ok(witness) => add_v2_certificate_header(
                    certificate,
                    &mut response,
                    &witness,
                    &page.path.to_expr_path(),
                ),
                Err(e) => panic!("BUG: no witness for {path}: {e}"),
            }
        }
        response
    }
}

#[derive(Serialize)]
struct ReceiptJson {
    hub: String,
    record_id: u64,
    how: &'static str,
}

/// The JSON document of a record: the record, and where its receipt is. A struct rather than
/// `serde_json::json!`: no intermediate `Value` tree (this runs for every record change).
#[derive(Serialize)]
struct RecordJson<'a> {
    id: u64,
    author: String,
    created_at_nanos: u64,
    kind: &'static str,
    body: &'a RecordBody,
    content_hash: &'a Hash32,
    reference: &'a str,
    hub: String,
    hub_record_id: Option<u64>,
    status: &'static str,
    status_detail: &'a RecordStatus,
    receipt: Option<ReceiptJson>,
}

/// `p.to_text()` (CRC-32 and base 32: tens of thousands of instructions), remembered for the
/// few principals every record page names (its author and the hub).
fn principal_text(p: &Principal) -> String {
    const REMEMBERED: usize = 8;
    thread_local! {
        static TEXTS: RefCell<Vec<(Principal, String)>> = const { RefCell::new(Vec::new()) };
    }
    TEXTS.with_borrow_mut(|texts| {
        if let Some((_, text)) = texts.iter().find(|(q, _)| q == p) {
            return text.clone();
        }
        let text = p.to_text();
        if texts.len() == REMEMBERED {
            texts.remove(0);
        }
        texts.push((*p, text.clone()));
        text
    })
}

fn record_json(r: &RecordView) -> RecordJson<'_> {
    let hub = principal_text(&r.hub);
    RecordJson {
        id: r.id,
        author: principal_text(&r.author),
        created_at_nanos: r.created_at_nanos,
        kind: r.body.hub_kind(),
        body: &r.body,
        content_hash: &r.content_hash,
        reference: &r.reference,
        hub: hub.clone(),
        hub_record_id: r.hub_record_id,
        status: status_name(&r.status),
        status_detail: &r.status,
        receipt: r.hub_record_id.map(|id| ReceiptJson {
            hub,
            record_id: id,
            how: "get_receipt(id) on this service relays the hub's proof; the hub's query \
                  get_header_certificate(height) adds the certificate; or query the hub's \
                  get_receipt(record_id); verify with `stratros verify`",
        }),
    }
}

pub fn status_name(s: &RecordStatus) -> &'static str {
    match s {
        RecordStatus::Pending { .. } => "pending",
        RecordStatus::Submitted => "submitted",
        RecordStatus::Sealed { .. } => "sealed",
        RecordStatus::Confirmed { .. } => "confirmed",
        RecordStatus::Refused { .. } => "refused",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn status_html(s: &ServiceStatus) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{name}</title></head><body>\
         <h1>{name}</h1><p>Stratros service of kind <code>{kind}</code>, owner <code>{owner}</code>, \
         hub <code>{hub}</code>.</p><table>\
         <tr><th>records</th><td>{records}</td></tr>\
         <tr><th>pending</th><td>{pending}</td></tr>\
         <tr><th>submitted</th><td>{submitted}</td></tr>\
         <tr><th>sealed</th><td>{sealed}</td></tr>\
         <tr><th>confirmed</th><td>{confirmed}</td></tr>\
         <tr><th>refused</th><td>{refused}</td></tr></table>\
         <h2>Hub fees</h2><table>\
         <tr><th>fee ledger</th><td>{ledger}</td></tr>\
         <tr><th>fee per record</th><td>{fee}</td></tr>\
         <tr><th>hub credit</th><td>{credit}</td></tr>\
         <tr><th>topped up</th><td>{topped_up}</td></tr>\
         <tr><th>top-up under way</th><td>{top_up}</td></tr>\
         <tr><th>last fee error</th><td>{fee_error}</td></tr></table>\
         <p>Records: <code>/records/&lt;id&gt;</code> (JSON). Status: <code>/status</code> (JSON).</p>\
         </body></html>",
        name = escape(&s.name),
        kind = escape(&s.kind),
        owner = s.owner,
        hub = s.hub,
        records = s.records,
        pending = s.pending,
        submitted = s.submitted,
        sealed = s.sealed,
        confirmed = s.confirmed,
        refused = s.refused,
        ledger = s.fees.ledger.map_or("none".to_string(), |l| l.to_text()),
        fee = s.fees.fee_per_record,
        credit = s.fees.hub_credit,
        topped_up = s.fees.topped_up,
        top_up = s
            .fees
            .top_up_in_progress
            .map_or("none".to_string(), |a| a.to_string()),
        fee_error = escape(s.fees.last_error.as_deref().unwrap_or("none")),
    )
}
