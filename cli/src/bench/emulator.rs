//! The emulator's own speed (issue 2): a small update call's round trip on the probe canister.

use super::{Context, Measurement};
use anyhow::{Result, anyhow};
use candid::{Encode, Principal};
use ic_emulator::Emulator;
use std::time::Instant;

/// Issue 2: "a small update call's round trip once the module is compiled (target ≤ 100 µs)".
pub const ROUND_TRIP_TARGET_MICROS: u64 = 100;

/// The profile this binary was built in (the round trip depends on it).
pub const PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

/// Mean wall-clock time of `increment` on the probe, after warm-up.
pub fn update_round_trip(ctx: &Context) -> Result<Vec<Measurement>> {
    let wasm = ctx.wasm.read("probe")?;
    let mut emu = Emulator::new();
    let none: Option<String> = None;
    let id = emu.create_canister();
    emu.install_canister(id, &wasm, Encode!(&none)?, None)
        .map_err(|e| anyhow!("install probe: {e:?}"))?;
    let user = Principal::from_slice(&[7; 29]);
    let arg = Encode!()?;
    let call = |emu: &mut Emulator| {
        emu.update_call(id, user, "increment", arg.clone())
            .map_err(|e| anyhow!("increment: {e:?}"))
    };
    for _ in 0..50 {
        call(&mut emu)?;
    }
    let n = 500u32;
    let start = Instant::now();
    for _ in 0..n {
        call(&mut emu)?;
    }
    let micros = (start.elapsed() / n).as_micros();
    Ok(vec![Measurement {
        name: format!("emulator/update_round_trip/{PROFILE}"),
        issue: 2,
        value: u64::try_from(micros).unwrap_or(u64::MAX),
        target: ROUND_TRIP_TARGET_MICROS,
        unit: "µs",
        note: format!(
            "wall clock in a {PROFILE} build of the CLI, mean of {n} `increment` calls on the \
             probe after warm-up; depends on the machine and the profile (the target is for a \
             release build: cargo run --release -p stratros -- bench)"
        ),
    }])
}
