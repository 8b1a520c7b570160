//! The real `confirmation_node` Wasm: one node per scheme, signatures checked offline with
//! stratros-verify.
//!
//! The scenarios run on the emulator, and on PocketIC too when `POCKET_IC_BIN` is set
//! (`ic_testkit::backends_for_test`). Two checks need the emulator's own powers and run on
//! it only (see their doc comments): that each node's key is the one derived from the
//! master public keys, with the instructions each signature costs, and the node's
//! behaviour when its cycle balance is set below what it needs.
//!
//! Needs `out/confirmation_node.wasm`: `bash scripts/build.sh confirmation_node`.

use candid::{CandidType, Encode, Principal};
use confirmation_node::{
    Arg, GetLogArgs, InitArgs, LogEntry, LogPage, NodeInfo, SignError, SignResponse, UpgradeArgs,
};
use ic_certification::HashTree;
use ic_emulator::Emulator;
use ic_testkit::{
    CanisterSpec, EmulatorBackend, IcBackend, IcBackendExt, InstallMode, backends_for_test,
};
use stratros_confirmation::{
    BatchHeader, Blob, Hash32, Scheme, header_hash, header_signing_digest,
};
use stratros_verify::{MasterKey, TrustAnchors, verify_signature};

const KEY_NAME: &str = "dfx_test_key";

fn wasm() -> Vec<u8> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../out/confirmation_node.wasm");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nbuild it first, from the workspace root: \
             bash scripts/build.sh confirmation_node",
            path.display()
        )
    })
}

fn hub() -> Principal {
    Principal::self_authenticating(b"stratros test hub")
}

fn stranger() -> Principal {
    Principal::self_authenticating(b"somebody else")
}

fn anchors(emu: &Emulator) -> TrustAnchors {
    let master_keys = emu
        .keys()
        .master_public_keys()
        .into_iter()
        .map(|info| MasterKey {
            scheme: *Scheme::ALL
                .iter()
                .find(|s| s.name() == info.scheme)
                .unwrap_or_else(|| panic!("unknown scheme {}", info.scheme)),
            key_name: info.key_name,
            public_key: Blob(hex::decode(info.public_key_hex).expect("hex")),
            chain_code: info
                .chain_code_hex
                .map(|c| Blob(hex::decode(c).expect("hex"))),
        })
        .collect();
    TrustAnchors {
        root_key: Blob(emu.root_key()),
        master_keys,
    }
}

fn header(height: u64, prev: Hash32, root: u8) -> BatchHeader {
    BatchHeader {
        hub: hub(),
        height,
        prev_header_hash: prev,
        merkle_root: Hash32([root; 32]),
        leaf_count: 1,
        first_record_id: height,
        last_record_id: height,
        start_time_nanos: 1,
        end_time_nanos: 2,
        quorum_policy_hash: Hash32([3; 32]),
    }
}

fn update<T: CandidType + for<'de> serde::Deserialize<'de>>(
    ic: &dyn IcBackend,
    node: Principal,
    sender: Principal,
    method: &str,
    arg: Vec<u8>,
) -> T {
    let bytes = ic
        .update_call(node, Some(sender), method, arg)
        .unwrap_or_else(|e| panic!("{method} was rejected on {}: {e}", ic.name()));
    candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: bad reply: {e}"))
}

fn query<T: CandidType + for<'de> serde::Deserialize<'de>>(
    ic: &dyn IcBackend,
    node: Principal,
    method: &str,
    arg: Vec<u8>,
) -> T {
    let bytes = ic
        .query_call(node, Some(stranger()), method, arg)
        .unwrap_or_else(|e| panic!("{method} was rejected on {}: {e}", ic.name()));
    candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: bad reply: {e}"))
}

fn sign(ic: &dyn IcBackend, node: Principal, h: &BatchHeader) -> Result<SignResponse, SignError> {
    update(ic, node, hub(), "sign_header", Encode!(h).expect("encode"))
}

fn install_node(ic: &dyn IcBackend, wasm: &[u8], scheme: Scheme) -> Principal {
    let node = ic
        .create_canister(&CanisterSpec::default())
        .expect("create");
    let arg = Arg::Init(InitArgs {
        scheme,
        key_name: KEY_NAME.into(),
        hub: hub(),
    });
    ic.install(
        node,
        InstallMode::Install,
        wasm.to_vec(),
        Encode!(&arg).expect("encode"),
        None,
    )
    .unwrap_or_else(|e| panic!("install {scheme} on {}: {e}", ic.name()));
    // The init timer fetches the public key.
    ic.run_until_idle();
    node
}

fn upgrade(ic: &dyn IcBackend, node: Principal, wasm: &[u8], arg: Vec<u8>) -> Result<(), String> {
    ic.upgrade_encoded(node, wasm.to_vec(), arg, None)
        .map_err(|e| e.to_string())
}

/// Instructions the node spent between two points (update, callbacks, timers).
fn instructions_since(emu: &Emulator, node: Principal, mark: usize) -> u64 {
    emu.executions()[mark..]
        .iter()
        .filter(|e| e.canister == node)
        .map(|e| e.instructions)
        .sum()
}

/// A page of the log, checked as a client checks it: the witness's root is the certified
/// data in the certificate, and every entry is in the witness.
fn certified_page(ic: &dyn IcBackend, node: Principal, start: u64, limit: u64) -> LogPage {
    let page: LogPage = query(
        ic,
        node,
        "get_log",
        Encode!(&GetLogArgs { start, limit }).expect("encode"),
    );
    let tree: HashTree = ciborium::from_reader(page.witness.as_slice()).expect("witness is CBOR");
    let certificate = page
        .certificate
        .as_ref()
        .expect("a query returns the certificate");
    assert_eq!(
        Some(tree.digest().to_vec()),
        ic_testkit::certified_data(certificate.as_slice(), node),
        "the witness's root is the node's certified data"
    );
    for entry in &page.entries {
        let hash = confirmation_node::log::entry_hash(entry);
        assert_eq!(
            tree.lookup_path([b"log".as_slice(), &entry.index.to_be_bytes()]),
            ic_certification::LookupResult::Found(&hash[..]),
        );
    }
    page
}

#[test]
fn should_sign_verifiably_with_every_scheme_and_keep_its_promises() {
    let wasm = wasm();
    for ic in backends_for_test("should_sign_verifiably_with_every_scheme_and_keep_its_promises") {
        let ic = &*ic;
        for scheme in Scheme::ALL {
            let node = install_node(ic, &wasm, scheme);
            let info: NodeInfo = query(ic, node, "node_info", Encode!().expect("encode"));
            assert_eq!((info.scheme, info.hub, info.log_length), (scheme, hub(), 0));
            let key = info
                .public_key
                .unwrap_or_else(|| panic!("{scheme}: the init timer fetched the key"))
                .0;

            // A valid signature over the signing digest, for the node's key.
            let h0 = header(0, Hash32::ZERO, 1);
            let first = sign(ic, node, &h0).expect("signs");
            assert!(first.newly_signed);
            assert_eq!(first.confirmation.public_key.0, key);
            let digest = header_signing_digest(scheme, &node, &h0);
            verify_signature(
                scheme,
                &key,
                &digest,
                first.confirmation.signature.as_slice(),
            )
            .unwrap_or_else(|e| panic!("{scheme} signature does not verify: {e:?}"));

            // Only the hub.
            let refused: Result<SignResponse, SignError> = update(
                ic,
                node,
                stranger(),
                "sign_header",
                Encode!(&h0).expect("encode"),
            );
            assert_eq!(
                refused,
                Err(SignError::NotHub {
                    caller: stranger(),
                    hub: hub()
                })
            );

            // Same header: same signature.
            let again = sign(ic, node, &h0).expect("idempotent");
            assert_eq!(again.confirmation, first.confirmation);
            assert!(!again.newly_signed);

            // Another header for the same height: refused, with what was signed.
            match sign(ic, node, &header(0, Hash32::ZERO, 2)) {
                Err(SignError::AlreadySignedOtherHeader { log_index, signed }) => {
                    assert_eq!(log_index, 0);
                    assert_eq!(signed.header, h0);
                    assert_eq!(signed.signature, first.confirmation.signature);
                }
                other => panic!("{scheme}: expected a refusal, got {other:?}"),
            }

            let h1 = header(1, header_hash(&h0), 3);
            let second = sign(ic, node, &h1).expect("signs height 1");
            assert_eq!(second.log_index, 1);

            // Upgrade: the log, the certified data and the refusals survive.
            let before = certified_page(ic, node, 0, 10);
            upgrade(
                ic,
                node,
                &wasm,
                Encode!(&Arg::Upgrade(Some(UpgradeArgs { hub: None }))).expect("encode"),
            )
            .expect("upgrades");
            let after = certified_page(ic, node, 0, 10);
            assert_eq!(after.entries, before.entries);
            assert_eq!(after.total, 2);
            let again = sign(ic, node, &h0).expect("idempotent after upgrade");
            assert_eq!(again.confirmation, first.confirmation);
            assert!(matches!(
                sign(ic, node, &header(1, header_hash(&h0), 9)),
                Err(SignError::AlreadySignedOtherHeader { log_index: 1, .. })
            ));
            let entry: Option<LogEntry> = query(
                ic,
                node,
                "get_signed",
                Encode!(&hub(), &1u64).expect("encode"),
            );
            assert_eq!(entry.map(|e| e.header), Some(h1.clone()));
        }
    }
}

/// Emulator only: the master public keys (to derive each node's key offline, as
/// `stratros verify` does) and per-execution instruction counts are the emulator's; PocketIC
/// exposes neither.
#[test]
fn should_use_the_key_derived_from_the_master_keys_and_report_instructions() {
    let wasm = wasm();
    let backend = EmulatorBackend::new();
    let ic: &dyn IcBackend = &backend;
    let anchors = anchors(&backend.emulator().borrow());
    let mut report = Vec::new();
    let mut repeats = Vec::new();
    for scheme in Scheme::ALL {
        let node = install_node(ic, &wasm, scheme);
        let info: NodeInfo = query(ic, node, "node_info", Encode!().expect("encode"));
        let derived = anchors
            .derive_node_key(scheme, KEY_NAME, &node)
            .expect("derives");
        assert_eq!(
            info.public_key.as_ref().map(|k| &k.0),
            Some(&derived),
            "{scheme}"
        );
        let h0 = header(0, Hash32::ZERO, 1);
        let mark = backend.emulator().borrow().executions().len();
        let first = sign(ic, node, &h0).expect("signs");
        report.push((
            scheme,
            instructions_since(&backend.emulator().borrow(), node, mark),
        ));
        assert_eq!(first.confirmation.public_key.0, derived);

        // Same header: same signature, no threshold call.
        let mark = backend.emulator().borrow().executions().len();
        let again = sign(ic, node, &h0).expect("idempotent");
        assert_eq!(again.confirmation, first.confirmation);
        let emu = backend.emulator().borrow();
        repeats.push((scheme, instructions_since(&emu, node, mark)));
        assert!(
            emu.executions()[mark..]
                .iter()
                .all(|e| !e.entry.contains("callback")),
            "a repeat makes no call"
        );
    }
    for (scheme, instructions) in report {
        println!("sign_header {scheme:>16}: {instructions:>10} instructions (update + callback)");
    }
    for (scheme, instructions) in repeats {
        println!("sign_header {scheme:>16}: {instructions:>10} instructions (repeat, stored)");
    }
}

/// Emulator only: the scenario sets the node's cycle balance below what it needs
/// (`Emulator::set_cycle_balance`); PocketIC can only add cycles.
#[test]
fn should_refuse_to_sign_without_cycles_and_record_nothing() {
    let wasm = wasm();
    let backend = EmulatorBackend::new();
    let ic: &dyn IcBackend = &backend;
    for scheme in Scheme::ALL {
        let node = install_node(ic, &wasm, scheme);
        let h0 = header(0, Hash32::ZERO, 1);
        sign(ic, node, &h0).expect("signs");
        let h1 = header(1, header_hash(&h0), 3);
        sign(ic, node, &h1).expect("signs height 1");

        // The emulator checks `freezing limit + 40 B instructions` before it runs an update
        // but does not deduct that prepayment from the liquid balance the update sees, so
        // inside an update the liquid balance always exceeds every threshold fee (at most
        // 26 B cycles) and the node's own `InsufficientCycles` check (tested natively:
        // `should_refuse_with_insufficient_cycles_before_calling`) cannot trigger here. What
        // the emulator can show: a node too poor to run is refused and nothing is recorded.
        backend
            .emulator()
            .borrow_mut()
            .set_cycle_balance(node, 1_000_000_000);
        let h2 = header(2, header_hash(&h1), 4);
        let poor = ic.update_call(
            node,
            Some(hub()),
            "sign_header",
            Encode!(&h2).expect("encode"),
        );
        assert!(
            poor.is_err(),
            "{scheme}: a node without cycles must not sign"
        );
        // Enough to run an update (the emulator, like the IC, withdraws the
        // 40 B-instruction prepayment first) but not to pay for a signature:
        // the node says so with its typed error before any threshold call.
        backend
            .emulator()
            .borrow_mut()
            .set_cycle_balance(node, 50_000_000_000);
        match sign(ic, node, &h2) {
            Err(SignError::InsufficientCycles {
                available,
                required,
            }) => {
                assert!(available < required, "{scheme}: {available} < {required}");
            }
            other => panic!("{scheme}: expected InsufficientCycles, got {other:?}"),
        }
        backend
            .emulator()
            .borrow_mut()
            .set_cycle_balance(node, 100_000_000_000_000);
        let page = certified_page(ic, node, 0, 10);
        assert_eq!(page.total, 2, "nothing was recorded");
        assert_eq!(sign(ic, node, &h2).expect("signs").log_index, 2);
    }
}

#[test]
fn should_refuse_install_with_upgrade_argument_or_unknown_key() {
    let wasm = wasm();
    for ic in backends_for_test("should_refuse_install_with_upgrade_argument_or_unknown_key") {
        let install = |node, arg: &Arg| {
            ic.install(
                node,
                InstallMode::Install,
                wasm.clone(),
                Encode!(arg).expect("encode"),
                None,
            )
        };
        let node = ic
            .create_canister(&CanisterSpec::default())
            .expect("create");
        assert!(install(node, &Arg::Upgrade(None)).is_err());
        let unknown = Arg::Init(InitArgs {
            scheme: Scheme::EcdsaSecp256k1,
            key_name: "no_such_key".into(),
            hub: hub(),
        });
        assert!(install(node, &unknown).is_err());
        let good = Arg::Init(InitArgs {
            scheme: Scheme::EcdsaSecp256k1,
            key_name: KEY_NAME.into(),
            hub: hub(),
        });
        install(node, &good).expect("installs");
        let init_again = Encode!(&good).expect("encode");
        assert!(upgrade(&*ic, node, &wasm, init_again).is_err());
    }
}

#[test]
fn should_refuse_concurrent_request_for_height_being_signed() {
    let wasm = wasm();
    for ic in backends_for_test("should_refuse_concurrent_request_for_height_being_signed") {
        let node = install_node(&*ic, &wasm, Scheme::SchnorrBip340);
        let h0 = header(0, Hash32::ZERO, 1);
        let arg = |h: &BatchHeader| Encode!(h).expect("encode");
        let first = ic
            .submit_call(node, Some(hub()), "sign_header", arg(&h0))
            .expect("submitted");
        let second = ic
            .submit_call(
                node,
                Some(hub()),
                "sign_header",
                arg(&header(0, Hash32::ZERO, 2)),
            )
            .expect("submitted");
        let decode = |bytes: Vec<u8>| -> Result<SignResponse, SignError> {
            candid::decode_one(&bytes).expect("reply decodes")
        };
        let second = decode(ic.await_call(second).expect("replied"));
        assert_eq!(
            second,
            Err(SignError::SigningInProgress {
                height: 0,
                header_hash: header_hash(&h0)
            })
        );
        let first = decode(ic.await_call(first).expect("replied")).expect("signs");
        assert_eq!(first.log_index, 0);
    }
}
