//! Both ways of saving the heap for rollback (dirty pages, full copy) give the same
//! atomicity and the same instruction counts, also with many emulators in parallel threads.

use candid::Principal;
use ic_emulator::{Emulator, EmulatorConfig, HeapSnapshots};

/// Writes one value into pages 0, 1 and 3 of a 4-page heap; `state` reads them back
/// with the heap's size and the 4 bytes an argument copy may have written into page 1.
const CANISTER: &str = r#"(module
    (import "ic0" "msg_reply" (func $reply))
    (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
    (import "ic0" "msg_arg_data_size" (func $arg_size (result i32)))
    (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
    (import "ic0" "trap" (func $trap (param i32 i32)))
    (memory 4)
    (func $fill (param $v i32)
        (i32.store (i32.const 0) (local.get $v))
        (i32.store (i32.const 65536) (local.get $v))
        (i32.store (i32.const 196708) (local.get $v)))
    (func (export "canister_update bump")
        (call $fill (i32.add (i32.load (i32.const 0)) (i32.const 1)))
        (call $append (i32.const 0) (i32.const 4))
        (call $reply))
    (func (export "canister_update bump_then_trap")
        (call $fill (i32.add (i32.load (i32.const 0)) (i32.const 100)))
        (call $trap (i32.const 0) (i32.const 0)))
    (func (export "canister_update copy_arg_then_trap")
        (call $arg_copy (i32.const 65544) (i32.const 0) (call $arg_size))
        (call $trap (i32.const 0) (i32.const 0)))
    (func (export "canister_update grow_then_trap")
        (drop (memory.grow (i32.const 2)))
        (i32.store (i32.const 262144) (i32.const 7))
        (call $fill (i32.const 999))
        (call $trap (i32.const 0) (i32.const 0)))
    (func (export "canister_update grow")
        (drop (memory.grow (i32.const 1)))
        (call $fill (i32.add (i32.load (i32.const 0)) (i32.const 1)))
        (call $reply))
    (func (export "canister_query state")
        (i32.store (i32.const 2000) (i32.load (i32.const 0)))
        (i32.store (i32.const 2004) (i32.load (i32.const 65536)))
        (i32.store (i32.const 2008) (i32.load (i32.const 196708)))
        (i32.store (i32.const 2012) (memory.size))
        (i32.store (i32.const 2016) (i32.load (i32.const 65544)))
        (call $append (i32.const 2000) (i32.const 20))
        (call $reply)))"#;

fn user() -> Principal {
    Principal::from_slice(&[7; 29])
}

fn emulator(mode: HeapSnapshots) -> (Emulator, Principal) {
    let mut emu = Emulator::with_config(EmulatorConfig {
        heap_snapshots: mode,
        ..Default::default()
    });
    let id = emu.create_canister();
    let wasm = wat::parse_str(CANISTER).expect("valid WAT");
    emu.install_canister(id, &wasm, vec![], None)
        .expect("install");
    // Never a silent fallback: the mode asked for is the one used (Linux tracks pages).
    let expected = if cfg!(target_os = "linux") {
        mode
    } else {
        HeapSnapshots::FullCopy
    };
    assert_eq!(emu.heap_snapshots_of(id), Some(expected));
    (emu, id)
}

/// [value in pages 0, 1, 3; heap pages; the word at 65544]
fn state(emu: &mut Emulator, id: Principal) -> [u32; 5] {
    let bytes = emu.query_call(id, user(), "state", vec![]).expect("state");
    let word = |i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    [word(0), word(1), word(2), word(3), word(4)]
}

/// Every kind of write an execution can make, each rolled back by a trap; returns the
/// instructions of each execution.
fn scenario(mode: HeapSnapshots, rounds: u32) -> Vec<u64> {
    let (mut emu, id) = emulator(mode);
    for round in 1..=rounds {
        let reply = emu.update_call(id, user(), "bump", vec![]).expect("bump");
        assert_eq!(reply, round.to_le_bytes(), "{mode:?}");
        assert!(
            emu.update_call(id, user(), "bump_then_trap", vec![])
                .is_err()
        );
        assert!(
            emu.update_call(id, user(), "copy_arg_then_trap", vec![0xAB; 8])
                .is_err()
        );
        assert_eq!(state(&mut emu, id), [round, round, round, 4, 0], "{mode:?}");
    }
    // A trap after growing the heap: size and content as before.
    assert!(
        emu.update_call(id, user(), "grow_then_trap", vec![])
            .is_err()
    );
    assert_eq!(
        state(&mut emu, id),
        [rounds, rounds, rounds, 4, 0],
        "{mode:?}"
    );
    // Growth that commits, then the writes after it still roll back.
    emu.update_call(id, user(), "grow", vec![]).expect("grow");
    assert!(
        emu.update_call(id, user(), "bump_then_trap", vec![])
            .is_err()
    );
    let n = rounds + 1;
    assert_eq!(state(&mut emu, id), [n, n, n, 5, 0], "{mode:?}");
    assert!(
        emu.update_call(id, user(), "grow_then_trap", vec![])
            .is_err()
    );
    assert_eq!(state(&mut emu, id), [n, n, n, 5, 0], "{mode:?}");
    emu.executions().iter().map(|e| e.instructions).collect()
}

#[test]
fn should_roll_back_every_write_with_dirty_pages_and_with_full_copies_alike() {
    let dirty = scenario(HeapSnapshots::DirtyPages, 20);
    let copy = scenario(HeapSnapshots::FullCopy, 20);
    assert_eq!(dirty, copy, "the same instruction counts either way");
}

#[test]
fn should_keep_emulators_in_parallel_threads_apart() {
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let mode = if i % 2 == 0 {
                HeapSnapshots::DirtyPages
            } else {
                HeapSnapshots::FullCopy
            };
            std::thread::spawn(move || scenario(mode, 50))
        })
        .collect();
    let counts: Vec<Vec<u64>> = threads
        .into_iter()
        .map(|t| t.join().expect("no thread fails"))
        .collect();
    assert!(counts.windows(2).all(|w| w[0] == w[1]));
}
