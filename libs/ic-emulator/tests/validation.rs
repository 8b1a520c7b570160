//! Module validation as on the IC: what is refused, with which error.

use ic_emulator::{Emulator, ErrorCode, RejectCode, wasm};

fn wasm(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid WAT")
}

fn install(module: &[u8]) -> Result<(), ic_emulator::RejectResponse> {
    let mut emu = Emulator::new();
    let id = emu.create_canister();
    emu.install_canister(id, module, vec![], None)
}

fn assert_invalid(module: &[u8], needle: &str) {
    let err = install(module).expect_err("the module must be refused");
    assert_eq!(
        err.error_code,
        Some(ErrorCode::CanisterInvalidWasm),
        "{err}"
    );
    assert_eq!(err.reject_code, RejectCode::CanisterError);
    assert!(
        err.reject_message.contains(needle),
        "{}",
        err.reject_message
    );
}

#[test]
fn should_refuse_a_wasi_import() {
    let m = wasm(
        r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))) (memory 1))"#,
    );
    assert_invalid(
        &m,
        "Module imports function 'fd_write' from 'wasi_snapshot_preview1' that is not exported by the runtime",
    );
}

#[test]
fn should_refuse_a_wbindgen_import() {
    let m = wasm(
        r#"(module (import "__wbindgen_placeholder__" "__wbindgen_describe" (func (param i32))) (memory 1))"#,
    );
    assert_invalid(&m, "not exported by the runtime");
}

#[test]
fn should_refuse_an_unknown_ic0_function() {
    let m = wasm(r#"(module (import "ic0" "no_such_function" (func)) (memory 1))"#);
    assert_invalid(&m, "'no_such_function' from 'ic0'");
}

#[test]
fn should_refuse_an_ic0_import_with_the_wrong_signature() {
    let m = wasm(r#"(module (import "ic0" "msg_reply" (func (param i32))) (memory 1))"#);
    assert_invalid(&m, "wrong signature");
}

#[test]
fn should_refuse_an_entry_point_with_a_signature() {
    let m = wasm(r#"(module (func (export "canister_update f") (param i32)) (memory 1))"#);
    assert_invalid(&m, "Expected [] -> [] for 'canister_update f'");
}

#[test]
fn should_refuse_a_reserved_export_name() {
    let m = wasm(r#"(module (func (export "canister_bogus")) (memory 1))"#);
    assert_invalid(&m, "Exporting reserved function 'canister_bogus'");
}

#[test]
fn should_refuse_a_method_exported_as_update_and_query() {
    let m = wasm(
        r#"(module (func $f) (export "canister_update f" (func $f)) (export "canister_query f" (func $f)) (memory 1))"#,
    );
    assert_invalid(&m, "Duplicate function 'f'");
}

#[test]
fn should_refuse_bytes_that_are_not_wasm() {
    assert_invalid(b"definitely not wasm", "Failed to decode wasm module");
}

#[test]
fn should_refuse_a_module_over_the_size_limit() {
    let mut big = wasm("(module)");
    big.resize(wasm::MAX_WASM_MODULE_SIZE + 1, 0);
    assert_invalid(&big, "exceeds the limit");
}

#[test]
fn should_refuse_an_unscoped_icp_custom_section() {
    let mut m = wasm("(module (memory 1))");
    let name = b"icp:candid:service";
    m.push(0);
    m.push((1 + name.len()) as u8);
    m.push(name.len() as u8);
    m.extend_from_slice(name);
    assert_invalid(&m, "has no public/private scope");
}

#[test]
fn should_accept_a_gzipped_module_and_read_its_exports() {
    use std::io::Write;
    let m = wasm(
        r#"(module (memory 1) (func (export "canister_query q")) (func (export "canister_update u")) (func (export "canister_init")))"#,
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&m).unwrap();
    let gz = gz.finish().unwrap();
    let compiled = wasm::compile(&gz).expect("valid module");
    // The module hash is over the bytes as installed, compressed ones included (as the IC
    // reports it, and as a chunked install's `wasm_module_hash` names them).
    use sha2::Digest;
    assert_eq!(compiled.hash, <[u8; 32]>::from(sha2::Sha256::digest(&gz)));
    assert_ne!(compiled.hash, <[u8; 32]>::from(sha2::Sha256::digest(&m)));
    assert!(compiled.exports.init);
    assert!(compiled.exports.queries.contains("q"));
    assert!(compiled.exports.updates.contains("u"));
    assert!(install(&m).is_ok());
}

#[test]
fn should_run_the_start_function_and_trap_the_install_when_it_traps() {
    let m = wasm(r#"(module (memory 1) (func $s unreachable) (start $s))"#);
    let err = install(&m).expect_err("a trapping start function fails the install");
    assert_eq!(err.error_code, Some(ErrorCode::CanisterTrapped));
    assert!(
        err.reject_message.contains("unreachable"),
        "{}",
        err.reject_message
    );
}

#[test]
fn should_reject_calls_to_a_canister_without_a_module() {
    let mut emu = Emulator::new();
    let id = emu.create_canister();
    let err = emu
        .update_call(id, candid::Principal::anonymous(), "f", vec![])
        .unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterWasmModuleNotFound));
}

#[test]
fn should_reject_an_unknown_canister_and_an_unknown_method() {
    let mut emu = Emulator::new();
    let unknown = ic_emulator::canister_id_from_index(0x200_0999);
    let err = emu
        .update_call(unknown, candid::Principal::anonymous(), "f", vec![])
        .unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterNotFound));
    assert_eq!(err.reject_code, RejectCode::DestinationInvalid);
    let id = emu.create_canister();
    emu.install_canister(
        id,
        &wasm(r#"(module (memory 1) (func (export "canister_update u")))"#),
        vec![],
        None,
    )
    .unwrap();
    let err = emu
        .update_call(id, candid::Principal::anonymous(), "nope", vec![])
        .unwrap_err();
    assert_eq!(err.error_code, Some(ErrorCode::CanisterMethodNotFound));
    assert!(err.reject_message.contains("has no update method 'nope'"));
}
