//! Instructions per record written through a service (service plus hub) and per certified
//! HTTP response, on the real Wasm.
//!
//! Emulator only: it reads the emulator's metered instruction count of every execution
//! (`Emulator::executions`), which no PocketIC API offers.
//!
//! ```sh
//! bash scripts/build.sh service confirmation confirmation_node icrc_ledger
//! cargo test -p service --test bench -- --nocapture
//! ```

mod common;

use candid::Encode;
use common::*;
use ic_http_certification::{HttpRequest, HttpResponse};
use service::RecordStatus;

fn records(n: usize, from: usize) -> Vec<service::RecordBody> {
    (from..from + n)
        .map(|i| match i % 3 {
            0 => model(i as u8),
            1 => dataset(i as u8),
            _ => inference(i as u8),
        })
        .collect()
}

/// Adds `n` records in one call; returns (service, hub) instructions of the whole call
/// (the ingress update, the hub's `submit`, the service's callback).
fn add(t: &mut Suite, n: usize, from: usize) -> (u64, u64) {
    let mark = t.mark();
    let views = t.add(t.s1, owner(1), records(n, from)).expect("added");
    assert!(
        views.iter().all(|v| v.status == RecordStatus::Submitted),
        "{views:?}"
    );
    (
        t.instructions_since(t.s1, mark),
        t.instructions_since(t.hub, mark),
    )
}

fn measure(t: &mut Suite, label: &str) -> Vec<(usize, u64, u64)> {
    let mut rows = Vec::new();
    let mut next = 0;
    for n in [1usize, 10, 50] {
        // Warm: the first call of a fresh heap builds caches (CEL expression, type table).
        if next == 0 {
            add(t, 1, 1000);
        }
        let (svc, hub) = add(t, n, next);
        next += n;
        println!(
            "{label}: add_records({n:>2}): service {svc:>11} + hub {hub:>9} = {:>11} \
             ({:>9} per record)",
            svc + hub,
            (svc + hub) / n as u64
        );
        rows.push((n, svc, hub));
    }
    rows
}

#[test]
fn bench_add_records_and_http() {
    let mut t = Suite::new();
    let rows = measure(&mut t, "no fees");
    let (n1, s1, h1) = rows[0];
    let (n50, s50, h50) = rows[2];
    let marginal = ((s50 + h50) - (s1 + h1)) / (n50 - n1) as u64;
    println!("no fees: marginal per record (50 vs 1): {marginal}");
    // A regression guard at the measured ~1.57 M per record (2.73 M before the heap record
    // cache and the pre-hashed page certification, ~4 M before incremental certification).
    // The goal of a few hundred K is not met yet: see the README.
    assert!(marginal < 1_900_000, "per record {marginal}");

    assert!(t.settle(t.s1));
    for url in ["/", "/status", "/records/0", "/records/9999"] {
        let request = HttpRequest::get(url.to_string()).build();
        let mark = t.mark();
        let response: HttpResponse = t.query(t.s1, "http_request", Encode!(&request).expect("e"));
        println!(
            "http_request {url}: {} instructions (status {})",
            t.instructions_since(t.s1, mark),
            response.status_code().as_u16()
        );
    }
}
