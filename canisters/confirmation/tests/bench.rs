//! Measurements of the hub on the emulator (instruction counts of the real Wasm, cycles burned
//! by the hub and the four nodes), with the targets of issue 3 asserted:
//!
//! ```sh
//! bash scripts/build.sh confirmation confirmation_node
//! cargo test -p confirmation --test bench -- --nocapture
//! ```
//!
//! `STRATROS_BENCH_LARGE=1000000` grows the large history (default 100,000 records on top of
//! the ~11,000 of the first phases).

mod common;

use std::time::Duration;

use common::*;
use confirmation::ConfigUpdate;
use stratros_confirmation::RecordInput;
use stratros_verify::verify_receipt;

const KEY_1_FEE: u128 = 26_153_846_153;

fn entry_instructions(suite: &Suite, mark: usize, entry: &str) -> Vec<u64> {
    suite.emu.executions()[mark..]
        .iter()
        .filter(|e| e.canister == suite.hub && e.entry.contains(entry))
        .map(|e| e.instructions)
        .collect()
}

fn total_cycles(suite: &Suite) -> u128 {
    let mut total = suite.emu.cycle_balance(suite.hub);
    for (node, _) in &suite.nodes {
        total += suite.emu.cycle_balance(*node);
    }
    total
}

/// Submits `n` records in calls of `per_call` (packed form); returns the submit instructions of
/// every call.
fn submit_many(suite: &mut Suite, next: &mut u64, n: u64, per_call: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut left = n;
    while left > 0 {
        let k = left.min(per_call);
        let inputs: Vec<RecordInput> = (*next..*next + k)
            .map(|i| record(i, format!("ref-{i}")))
            .collect();
        let mark = suite.emu.executions().len();
        suite
            .submit_packed(submitter(1), &inputs)
            .expect("accepted");
        out.extend(entry_instructions(suite, mark, "submit_packed"));
        *next += k;
        left -= k;
    }
    out
}

/// Seals everything pending (one batch) and runs until it is confirmed; returns the seal
/// instructions (the `seal_now` update), the batch's height, and the instructions of the hub's
/// reply callbacks meanwhile (each checks a node's signature).
fn seal_and_confirm(suite: &mut Suite) -> (u64, u64, u64) {
    let mark = suite.emu.executions().len();
    let height = suite.seal_now().expect("sealed");
    let seal = entry_instructions(suite, mark, "seal_now")
        .into_iter()
        .sum();
    let done = suite.run_until(Duration::from_secs(1), 30, |s| {
        s.batch(height).is_ok_and(|b| b.confirmations().len() == 4)
    });
    assert!(done, "batch {height} confirmed by all four nodes");
    let callbacks = entry_instructions(suite, mark, "reply callback")
        .into_iter()
        .sum();
    (seal, height, callbacks)
}

/// The most instructions one `get_receipt` query took over a spread of ids below `history`.
fn receipt_cost(suite: &mut Suite, history: u64) -> u64 {
    let anchors = anchors(&suite.emu);
    let mut worst = 0;
    for k in 0..10u64 {
        let id = (history - 1) * k / 9;
        let mark = suite.emu.executions().len();
        let receipt = suite.receipt(id).expect("receipt");
        worst = worst.max(entry_instructions(suite, mark, "get_receipt").iter().sum());
        verify_receipt(&receipt, &anchors, suite.now(), 300_000_000_000)
            .unwrap_or_else(|e| panic!("receipt {id}: {e}"));
    }
    worst
}

#[test]
fn bench_hub() {
    let large: u64 = std::env::var("STRATROS_BENCH_LARGE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let config = ConfigUpdate {
        max_batch_records: Some(100_000),
        max_batch_age_seconds: Some(86_400),
        max_records_per_call: Some(1_000),
        ..Default::default()
    };
    let mut suite = Suite::new("key_1", config, vec![submitter(1)]);
    let mut next = 0u64;

    // Cycles per confirmed record (hub + the four nodes, threshold fees included), at batch
    // sizes 1, 100 and 10,000 — batch size 1 is signing every record on its own.
    let mut cycles = Vec::new();
    let mut submit_per_record = 0f64;
    let mut seal_10k = (0u64, 0u64, 0u64);
    let mut receipt_1k = 0;
    let mut candid_per_record = 0f64;
    let mut confirm_callbacks = 0u64;
    for n in [1u64, 100, 10_000] {
        if n == 10_000 {
            // Bring the history to 1,000 records first and measure receipts there.
            // One Candid `submit` of 100 records, for comparison with the packed form.
            let inputs: Vec<RecordInput> = (next..next + 100)
                .map(|i| record(i, format!("ref-{i}")))
                .collect();
            let mark = suite.emu.executions().len();
            suite.submit(submitter(1), &inputs).expect("accepted");
            candid_per_record = entry_instructions(&suite, mark, "canister_update submit")
                .iter()
                .sum::<u64>() as f64
                / 100.0;
            next += 100;
            let fill = 1_000 - next;
            submit_many(&mut suite, &mut next, fill, 100);
            seal_and_confirm(&mut suite);
            receipt_1k = receipt_cost(&mut suite, next);
        }
        let before = total_cycles(&suite);
        let submits = submit_many(&mut suite, &mut next, n, 100);
        let (seal, height, callbacks) = seal_and_confirm(&mut suite);
        let spent = before - total_cycles(&suite);
        cycles.push((n, spent / u128::from(n)));
        if n == 10_000 {
            submit_per_record = submits.iter().sum::<u64>() as f64 / n as f64;
            let b = suite.batch(height).expect("batch");
            assert_eq!(b.header.leaf_count, 10_000);
            seal_10k = (seal, b.seal_instructions, b.seal_hash_instructions);
            confirm_callbacks = callbacks;
        }
    }

    // A large history: one batch of `large` records (the configured maximum by default).
    let history_small = next;
    let mut left = large;
    let mut largest_seal = (0u64, 0u64);
    while left > 0 {
        let k = left.min(100_000);
        submit_many(&mut suite, &mut next, k, 1_000);
        let (seal, _, _) = seal_and_confirm(&mut suite);
        largest_seal = largest_seal.max((k, seal));
        left -= k;
    }
    let receipt_large = receipt_cost(&mut suite, next);

    let (seal, seal_counted, seal_hashes) = seal_10k;
    let seal_per_leaf = seal as f64 / 10_000.0;
    let sha_ratio = seal_counted as f64 / seal_hashes.max(1) as f64;
    let largest_within_8b =
        (8_000_000_000f64 / (largest_seal.1 as f64 / largest_seal.0 as f64)) as u64;
    println!("--- confirmation hub (emulator instruction counts, real Wasm) ---");
    println!(
        "submit_packed, 100 records/call: {submit_per_record:>12.0} instructions/record (target <= 60,000)"
    );
    println!(
        "submit (Candid), 100 records/call: {candid_per_record:>10.0} instructions/record (target <= 60,000)"
    );
    println!(
        "seal, 10,000 leaves:             {seal_per_leaf:>12.0} instructions/leaf (target <= 40,000); {seal} in all"
    );
    println!(
        "  of the seal, SHA-256 of inner nodes: {seal_hashes} of {seal_counted} counted in the canister: ratio {sha_ratio:.2}"
    );
    println!(
        "seal, {} leaves:            {:>12} instructions ({:.0}/leaf)",
        largest_seal.0,
        largest_seal.1,
        largest_seal.1 as f64 / largest_seal.0 as f64
    );
    println!(
        "largest batch sealing within 8 B instructions: ~{largest_within_8b} leaves (configurable maximum 100,000)"
    );
    println!(
        "confirming a batch, the hub's 4 reply callbacks (each node's signature verified): {confirm_callbacks} instructions"
    );
    println!("get_receipt, history     1000:     {receipt_1k:>12} instructions (worst of 10)");
    let _ = history_small;
    println!(
        "get_receipt, history {next:>8}:     {receipt_large:>12} instructions (target <= 5,000,000, flat)"
    );
    println!("cycles per confirmed record, 4 schemes on key_1 ({KEY_1_FEE} per signature):");
    for (n, c) in &cycles {
        println!(
            "  batch size {n:>6}: {c:>16} cycles/record ({:.4}x signing each record)",
            *c as f64 / cycles[0].1 as f64
        );
    }

    assert!(
        submit_per_record <= 60_000.0,
        "submit_packed: {submit_per_record}"
    );
    assert!(
        candid_per_record <= 60_000.0,
        "submit (Candid): {candid_per_record}"
    );
    assert!(seal_per_leaf <= 40_000.0, "seal: {seal_per_leaf}");
    assert!(receipt_1k <= 5_000_000 && receipt_large <= 5_000_000);
    assert!(
        (receipt_large as f64) <= 1.5 * receipt_1k as f64,
        "get_receipt is flat: {receipt_1k} -> {receipt_large}"
    );
    assert!(
        largest_seal.1 <= 8_000_000_000,
        "the largest batch seals within a fifth of 40 B"
    );
    assert!(
        cycles[0].1 >= 4 * KEY_1_FEE,
        "a lone record pays four signatures"
    );
    assert!(
        cycles[2].1 * 1_000 < cycles[0].1,
        "batching divides the cost"
    );
}
