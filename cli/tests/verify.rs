//! `stratros verify` on real receipts: valid ones pass; every class of changed byte fails with a
//! precise line; wrong trust anchors fail.

mod common;

use common::{fixture, stderr, stdout, stratros};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn verify(trust: &Path, files: &[&Path]) -> std::process::Output {
    let mut args = vec!["verify", "--trust", path_str(trust)];
    args.extend(files.iter().map(|f| path_str(f)));
    stratros(&args)
}

/// Flips the lowest bit of the hex digit at `index` of the string at `pointer`.
fn flip_hex(v: &mut Value, pointer: &str, index: usize) {
    let s = v
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer}"));
    let mut chars: Vec<char> = s.as_str().expect("hex string").chars().collect();
    let d = chars[index].to_digit(16).expect("hex digit") ^ 1;
    chars[index] = std::char::from_digit(d, 16).expect("digit");
    *s = Value::String(chars.into_iter().collect());
}

/// Writes a changed copy of the first receipt and returns its path.
fn tampered(name: &str, change: impl FnOnce(&mut Value)) -> PathBuf {
    let f = fixture();
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(&f.receipts[0]).expect("read"))
            .expect("json");
    change(&mut v);
    let path = f.dir.join(format!("tampered-{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&v).expect("json")).expect("write");
    path
}

/// The bad file fails with `expected` in its line; the good one next to it still passes.
fn assert_fails(path: &Path, expected: &str) {
    let f = fixture();
    let out = verify(&f.trust, &[&f.receipts[0], path]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("OK "), "{text}");
    let prefix = format!("FAIL {}: ", path.display());
    assert!(
        lines[1].starts_with(&prefix) && lines[1].contains(expected),
        "expected `{prefix}…{expected}…`, got: {}",
        lines[1]
    );
}

#[test]
fn should_accept_every_valid_receipt_with_one_ok_line_each() {
    let f = fixture();
    let files: Vec<&Path> = f.receipts.iter().map(PathBuf::as_path).collect();
    let out = verify(&f.trust, &files);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), f.receipts.len());
    for (i, (line, path)) in lines.iter().zip(&f.receipts).enumerate() {
        let r = common::receipt(path);
        assert_eq!(
            *line,
            format!(
                "OK {} (record {i}, batch 0, hub {}, schemes ecdsa_secp256k1, schnorr_bip340, \
                 schnorr_ed25519, vetkd_bls12_381)",
                path.display(),
                r.header.hub
            )
        );
    }
}

#[test]
fn should_fail_a_changed_leaf_or_record() {
    assert_fails(
        &tampered("leaf", |v| flip_hex(v, "/leaf_hash", 0)),
        "record: leaf hash is",
    );
    assert_fails(
        &tampered("content", |v| flip_hex(v, "/record/content_hash", 5)),
        "record: leaf hash is",
    );
    assert_fails(
        &tampered("index", |v| v["leaf_index"] = Value::from(1)),
        "merkle: proof does not lead to the header's root",
    );
}

#[test]
fn should_fail_a_changed_proof_or_root() {
    assert_fails(
        &tampered("proof", |v| flip_hex(v, "/proof/0", 63)),
        "merkle: proof does not lead to the header's root",
    );
    assert_fails(
        &tampered("root", |v| flip_hex(v, "/header/merkle_root", 10)),
        "merkle: proof does not lead to the header's root",
    );
}

#[test]
fn should_fail_a_changed_header_field() {
    // Every node signed the old header: the first confirmation's signature no longer verifies.
    let path = tampered("header-time", |v| {
        let t = v["header"]["end_time_nanos"].as_u64().expect("u64");
        v["header"]["end_time_nanos"] = Value::from(t + 1);
    });
    assert_fails(&path, "confirmation #0 (node ");
    assert_fails(&path, "ecdsa_secp256k1): signature is invalid");
    assert_fails(
        &tampered("header-prev", |v| {
            flip_hex(v, "/header/prev_header_hash", 0)
        }),
        "signature is invalid",
    );
    assert_fails(
        &tampered("header-policy", |v| {
            flip_hex(v, "/header/quorum_policy_hash", 0)
        }),
        "policy: hash",
    );
}

#[test]
fn should_fail_a_changed_signature_of_each_scheme() {
    let f = fixture();
    let r = common::receipt(&f.receipts[0]);
    for (i, c) in r.confirmations.iter().enumerate() {
        let path = tampered(&format!("signature-{}", c.scheme), |v| {
            flip_hex(v, &format!("/confirmations/{i}/signature"), 20)
        });
        assert_fails(
            &path,
            &format!(
                "confirmation #{i} (node {}, {}): signature is invalid",
                c.node, c.scheme
            ),
        );
    }
}

#[test]
fn should_fail_a_changed_public_key_of_each_scheme() {
    let f = fixture();
    let r = common::receipt(&f.receipts[0]);
    for (i, c) in r.confirmations.iter().enumerate() {
        let path = tampered(&format!("public-key-{}", c.scheme), |v| {
            flip_hex(v, &format!("/confirmations/{i}/public_key"), 40)
        });
        assert_fails(
            &path,
            &format!(
                "confirmation #{i} (node {}, {}): public key is not the one derived from the \
                 master key",
                c.node, c.scheme
            ),
        );
    }
}

#[test]
fn should_fail_a_changed_certificate_or_witness() {
    let f = fixture();
    let r = common::receipt(&f.receipts[0]);
    // A byte in the middle of the certificate (inside the tree, the delegation or the
    // signature) and the last byte (the BLS signature).
    let n = r.certificate.len() * 2;
    for index in [n / 2, n - 1] {
        assert_fails(
            &tampered(&format!("certificate-{index}"), |v| {
                flip_hex(v, "/certificate", index)
            }),
            "certificate: ",
        );
    }
    let n = r.witness.len() * 2;
    assert_fails(
        &tampered("witness", |v| flip_hex(v, "/witness", n - 1)),
        "witness",
    );
}

#[test]
fn should_fail_without_quorum() {
    assert_fails(
        &tampered("quorum", |v| {
            v["confirmations"].as_array_mut().expect("array").remove(3);
        }),
        "quorum: not reached with 3 valid confirmation(s)",
    );
}

#[test]
fn should_fail_with_another_networks_trust_anchors() {
    let f = fixture();
    // Another emulator instance: other root key and other master keys.
    let other = ic_emulator::Emulator::with_config(ic_emulator::EmulatorConfig {
        key_seed: [9; 32],
        ..Default::default()
    });
    let anchors = stratros::emu::anchors(&other).expect("anchors");
    let trust = f.dir.join("other-trust.json");
    std::fs::write(&trust, anchors.to_json()).expect("write");
    let out = verify(&trust, &[&f.receipts[0]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(": confirmation #0 (node ")
            && stdout(&out).contains("public key is not the one derived from the master key"),
        "{}",
        stdout(&out)
    );

    // Right master keys, wrong root key: only the certificate fails.
    let mut anchors = stratros::emu::anchors(&other).expect("anchors");
    let ours: stratros_verify::TrustAnchors =
        stratros_verify::TrustAnchors::from_json(&std::fs::read_to_string(&f.trust).unwrap())
            .unwrap();
    anchors.master_keys = ours.master_keys;
    let trust = f.dir.join("other-root-trust.json");
    std::fs::write(&trust, anchors.to_json()).expect("write");
    let out = verify(&trust, &[&f.receipts[0]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(": certificate: "), "{}", stdout(&out));

    // The mainnet anchors.
    let out = stratros(&["verify", "--network", "ic", path_str(&f.receipts[0])]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("no ecdsa_secp256k1 master key named \"dfx_test_key\""),
        "{}",
        stdout(&out)
    );
}

#[test]
fn should_reject_a_malformed_trust_file_or_receipt_file() {
    let f = fixture();
    let trust = f.dir.join("garbage-trust.json");
    std::fs::write(&trust, "{ \"root_key\": 1 }").expect("write");
    let out = verify(&trust, &[&f.receipts[0]]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("error: trust file"),
        "{}",
        stderr(&out)
    );

    let garbage = f.dir.join("garbage.json");
    std::fs::write(&garbage, "not json").expect("write");
    let missing = f.dir.join("missing.json");
    let out = verify(&f.trust, &[&garbage, &missing]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("FAIL {}: not a receipt: ", garbage.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("FAIL {}: cannot read: ", missing.display())),
        "{text}"
    );
}

#[test]
fn should_take_pocketic_root_key_from_flag_or_trust_file() {
    let f = fixture();
    let receipt = path_str(&f.receipts[0]);
    // No root key: a usage error.
    let out = stratros(&["verify", "--network", "pocketic", receipt]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--root-key-hex"), "{}", stderr(&out));
    // PocketIC's master keys are not the emulator's: the keys fail, precisely.
    let out = stratros(&[
        "verify",
        "--network",
        "pocketic",
        "--root-key-hex",
        &f.root_key_hex,
        receipt,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("public key is not the one derived"),
        "{}",
        stdout(&out)
    );
    // A trust file gives the root key (and here its own master keys, which win).
    let out = stratros(&[
        "verify",
        "--network",
        "pocketic",
        "--trust",
        path_str(&f.trust),
        receipt,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // A malformed root key.
    let out = stratros(&[
        "verify",
        "--network",
        "pocketic",
        "--root-key-hex",
        "abcd",
        receipt,
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn should_check_certificate_freshness_only_when_asked() {
    let f = fixture();
    let receipt = path_str(&f.receipts[0]);
    let trust = path_str(&f.trust);
    // The emulator's clock is not the wall clock: a 60 s window around now fails.
    let out = stratros(&["verify", "--trust", trust, "--max-cert-age", "60", receipt]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(": certificate: "), "{}", stdout(&out));
    // Around the emulator's time it passes.
    let now = (f.emulator_time_nanos + 30_000_000_000).to_string();
    let out = stratros(&[
        "verify",
        "--trust",
        trust,
        "--max-cert-age",
        "60",
        "--now-nanos",
        &now,
        receipt,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}
