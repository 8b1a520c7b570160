//! `stratros`: verify receipts offline, run the benchmarks, run the demo on the emulator.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use stratros::trust::Network;
use stratros::wasm::WasmDir;

#[derive(Parser)]
#[command(
    name = "stratros",
    version,
    about = "Stratros: verify receipts, bench, demo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify receipts offline: one line per file, exit 0 only if all are valid.
    Verify {
        /// Receipt files (JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Trust anchors: a JSON file with a root key and master public keys (the demo writes
        /// one). With `--network pocketic`, the file gives PocketIC's root key.
        #[arg(long, value_name = "TRUST.json")]
        trust: Option<PathBuf>,
        /// A known network: `ic` (mainnet keys) or `pocketic` (PocketIC's master keys; needs
        /// `--root-key-hex` or `--trust` for the instance's root key).
        #[arg(long, value_enum)]
        network: Option<Network>,
        /// The PocketIC instance's root key, hex (DER or the raw 96-byte key).
        #[arg(long, value_name = "HEX")]
        root_key_hex: Option<String>,
        /// Reject certificates older (or newer) than this many seconds. Default: no limit, since
        /// a certified header stays proven; the signatures are checked either way.
        #[arg(long, value_name = "SECONDS")]
        max_cert_age: Option<u64>,
        /// "Now" for the freshness check, Unix epoch nanoseconds (default: the clock).
        #[arg(long, value_name = "NANOS", requires = "max_cert_age")]
        now_nanos: Option<u64>,
    },
    /// Run the registered measurements and compare each with its target; exit 1 on a miss.
    Bench {
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Only the measurements whose name contains this (any of them, also those outside the
        /// default set).
        #[arg(long, value_name = "TEXT")]
        only: Option<String>,
        /// Where `<name>.wasm` modules are (default: `out/` of the workspace).
        #[arg(long, value_name = "DIR")]
        wasm_dir: Option<PathBuf>,
    },
    /// Deploy the suite on the embedded emulator, run it end to end, write receipts, trust.json
    /// and summary.json to DIR; exit 0 only if every check held.
    Demo {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Where `<name>.wasm` modules are (default: `out/` of the workspace).
        #[arg(long, value_name = "DIR")]
        wasm_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<bool> {
    let stdout = &mut std::io::stdout().lock();
    match cli.command {
        Command::Verify {
            files,
            trust,
            network,
            root_key_hex,
            max_cert_age,
            now_nanos,
        } => {
            let anchors =
                stratros::trust::resolve(trust.as_deref(), network, root_key_hex.as_deref())?;
            let max_age = max_cert_age.map_or(u64::MAX, |s| s.saturating_mul(1_000_000_000));
            let mut options = stratros::verify::Options::now(max_age);
            if let Some(now) = now_nanos {
                options.now_nanos = now;
            }
            Ok(stratros::verify::run(&files, &anchors, options, stdout)?)
        }
        Command::Bench {
            json,
            only,
            wasm_dir,
        } => {
            let ctx = stratros::bench::Context {
                wasm: WasmDir::locate(wasm_dir.as_deref()),
            };
            let entries = stratros::bench::registry();
            for name in stratros::bench::left_out(&entries, only.as_deref()) {
                eprintln!(
                    "note: {name} is not in the default set of this build (a debug build's wall \
                     clock); run it with --only {name}"
                );
            }
            let rows = stratros::bench::run(&entries, &ctx, only.as_deref());
            if json {
                println!("{}", stratros::bench::to_json(&rows));
            } else {
                stratros::bench::print_table(&rows, stdout)?;
            }
            Ok(stratros::bench::all_passed(&rows))
        }
        Command::Demo { out, wasm_dir } => {
            let mut demo = stratros::demo::Demo::new(WasmDir::locate(wasm_dir.as_deref()), &out);
            stratros::demo::run(&mut demo, stdout)
        }
    }
}
