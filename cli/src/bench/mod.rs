//! `stratros bench`: registered measurements, each next to its target.
//!
//! To add a measurement: write `fn my_measure(ctx: &Context) -> Result<Vec<Measurement>>` in a
//! module here (one module per canister or component) and add one [`Entry`] to [`registry`].
//! A function may return several rows (e.g. one per scheme). An error (a missing Wasm, a
//! rejected call) becomes an `ERROR` row and fails the run like a missed target.

mod confirmation;
mod confirmation_node;
mod emulator;
mod restaking;
mod services;
mod staking;

use crate::wasm::WasmDir;
use anyhow::Result;
use serde::Serialize;
use std::io::Write;

/// What a measurement function needs.
pub struct Context {
    pub wasm: WasmDir,
}

/// One measured figure and its target. Lower is better: `value <= target` passes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measurement {
    /// `component/operation[/variant]`, e.g. `confirmation_node/sign_header/ecdsa_secp256k1`.
    pub name: String,
    /// The issue whose "Measure" section asks for it.
    pub issue: u32,
    pub value: u64,
    pub target: u64,
    /// `instructions`, `µs`, `cycles`, ...
    pub unit: &'static str,
    /// How it was measured, or where the target comes from.
    pub note: String,
}

impl Measurement {
    pub fn passed(&self) -> bool {
        self.value <= self.target
    }
}

/// A registered measurement function.
pub struct Entry {
    pub name: &'static str,
    pub issue: u32,
    pub run: fn(&Context) -> Result<Vec<Measurement>>,
    /// Whether a run without `--only` includes it (`--only` can select any entry).
    pub default: bool,
}

/// Every measurement, in the order the table prints them.
pub fn registry() -> Vec<Entry> {
    vec![
        Entry {
            name: "confirmation_node/sign_header",
            issue: 3,
            run: confirmation_node::sign_header,
            default: true,
        },
        Entry {
            name: "confirmation/submit_seal_receipt",
            issue: 3,
            run: confirmation::hub,
            default: true,
        },
        Entry {
            name: "staking/stake_unstake_claim",
            issue: 4,
            run: staking::staking,
            default: true,
        },
        Entry {
            name: "restaking/delegate_allocate_claim_slash",
            issue: 5,
            run: restaking::restaking,
            default: true,
        },
        Entry {
            name: "registry_service/create_add_records_http",
            issue: 6,
            run: services::services,
            default: true,
        },
        Entry {
            name: "emulator/update_round_trip",
            issue: 2,
            run: emulator::update_round_trip,
            // Wall clock: meaningful only in a release build. A debug build leaves it out of
            // the default set (it would miss because of the profile alone); `--only emulator`
            // still runs it, and its row names the profile.
            default: !cfg!(debug_assertions),
        },
    ]
}

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub issue: u32,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measurement: Option<Measurement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Miss,
    Error,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Miss => "MISS",
            Status::Error => "ERROR",
        })
    }
}

/// Whether `entry` runs: its name contains `filter`, or, without a filter, it is in the default
/// set.
pub fn selected(entry: &Entry, filter: Option<&str>) -> bool {
    match filter {
        Some(f) => entry.name.contains(f),
        None => entry.default,
    }
}

/// The entries a run with `filter` leaves out only because they are not in the default set.
pub fn left_out(entries: &[Entry], filter: Option<&str>) -> Vec<&'static str> {
    match filter {
        Some(_) => Vec::new(),
        None => entries
            .iter()
            .filter(|e| !e.default)
            .map(|e| e.name)
            .collect(),
    }
}

/// Runs the entries whose name contains `filter` (the default set when `None`).
pub fn run(entries: &[Entry], ctx: &Context, filter: Option<&str>) -> Vec<Row> {
    let mut rows = Vec::new();
    for entry in entries {
        if !selected(entry, filter) {
            continue;
        }
        match (entry.run)(ctx) {
            Ok(ms) => rows.extend(ms.into_iter().map(|m| Row {
                name: m.name.clone(),
                issue: m.issue,
                status: if m.passed() {
                    Status::Pass
                } else {
                    Status::Miss
                },
                measurement: Some(m),
                error: None,
            })),
            Err(e) => rows.push(Row {
                name: entry.name.into(),
                issue: entry.issue,
                status: Status::Error,
                measurement: None,
                error: Some(format!("{e:#}")),
            }),
        }
    }
    rows
}

/// Whether every row passed.
pub fn all_passed(rows: &[Row]) -> bool {
    rows.iter().all(|r| r.status == Status::Pass)
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table: name, issue, measured, target, unit, status; notes and errors below.
pub fn print_table(rows: &[Row], out: &mut impl Write) -> std::io::Result<()> {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    writeln!(
        out,
        "{:<width$}  {:>5}  {:>14}  {:>14}  {:<12}  status",
        "name", "issue", "measured", "target", "unit"
    )?;
    writeln!(out, "{}", "-".repeat(width + 62))?;
    for r in rows {
        match &r.measurement {
            Some(m) => writeln!(
                out,
                "{:<width$}  {:>5}  {:>14}  {:>14}  {:<12}  {}",
                r.name,
                format!("#{}", r.issue),
                thousands(m.value),
                format!("≤ {}", thousands(m.target)),
                m.unit,
                r.status
            )?,
            None => writeln!(
                out,
                "{:<width$}  {:>5}  {:>14}  {:>14}  {:<12}  {}",
                r.name,
                format!("#{}", r.issue),
                "-",
                "-",
                "-",
                r.status
            )?,
        }
    }
    let notes: Vec<String> = rows
        .iter()
        .filter_map(|r| match (&r.measurement, &r.error) {
            (_, Some(e)) => Some(format!("{}: ERROR {e}", r.name)),
            (Some(m), None) if !m.note.is_empty() => Some(format!("{}: {}", r.name, m.note)),
            _ => None,
        })
        .collect();
    if !notes.is_empty() {
        writeln!(out)?;
        for n in notes {
            writeln!(out, "{n}")?;
        }
    }
    let (pass, total) = (
        rows.iter().filter(|r| r.status == Status::Pass).count(),
        rows.len(),
    );
    writeln!(out, "\n{pass} of {total} within target")?;
    Ok(())
}

/// The JSON report: `{ "passed": bool, "rows": [ { name, issue, status, measurement?, error? } ] }`.
pub fn to_json(rows: &[Row]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "passed": all_passed(rows),
        "rows": rows,
    }))
    .expect("BUG: rows always serialize")
}
