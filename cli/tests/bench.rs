//! `stratros bench`: the framework (targets, PASS/MISS/ERROR, exit status) and the registered
//! confirmation node measurement on the real Wasm.

mod common;

use common::{stdout, stratros};
use stratros::bench::{self, Context, Entry, Measurement, Status};

fn row(name: &str, value: u64, target: u64) -> Measurement {
    Measurement {
        name: name.into(),
        issue: 0,
        value,
        target,
        unit: "instructions",
        note: String::new(),
    }
}

#[test]
fn should_pass_miss_and_error_against_targets() {
    let entries = [
        Entry {
            name: "fast",
            issue: 0,
            run: |_| Ok(vec![row("fast", 10, 10)]),
            default: true,
        },
        Entry {
            name: "slow",
            issue: 0,
            run: |_| Ok(vec![row("slow", 11, 10)]),
            default: true,
        },
        Entry {
            name: "broken",
            issue: 0,
            run: |_| anyhow::bail!("no wasm"),
            default: true,
        },
    ];
    let ctx = Context {
        wasm: common::wasm_dir(),
    };
    let rows = bench::run(&entries, &ctx, None);
    let statuses: Vec<Status> = rows.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Status::Pass, Status::Miss, Status::Error]);
    assert!(!bench::all_passed(&rows));
    let mut table = Vec::new();
    bench::print_table(&rows, &mut table).expect("prints");
    let table = String::from_utf8(table).expect("utf-8");
    assert!(
        table.contains("MISS") && table.contains("broken: ERROR no wasm"),
        "{table}"
    );
    assert!(table.contains("1 of 3 within target"), "{table}");
    let only = bench::run(&entries, &ctx, Some("fast"));
    assert!(bench::all_passed(&only));
    let json: serde_json::Value = serde_json::from_str(&bench::to_json(&rows)).expect("json");
    assert_eq!(json["passed"], false);
    assert_eq!(json["rows"][1]["status"], "MISS");
}

#[test]
fn should_measure_the_node_within_its_targets_as_json() {
    let out = stratros(&["bench", "--json", "--only", "confirmation_node"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json["passed"], true);
    let rows = json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 5, "four schemes and the repeat");
    for r in rows {
        assert_eq!(r["status"], "PASS", "{r}");
        assert!(r["measurement"]["value"].as_u64().expect("value") > 1_000_000);
    }
}

#[test]
fn should_fail_when_a_wasm_is_missing() {
    let out = stratros(&[
        "bench",
        "--only",
        "confirmation_node",
        "--wasm-dir",
        "/nonexistent",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("ERROR"), "{}", stdout(&out));
}

#[test]
fn should_leave_entries_outside_the_default_set_to_only() {
    let entries = [
        Entry {
            name: "always",
            issue: 0,
            run: |_| Ok(vec![row("always", 1, 10)]),
            default: true,
        },
        Entry {
            name: "wall/clock",
            issue: 0,
            run: |_| Ok(vec![row("wall/clock", 11, 10)]),
            default: false,
        },
    ];
    let ctx = Context {
        wasm: common::wasm_dir(),
    };
    let rows = bench::run(&entries, &ctx, None);
    assert_eq!(rows.len(), 1);
    assert!(bench::all_passed(&rows));
    assert_eq!(bench::left_out(&entries, None), ["wall/clock"]);
    let only = bench::run(&entries, &ctx, Some("wall"));
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].status, Status::Miss);
    assert!(bench::left_out(&entries, Some("wall")).is_empty());
    // The real registry: the round trip is in the default set only in a release build.
    let registry = bench::registry();
    let round_trip = registry
        .iter()
        .find(|e| e.name == "emulator/update_round_trip")
        .expect("registered");
    assert_eq!(round_trip.default, !cfg!(debug_assertions));
}

#[test]
fn should_measure_the_hub_and_staking_within_their_targets() {
    for (only, expected) in [
        (
            "confirmation/",
            vec![
                "confirmation/submit/per_record",
                "confirmation/submit_packed/per_record",
                "confirmation/seal/per_leaf",
                "confirmation/get_receipt",
            ],
        ),
        (
            // Not "staking/": restaking's entry name contains it too.
            "staking/stake",
            vec!["staking/stake", "staking/unstake", "staking/claim_rewards"],
        ),
    ] {
        let out = stratros(&["bench", "--json", "--only", only]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        let rows = json["rows"].as_array().expect("rows");
        let names: Vec<&str> = rows
            .iter()
            .map(|r| r["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, expected);
        for r in rows {
            assert_eq!(r["status"], "PASS", "{r}");
            assert!(r["measurement"]["value"].as_u64().expect("value") > 1_000);
        }
    }
}

/// Restaking (issue 5) with a small large-slash population, and the registry and service
/// (issue 6): every row measured, within its target.
#[test]
fn should_measure_restaking_the_registry_and_the_service_within_their_targets() {
    for (only, expected) in [
        (
            "restaking/",
            vec![
                "restaking/delegate",
                "restaking/allocate",
                "restaking/claim_rewards",
                "restaking/slash_equivocation/ecdsa_secp256k1",
                "restaking/slash_equivocation/schnorr_bip340",
                "restaking/slash_equivocation/schnorr_ed25519",
                "restaking/slash_equivocation/vetkd_bls12_381",
                "restaking/execute_slash/10_delegators",
                "restaking/execute_slash/100_delegators",
            ],
        ),
        (
            "registry_service/",
            vec![
                "registry/create_service",
                "service/add_records/per_record",
                "service/http_request/root",
                "service/http_request/status",
                "service/http_request/record",
                "service/http_request/not_found",
            ],
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stratros"))
            .args(["bench", "--json", "--only", only])
            .env("STRATROS_BENCH_DELEGATORS", "100")
            .output()
            .expect("runs stratros");
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        let rows = json["rows"].as_array().expect("rows");
        let names: Vec<&str> = rows
            .iter()
            .map(|r| r["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, expected);
        for r in rows {
            assert_eq!(r["status"], "PASS", "{r}");
            assert!(r["measurement"]["value"].as_u64().expect("value") > 100_000);
        }
    }
}
