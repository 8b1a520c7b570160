//! The real `confirmation_node` Wasm on the project's IC emulator: one node per scheme,
//! signatures checked offline with stratros-verify against keys derived from the emulator's
//! master public keys.
//!
//! Needs `out/confirmation_node.wasm`: `bash scripts/build.sh confirmation_node`.

use candid::{CandidType, Encode, Principal};
use confirmation_node::{
    Arg, GetLogArgs, InitArgs, LogEntry, LogPage, NodeInfo, SignError, SignResponse, UpgradeArgs,
};
use ic_certification::HashTree;
use ic_emulator::Emulator;
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
    emu: &mut Emulator,
    node: Principal,
    sender: Principal,
    method: &str,
    arg: Vec<u8>,
) -> T {
    let bytes = emu
        .update_call(node, sender, method, arg)
        .unwrap_or_else(|e| panic!("{method} was rejected: {e:?}"));
    candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: bad reply: {e}"))
}

fn query<T: CandidType + for<'de> serde::Deserialize<'de>>(
    emu: &mut Emulator,
    node: Principal,
    method: &str,
    arg: Vec<u8>,
) -> T {
    let bytes = emu
        .query_call(node, stranger(), method, arg)
        .unwrap_or_else(|e| panic!("{method} was rejected: {e:?}"));
    candid::decode_one(&bytes).unwrap_or_else(|e| panic!("{method}: bad reply: {e}"))
}

fn sign(emu: &mut Emulator, node: Principal, h: &BatchHeader) -> Result<SignResponse, SignError> {
    update(emu, node, hub(), "sign_header", Encode!(h).expect("encode"))
}

fn install_node(emu: &mut Emulator, wasm: &[u8], scheme: Scheme) -> Principal {
    let node = emu.create_canister();
    let arg = Arg::Init(InitArgs {
        scheme,
        key_name: KEY_NAME.into(),
        hub: hub(),
    });
    emu.install_canister(node, wasm, Encode!(&arg).expect("encode"), None)
        .unwrap_or_else(|e| panic!("install {scheme}: {e:?}"));
    // The init timer fetches the public key.
    emu.run_until_idle();
    node
}

/// Instructions the node spent between two points (update, callbacks, timers).
fn instructions_since(emu: &Emulator, node: Principal, mark: usize) -> u64 {
    emu.executions()[mark..]
        .iter()
        .filter(|e| e.canister == node)
        .map(|e| e.instructions)
        .sum()
}

fn certified_page(emu: &mut Emulator, node: Principal, start: u64, limit: u64) -> LogPage {
    let page: LogPage = query(
        emu,
        node,
        "get_log",
        Encode!(&GetLogArgs { start, limit }).expect("encode"),
    );
    let tree: HashTree = ciborium::from_reader(page.witness.as_slice()).expect("witness is CBOR");
    assert_eq!(
        tree.digest().to_vec(),
        emu.certified_data(node),
        "the witness's root is the node's certified data"
    );
    assert!(
        page.certificate.is_some(),
        "a query returns the certificate"
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
    let mut emu = Emulator::new();
    let anchors = anchors(&emu);
    let mut report = Vec::new();
    let mut repeats = Vec::new();

    for scheme in Scheme::ALL {
        let node = install_node(&mut emu, &wasm, scheme);
        let info: NodeInfo = query(&mut emu, node, "node_info", Encode!().expect("encode"));
        let derived = anchors
            .derive_node_key(scheme, KEY_NAME, &node)
            .expect("derives");
        assert_eq!(
            info.public_key.as_ref().map(|k| &k.0),
            Some(&derived),
            "{scheme}"
        );
        assert_eq!((info.scheme, info.hub, info.log_length), (scheme, hub(), 0));

        // A valid signature over the signing digest, for the key derived for this node.
        let h0 = header(0, Hash32::ZERO, 1);
        let mark = emu.executions().len();
        let first = sign(&mut emu, node, &h0).expect("signs");
        report.push((scheme, instructions_since(&emu, node, mark)));
        assert!(first.newly_signed);
        assert_eq!(first.confirmation.public_key.0, derived);
        let digest = header_signing_digest(scheme, &node, &h0);
        verify_signature(
            scheme,
            &derived,
            &digest,
            first.confirmation.signature.as_slice(),
        )
        .unwrap_or_else(|e| panic!("{scheme} signature does not verify: {e:?}"));

        // Only the hub.
        let refused: Result<SignResponse, SignError> = update(
            &mut emu,
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

        // Same header: same signature, no threshold call.
        let mark = emu.executions().len();
        let again = sign(&mut emu, node, &h0).expect("idempotent");
        repeats.push((scheme, instructions_since(&emu, node, mark)));
        assert_eq!(again.confirmation, first.confirmation);
        assert!(!again.newly_signed);
        assert!(
            emu.executions()[mark..]
                .iter()
                .all(|e| !e.entry.contains("callback")),
            "a repeat makes no call"
        );

        // Another header for the same height: refused, with what was signed.
        match sign(&mut emu, node, &header(0, Hash32::ZERO, 2)) {
            Err(SignError::AlreadySignedOtherHeader { log_index, signed }) => {
                assert_eq!(log_index, 0);
                assert_eq!(signed.header, h0);
                assert_eq!(signed.signature, first.confirmation.signature);
            }
            other => panic!("{scheme}: expected a refusal, got {other:?}"),
        }

        let h1 = header(1, header_hash(&h0), 3);
        let second = sign(&mut emu, node, &h1).expect("signs height 1");
        assert_eq!(second.log_index, 1);

        // Upgrade: the log, the certified data and the refusals survive.
        let before = certified_page(&mut emu, node, 0, 10);
        emu.upgrade_canister(
            node,
            &wasm,
            Encode!(&Arg::Upgrade(Some(UpgradeArgs { hub: None }))).expect("encode"),
            None,
        )
        .expect("upgrades");
        let after = certified_page(&mut emu, node, 0, 10);
        assert_eq!(after.entries, before.entries);
        assert_eq!(after.total, 2);
        let again = sign(&mut emu, node, &h0).expect("idempotent after upgrade");
        assert_eq!(again.confirmation, first.confirmation);
        assert!(matches!(
            sign(&mut emu, node, &header(1, header_hash(&h0), 9)),
            Err(SignError::AlreadySignedOtherHeader { log_index: 1, .. })
        ));
        let entry: Option<LogEntry> = query(
            &mut emu,
            node,
            "get_signed",
            Encode!(&hub(), &1u64).expect("encode"),
        );
        assert_eq!(entry.map(|e| e.header), Some(h1.clone()));

        // Out of cycles. The emulator checks `freezing limit + 40 B instructions` before it runs
        // an update but does not deduct that prepayment from the liquid balance the update
        // sees, so inside an update the liquid balance always exceeds every threshold fee
        // (at most 26 B cycles) and the node's own `InsufficientCycles` check (tested natively:
        // `should_refuse_with_insufficient_cycles_before_calling`) cannot trigger here. What
        // the emulator can show: a node too poor to run is refused and nothing is recorded.
        emu.set_cycle_balance(node, 1_000_000_000);
        let h2 = header(2, header_hash(&h1), 4);
        let poor = emu.update_call(node, hub(), "sign_header", Encode!(&h2).expect("encode"));
        assert!(
            poor.is_err(),
            "{scheme}: a node without cycles must not sign"
        );
        // Enough to run an update (the emulator, like the IC, withdraws the
        // 40 B-instruction prepayment first) but not to pay for a signature:
        // the node says so with its typed error before any threshold call.
        emu.set_cycle_balance(node, 50_000_000_000);
        match sign(&mut emu, node, &h2) {
            Err(SignError::InsufficientCycles {
                available,
                required,
            }) => {
                assert!(available < required, "{scheme}: {available} < {required}");
            }
            other => panic!("{scheme}: expected InsufficientCycles, got {other:?}"),
        }
        emu.set_cycle_balance(node, 100_000_000_000_000);
        let page = certified_page(&mut emu, node, 0, 10);
        assert_eq!(page.total, 2, "nothing was recorded");
        assert_eq!(sign(&mut emu, node, &h2).expect("signs").log_index, 2);
    }

    for (scheme, instructions) in report {
        println!("sign_header {scheme:>16}: {instructions:>10} instructions (update + callback)");
    }
    for (scheme, instructions) in repeats {
        println!("sign_header {scheme:>16}: {instructions:>10} instructions (repeat, stored)");
    }
}

#[test]
fn should_refuse_install_with_upgrade_argument_or_unknown_key() {
    let wasm = wasm();
    let mut emu = Emulator::new();
    let node = emu.create_canister();
    let bad = Arg::Upgrade(None);
    assert!(
        emu.install_canister(node, &wasm, Encode!(&bad).expect("encode"), None)
            .is_err()
    );
    let unknown = Arg::Init(InitArgs {
        scheme: Scheme::EcdsaSecp256k1,
        key_name: "no_such_key".into(),
        hub: hub(),
    });
    assert!(
        emu.install_canister(node, &wasm, Encode!(&unknown).expect("encode"), None)
            .is_err()
    );
    let good = Arg::Init(InitArgs {
        scheme: Scheme::EcdsaSecp256k1,
        key_name: KEY_NAME.into(),
        hub: hub(),
    });
    emu.install_canister(node, &wasm, Encode!(&good).expect("encode"), None)
        .expect("installs");
    let init_again = Encode!(&good).expect("encode");
    assert!(emu.upgrade_canister(node, &wasm, init_again, None).is_err());
}

#[test]
fn should_refuse_concurrent_request_for_height_being_signed() {
    let wasm = wasm();
    let mut emu = Emulator::new();
    let node = install_node(&mut emu, &wasm, Scheme::SchnorrBip340);
    let h0 = header(0, Hash32::ZERO, 1);
    let arg = |h: &BatchHeader| Encode!(h).expect("encode");
    let first = emu
        .submit_call(node, hub(), "sign_header", arg(&h0))
        .expect("submitted");
    let second = emu
        .submit_call(node, hub(), "sign_header", arg(&header(0, Hash32::ZERO, 2)))
        .expect("submitted");
    let decode = |bytes: Vec<u8>| -> Result<SignResponse, SignError> {
        candid::decode_one(&bytes).expect("reply decodes")
    };
    let second = decode(emu.await_call(second).expect("replied"));
    assert_eq!(
        second,
        Err(SignError::SigningInProgress {
            height: 0,
            header_hash: header_hash(&h0)
        })
    );
    let first = decode(emu.await_call(first).expect("replied")).expect("signs");
    assert_eq!(first.log_index, 0);
}
