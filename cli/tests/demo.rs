//! `stratros demo`: runs every built step on the emulator, writes receipts, trust.json and
//! summary.json; the receipts verify with `stratros verify --trust`.

mod common;

use common::{stdout, stratros};

#[test]
fn should_run_the_demo_and_write_verifiable_receipts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let wasm = common::wasm_dir();
    let out = stratros(&[
        "demo",
        "--out",
        dir.to_str().expect("utf-8"),
        "--wasm-dir",
        wasm.dir().to_str().expect("utf-8"),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("PASSED: wrote"), "{text}");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["ok"], true);
    let steps = summary["steps"].as_array().expect("steps");
    for s in steps {
        assert_eq!(s["status"], "PASSED", "{s}");
    }
    let status = |name: &str| {
        steps
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["status"].as_str().expect("status").to_string())
    };
    for name in [
        "hub",
        "staking",
        "restaking",
        "registry",
        "records_and_receipts",
        "slashing_and_rewards",
        "upgrades",
    ] {
        assert_eq!(status(name).as_deref(), Some("PASSED"), "{name}");
    }
    let names: Vec<&str> = summary["canisters"]
        .as_array()
        .expect("canisters")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    for name in [
        "ckbtc_ledger",
        "cketh_ledger",
        "icp_ledger",
        "confirmation",
        "staking",
        "restaking",
        "confirmation_node_ecdsa",
        "confirmation_node_bip340",
        "confirmation_node_ed25519",
        "confirmation_node_vetkd",
        "registry",
        "service_1",
        "service_2",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }

    let mut receipts: Vec<String> = std::fs::read_dir(dir.join("receipts"))
        .expect("receipts dir")
        .map(|e| e.expect("entry").path().display().to_string())
        .collect();
    receipts.sort();
    assert!(receipts.len() >= 10, "{receipts:?}");
    let hub = summary["canisters"]
        .as_array()
        .expect("canisters")
        .iter()
        .find(|c| c["name"] == "confirmation")
        .map(|c| c["id"].as_str().expect("id").to_string())
        .expect("hub");
    for r in &receipts {
        let receipt = common::receipt(std::path::Path::new(r));
        assert_eq!(receipt.header.hub.to_text(), hub, "sealed by the real hub");
    }
    let trust = dir.join("trust.json").display().to_string();
    let mut args = vec!["verify", "--trust", trust.as_str()];
    args.extend(receipts.iter().map(String::as_str));
    let out = stratros(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out).lines().count(), receipts.len());
}
