//! Measures the emulator itself (issue: foundation, "Measure"):
//! - the round trip of a small update call once the module is compiled;
//! - a 10-canister scenario with 1,000 inter-canister calls.
//!
//! Run from the workspace root after `scripts/build.sh probe`:
//!     cargo run --release -p ic-emulator --example emulator_bench
use candid::{Encode, Principal};
use ic_emulator::Emulator;
use std::time::Instant;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "out/probe.wasm".to_string());
    let wasm = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("cannot read {path} ({e}): run scripts/build.sh probe first"));
    let user = Principal::from_slice(&[7; 29]);
    let none: Option<String> = None;

    // Compile once (cached by hash for the rest of the process).
    let mut emu = Emulator::new();
    let start = Instant::now();
    let id = emu.create_canister();
    emu.install_canister(id, &wasm, Encode!(&none).expect("encode"), None)
        .expect("install");
    let first_install = start.elapsed();
    let start = Instant::now();
    let id2 = emu.create_canister();
    emu.install_canister(id2, &wasm, Encode!(&none).expect("encode"), None)
        .expect("install");
    let cached_install = start.elapsed();

    let arg = Encode!().expect("encode");
    for _ in 0..100 {
        emu.update_call(id, user, "increment", arg.clone())
            .expect("warm-up");
    }
    let n = 2_000;
    let start = Instant::now();
    for _ in 0..n {
        emu.update_call(id, user, "increment", arg.clone())
            .expect("increment");
    }
    let update = start.elapsed() / n;
    let instructions = emu.executions().last().map_or(0, |e| e.instructions);
    let start = Instant::now();
    for _ in 0..n {
        emu.query_call(id, user, "get_state", arg.clone())
            .expect("query");
    }
    let query = start.elapsed() / n;
    let heap = emu.canister_status(id).map_or(0, |s| s.memory_size);

    // The emulator's fixed cost per message: a hand-written canister with one
    // page of heap and no `canister_inspect_message`, whose update replies
    // with an empty message. The probe above pays, on top of executing its
    // Candid code, for snapshotting its ~3 MB of memory (and again for its
    // `canister_inspect_message`, which the IC also runs for ingress).
    let minimal = wat::parse_str(
        r#"(module
            (import "ic0" "msg_reply" (func $reply))
            (memory 1)
            (func (export "canister_update ping") call $reply))"#,
    )
    .expect("valid WAT");
    let tiny = emu.create_canister();
    emu.install_canister(tiny, &minimal, vec![], None)
        .expect("install");
    for _ in 0..100 {
        emu.update_call(tiny, user, "ping", vec![])
            .expect("warm-up");
    }
    let start = Instant::now();
    for _ in 0..n {
        emu.update_call(tiny, user, "ping", vec![]).expect("ping");
    }
    let minimal_update = start.elapsed() / n;

    // 10 canisters, 1,000 inter-canister calls (each call_increment is one call).
    let mut emu = Emulator::new();
    let ids: Vec<Principal> = (0..10)
        .map(|_| {
            let id = emu.create_canister();
            emu.install_canister(id, &wasm, Encode!(&none).expect("encode"), None)
                .expect("install");
            id
        })
        .collect();
    let start = Instant::now();
    for i in 0..1_000usize {
        let from = ids[i % 10];
        let to = ids[(i + 1) % 10];
        let reply = emu
            .update_call(
                from,
                user,
                "call_increment",
                Encode!(&to, &(i % 2 == 0)).expect("encode"),
            )
            .expect("call_increment");
        let value: Result<u64, String> = candid::decode_one(&reply).expect("decode");
        assert!(value.is_ok(), "{value:?}");
    }
    let scenario = start.elapsed();

    println!("first install (compile + init)      {first_install:>12.2?}");
    println!("install of a cached module          {cached_install:>12.2?}");
    println!(
        "small update round trip             {update:>12.2?}   (target <= 100 µs; {instructions} instructions)"
    );
    println!("canister memory (heap + stable)     {heap:>12} bytes");
    println!(
        "minimal update round trip           {minimal_update:>12.2?}   (the emulator's fixed cost per message)"
    );
    println!("small query round trip              {query:>12.2?}");
    println!("10 canisters, 1,000 calls           {scenario:>12.2?}   (target < 10 s)");
}
