//! `stratros demo --out DIR`: the end-to-end demo on the embedded emulator, as a list of steps.
//!
//! Each [`Step`] deploys or exercises one part of the suite and returns the checks it made.
//! Steps whose canisters do not exist yet are listed with `run: None` and reported as
//! `PENDING` (visible, never counted as passed). The run stops at the first failed step; the
//! steps after it are reported as `SKIPPED`. Exit 0 only if every check of every step held.
//!
//! To add a step: write
//! `fn my_step(demo: &mut Demo) -> Result<Vec<Check>>` in a module here, deploy with
//! [`Demo::deploy`] so the canister appears in the summary, and put it in [`steps`].

mod ledgers;
mod nodes;
mod receipts;
mod registry;
mod restaking;
mod services;
mod staking;
mod upgrades;

use crate::wasm::WasmDir;
use anyhow::{Context, Result};
use candid::Principal;
use ic_emulator::Emulator;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use stratros_verify::TrustAnchors;

/// One check a step made.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }

    /// A check that `actual == expected`, with both in the detail.
    pub fn eq<T: PartialEq + std::fmt::Debug>(
        name: impl Into<String>,
        actual: T,
        expected: T,
    ) -> Self {
        let ok = actual == expected;
        let detail = if ok {
            format!("{actual:?}")
        } else {
            format!("got {actual:?}, expected {expected:?}")
        };
        Self::new(name, ok, detail)
    }
}

/// What a step runs: it deploys or exercises part of the suite and returns its checks.
pub type StepFn = fn(&mut Demo) -> Result<Vec<Check>>;

/// A step of the demo.
pub struct Step {
    pub name: &'static str,
    pub what: &'static str,
    /// `None`: the canisters of this step are not built yet.
    pub run: Option<StepFn>,
}

/// Every step, in order.
pub fn steps() -> Vec<Step> {
    vec![
        Step {
            name: "ledgers",
            what: "deploy the ckBTC (8 decimals), ckETH (18) and ICP (8) ledger fixtures",
            run: Some(ledgers::run),
        },
        Step {
            name: "hub",
            what: "deploy the confirmation hub (no submitter yet: the registry authorizes the \
                   services it creates)",
            run: Some(receipts::deploy_hub),
        },
        Step {
            name: "confirmation_nodes",
            what: "deploy four confirmation nodes, one per scheme, on two subnets; register \
                   them with the hub",
            run: Some(nodes::run),
        },
        Step {
            name: "trust_anchors",
            what: "write trust.json: the emulator's root key and master public keys",
            run: Some(nodes::write_trust),
        },
        Step {
            name: "staking",
            what: "deploy staking, register ckBTC and ckETH; two users stake both (ckETH above \
                   u64), rewards funded, streamed and claimed, an unstake withdrawn after \
                   unbonding; balances and the accounting invariant",
            run: Some(staking::run),
        },
        Step {
            name: "restaking",
            what: "deploy restaking; two operators register their nodes; the confirmation and DA \
                   AVSs; users restake ckBTC and ckETH to the operators, who allocate to both \
                   AVSs; restaking and staking agree on every lock",
            run: Some(restaking::run),
        },
        Step {
            name: "registry",
            what: "deploy the registry (the hub's registrar); the hub charges a ckBTC fee per \
                   record, forwarded to restaking; the service module is uploaded in chunks; the \
                   registry creates Service 1 (own subnet) and Service 2 (fiduciary subnet, \
                   through the CMC) and authorizes them at the hub; the owner funds them and \
                   each buys hub credit (deposit_fees) with its first record",
            run: Some(registry::run),
        },
        Step {
            name: "records_and_receipts",
            what: "Service 1 and Service 2 submit records through their API; batches sealed by \
                   size and by age, confirmed by all four schemes; receipts fetched, written and \
                   verified offline (also relayed by a service); fees charged per record and \
                   forwarded to restaking; a service answers plain HTTP with certified responses",
            run: Some(receipts::run),
        },
        Step {
            name: "slashing_and_rewards",
            what: "a node equivocates and is slashed by proof (anyone reports it; a forged or \
                   reused proof is refused), its tokens burned; a DA slash vetoed, another \
                   executed after its veto window, its tokens sent to the DA AVS's \
                   redistribution account; AVS rewards (the services' fees forwarded by the hub plus a treasury \
                   deposit) claimed by delegators and operators",
            run: Some(restaking::slashing_and_rewards),
        },
        Step {
            name: "upgrades",
            what: "upgrade every ledger, node, the hub, staking, restaking, the registry, and \
                   both services (a rolling upgrade by the registry); check balances, logs, \
                   records, receipts, fees and positions afterwards",
            run: Some(upgrades::run),
        },
    ]
}

/// A canister the demo deployed.
#[derive(Clone, Debug, Serialize)]
pub struct Deployed {
    pub name: String,
    /// The Wasm it runs (`out/<wasm>.wasm`).
    pub wasm: String,
    pub id: Principal,
    pub subnet: Principal,
}

/// The state the steps share.
pub struct Demo {
    pub emu: Emulator,
    pub wasm: WasmDir,
    pub out: PathBuf,
    pub canisters: Vec<Deployed>,
    pub anchors: Option<TrustAnchors>,
    /// The `confirmation` hub.
    pub hub: Option<Principal>,
    /// The confirmation nodes registered with the hub, one per scheme.
    pub nodes: Vec<stratros_confirmation::PolicyNode>,
    /// The staking canister.
    pub staking: Option<Principal>,
    /// The restaking canister.
    pub restaking: Option<Principal>,
    /// The registry.
    pub registry: Option<Principal>,
    /// Service 1 and Service 2, created by the registry.
    pub services: Vec<Principal>,
    /// What the hub forwarded to restaking as confirmation-AVS rewards (the services' fees
    /// minus ledger fees).
    pub fees_forwarded: u128,
    pub receipts: Vec<PathBuf>,
    /// The ledgers deployed and what they were initialised with (checked again after upgrade).
    pub ledgers: Vec<ledgers::Ledger>,
}

impl Demo {
    pub fn new(wasm: WasmDir, out: &Path) -> Self {
        Self {
            emu: Emulator::new(),
            wasm,
            out: out.to_path_buf(),
            canisters: Vec::new(),
            anchors: None,
            hub: None,
            nodes: Vec::new(),
            staking: None,
            restaking: None,
            registry: None,
            services: Vec::new(),
            fees_forwarded: 0,
            receipts: Vec::new(),
            ledgers: Vec::new(),
        }
    }

    /// Creates `name` on `subnet` from `out/<wasm>.wasm` with `arg`, and records it.
    pub fn deploy(
        &mut self,
        name: &str,
        wasm: &str,
        subnet: Principal,
        arg: Vec<u8>,
    ) -> Result<Principal> {
        let module = self.wasm.read(wasm)?;
        let id = crate::emu::install(&mut self.emu, subnet, &module, arg)
            .with_context(|| format!("deploy {name}"))?;
        self.canisters.push(Deployed {
            name: name.into(),
            wasm: wasm.into(),
            id,
            subnet,
        });
        Ok(id)
    }

    /// Who holds fee tokens besides the stakers: the hub (the services' unspent credit), the
    /// services (their ledger accounts) and their owner.
    pub fn fee_holders(&self) -> Vec<Principal> {
        if self.services.is_empty() {
            return Vec::new();
        }
        self.hub
            .into_iter()
            .chain(self.services.iter().copied())
            .chain([services::owner()])
            .collect()
    }

    pub fn canister(&self, name: &str) -> Option<&Deployed> {
        self.canisters.iter().find(|c| c.name == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StepStatus {
    Passed,
    Failed,
    Pending,
    Skipped,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub name: String,
    pub what: String,
    pub status: StepStatus,
    pub millis: u128,
    pub checks: Vec<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs every step, printing progress to `out`; writes `DIR/summary.json`. Returns whether
/// every check held.
pub fn run(demo: &mut Demo, out: &mut impl Write) -> Result<bool> {
    std::fs::create_dir_all(&demo.out)
        .with_context(|| format!("cannot create {}", demo.out.display()))?;
    let steps = steps();
    let total = steps.len();
    let mut reports = Vec::new();
    let mut failed = false;
    for (i, step) in steps.iter().enumerate() {
        writeln!(out, "[{}/{total}] {}: {}", i + 1, step.name, step.what)?;
        let mut report = StepReport {
            name: step.name.into(),
            what: step.what.into(),
            status: StepStatus::Pending,
            millis: 0,
            checks: Vec::new(),
            error: None,
        };
        match (step.run, failed) {
            (None, _) => writeln!(out, "      PENDING: not built yet")?,
            (Some(_), true) => {
                report.status = StepStatus::Skipped;
                writeln!(out, "      SKIPPED: an earlier step failed")?;
            }
            (Some(run), false) => {
                let start = Instant::now();
                let result = run(demo);
                report.millis = start.elapsed().as_millis();
                match result {
                    Ok(checks) => {
                        for c in &checks {
                            let mark = if c.ok { "ok  " } else { "FAIL" };
                            writeln!(out, "      {mark} {}: {}", c.name, c.detail)?;
                        }
                        let ok = checks.iter().all(|c| c.ok);
                        report.checks = checks;
                        report.status = if ok {
                            StepStatus::Passed
                        } else {
                            StepStatus::Failed
                        };
                    }
                    Err(e) => {
                        writeln!(out, "      FAIL {e:#}")?;
                        report.error = Some(format!("{e:#}"));
                        report.status = StepStatus::Failed;
                    }
                }
                failed |= report.status == StepStatus::Failed;
            }
        }
        reports.push(report);
    }
    let ok = !failed;
    let summary = serde_json::json!({
        "ok": ok,
        "emulator_time_nanos": demo.emu.time_nanos(),
        "trust": demo.anchors.as_ref().map(|_| "trust.json"),
        "canisters": demo.canisters,
        "receipts": demo.receipts.iter().map(|p| p.strip_prefix(&demo.out).unwrap_or(p).display().to_string()).collect::<Vec<_>>(),
        "steps": reports,
    });
    let path = demo.out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    print_summary(demo, &reports, out)?;
    let pending: Vec<&str> = reports
        .iter()
        .filter(|r| r.status == StepStatus::Pending)
        .map(|r| r.name.as_str())
        .collect();
    if ok && !pending.is_empty() {
        writeln!(
            out,
            "\nEvery check held; not built yet, so not shown: {}",
            pending.join(", ")
        )?;
    }
    writeln!(
        out,
        "\n{}: wrote {} ({} receipts, summary.json{})",
        if ok { "PASSED" } else { "FAILED" },
        demo.out.display(),
        demo.receipts.len(),
        if demo.anchors.is_some() {
            ", trust.json"
        } else {
            ""
        },
    )?;
    Ok(ok)
}

fn print_summary(demo: &Demo, reports: &[StepReport], out: &mut impl Write) -> Result<()> {
    writeln!(out, "\nSummary")?;
    writeln!(
        out,
        "{:<22} {:<8} {:>7} {:>9}",
        "step", "status", "checks", "time"
    )?;
    writeln!(out, "{}", "-".repeat(49))?;
    for r in reports {
        let passed = r.checks.iter().filter(|c| c.ok).count();
        writeln!(
            out,
            "{:<22} {:<8} {:>7} {:>7}ms",
            r.name,
            format!("{:?}", r.status).to_uppercase(),
            format!("{passed}/{}", r.checks.len()),
            r.millis
        )?;
    }
    writeln!(out, "\nCanisters")?;
    writeln!(
        out,
        "{:<26} {:<28} {:<18} {:<12}",
        "name", "id", "wasm", "subnet"
    )?;
    writeln!(out, "{}", "-".repeat(86))?;
    let subnets = demo.emu.subnets();
    for c in &demo.canisters {
        let subnet = subnets
            .iter()
            .find(|s| s.id == c.subnet)
            .map_or_else(|| c.subnet.to_text(), |s| format!("{:?}", s.kind));
        writeln!(
            out,
            "{:<26} {:<28} {:<18} {:<12}",
            c.name,
            c.id.to_text(),
            c.wasm,
            subnet.to_lowercase()
        )?;
    }
    Ok(())
}
