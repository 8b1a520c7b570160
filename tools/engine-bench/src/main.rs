//! wasmi 2 versus wasmtime 48 on the project's real canister Wasm, with fuel
//! metering on in both (the emulator needs an instruction count).
//!
//! For each engine it measures: compiling the module, instantiating it and
//! running `canister_init`, and the per-message cost of a small update
//! (`canister_update increment` of the probe: Candid decode, a heap write,
//! Candid encode and reply) and of a query. The `ic0` imports are stubs
//! that serve the argument and swallow the reply, so the figures are the
//! engine's alone: the emulator's own work per message (heap snapshot, queue,
//! bookkeeping) is the same whichever engine runs the code.
//!
//! Run from the repository root after `bash scripts/build.sh`:
//!     cargo run --release --manifest-path tools/engine-bench/Cargo.toml -- out/probe.wasm
use std::time::{Duration, Instant};

/// Candid for `(opt text)` = `(null)`: the probe's init argument.
const INIT_ARG: &[u8] = b"DIDL\x01\x6e\x71\x01\x00\x00";
/// Candid for `()`.
const EMPTY_ARG: &[u8] = b"DIDL\x00\x00";
const CALLS: u32 = 5_000;

struct Figures {
    compile: Duration,
    instantiate_and_init: Duration,
    update: Duration,
    update_fuel: u64,
    query: Duration,
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "out/probe.wasm".into());
    let bytes = std::fs::read(&path)?;
    println!(
        "module {path}: {} bytes; {CALLS} calls per figure\n",
        bytes.len()
    );
    let wasmi = wasmi_engine::run(&bytes)?;
    let wasmtime = wasmtime_engine::run(&bytes).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    println!(
        "{:<34}{:>14}{:>14}{:>10}",
        "", "wasmi 2", "wasmtime 48", "ratio"
    );
    let row = |name: &str, a: Duration, b: Duration| {
        println!(
            "{name:<34}{:>14.2?}{:>14.2?}{:>9.1}x",
            a,
            b,
            a.as_secs_f64() / b.as_secs_f64()
        );
    };
    row("compile the module", wasmi.compile, wasmtime.compile);
    row(
        "instantiate + canister_init",
        wasmi.instantiate_and_init,
        wasmtime.instantiate_and_init,
    );
    row("small update (increment)", wasmi.update, wasmtime.update);
    row("query (get_state)", wasmi.query, wasmtime.query);
    println!(
        "fuel per update                   {:>14}{:>14}",
        wasmi.update_fuel, wasmtime.update_fuel
    );
    Ok(())
}

/// The mean time of `CALLS` calls of `call`.
fn per_call<E>(mut call: impl FnMut() -> Result<(), E>) -> Result<Duration, E> {
    let start = Instant::now();
    for _ in 0..CALLS {
        call()?;
    }
    Ok(start.elapsed() / CALLS)
}

/// The argument served by `msg_arg_data_*` for the current message.
#[derive(Default)]
struct Host {
    arg: Vec<u8>,
}

mod wasmi_engine {
    use super::*;
    use wasmi::{Caller, Config, Engine, Extern, Linker, Module, Store, Val};

    pub fn run(bytes: &[u8]) -> anyhow::Result<Figures> {
        let mut config = Config::default();
        config
            .consume_fuel(true)
            .compilation_mode(wasmi::CompilationMode::Eager);
        let engine = Engine::new(&config);
        let start = Instant::now();
        let module = Module::new(&engine, bytes)?;
        let compile = start.elapsed();

        let mut linker = Linker::<Host>::new(&engine);
        for import in module.imports() {
            let Some(ty) = import.ty().func().cloned() else {
                continue;
            };
            let name = import.name().to_string();
            linker.func_new(
                import.module(),
                import.name(),
                ty,
                move |mut caller: Caller<'_, Host>, params: &[Val], results: &mut [Val]| {
                    match name.as_str() {
                        "msg_arg_data_size" => {
                            results[0] = Val::I32(caller.data().arg.len() as i32);
                        }
                        "msg_arg_data_copy" => {
                            let (dst, off, len) =
                                (i32_at(params, 0), i32_at(params, 1), i32_at(params, 2));
                            let arg = caller.data().arg[off..off + len].to_vec();
                            let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
                                return Err(wasmi::Error::new("no memory"));
                            };
                            memory
                                .write(&mut caller, dst, &arg)
                                .map_err(|e| wasmi::Error::new(e.to_string()))?;
                        }
                        "trap" => return Err(wasmi::Error::new("canister trapped")),
                        _ => {
                            for result in results.iter_mut() {
                                *result = match result {
                                    Val::I64(_) => Val::I64(0),
                                    _ => Val::I32(0),
                                };
                            }
                        }
                    }
                    Ok(())
                },
            )?;
        }
        let start = Instant::now();
        let mut store = Store::new(
            &engine,
            Host {
                arg: INIT_ARG.to_vec(),
            },
        );
        store.set_fuel(u64::MAX / 2)?;
        let instance = linker.instantiate_and_start(&mut store, &module)?;
        let init = instance.get_typed_func::<(), ()>(&store, "canister_init")?;
        init.call(&mut store, ())?;
        let instantiate_and_init = start.elapsed();

        store.data_mut().arg = EMPTY_ARG.to_vec();
        let update = instance.get_typed_func::<(), ()>(&store, "canister_update increment")?;
        let query = instance.get_typed_func::<(), ()>(&store, "canister_query get_state")?;
        let before = store.get_fuel()?;
        update.call(&mut store, ())?;
        let update_fuel = before - store.get_fuel()?;
        let update_time = per_call(|| update.call(&mut store, ()))?;
        let query_time = per_call(|| query.call(&mut store, ()))?;
        Ok(Figures {
            compile,
            instantiate_and_init,
            update: update_time,
            update_fuel,
            query: query_time,
        })
    }

    fn i32_at(params: &[Val], i: usize) -> usize {
        match params.get(i) {
            Some(Val::I32(v)) => *v as u32 as usize,
            Some(Val::I64(v)) => *v as usize,
            _ => 0,
        }
    }
}

mod wasmtime_engine {
    use super::*;
    use wasmtime::{Caller, Config, Engine, Extern, Linker, Module, Store, Val};

    pub fn run(bytes: &[u8]) -> wasmtime::Result<Figures> {
        let mut config = Config::new();
        config.consume_fuel(true);
        let engine = Engine::new(&config)?;
        let start = Instant::now();
        let module = Module::new(&engine, bytes)?;
        let compile = start.elapsed();

        let mut linker = Linker::<Host>::new(&engine);
        for import in module.imports() {
            let Some(ty) = import.ty().func().cloned() else {
                continue;
            };
            let name = import.name().to_string();
            let zeros: Vec<Val> = ty
                .results()
                .map(|t| Val::default_for_ty(&t).unwrap_or(Val::I32(0)))
                .collect();
            linker.func_new(
                import.module(),
                import.name(),
                ty,
                move |mut caller: Caller<'_, Host>, params: &[Val], results: &mut [Val]| {
                    match name.as_str() {
                        "msg_arg_data_size" => {
                            results[0] = Val::I32(caller.data().arg.len() as i32);
                        }
                        "msg_arg_data_copy" => {
                            let (dst, off, len) =
                                (i32_at(params, 0), i32_at(params, 1), i32_at(params, 2));
                            let arg = caller.data().arg[off..off + len].to_vec();
                            let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
                                wasmtime::bail!("no memory");
                            };
                            memory.write(&mut caller, dst, &arg)?;
                        }
                        "trap" => wasmtime::bail!("canister trapped"),
                        _ => {
                            results.clone_from_slice(&zeros);
                        }
                    }
                    Ok(())
                },
            )?;
        }
        let start = Instant::now();
        let mut store = Store::new(
            &engine,
            Host {
                arg: INIT_ARG.to_vec(),
            },
        );
        store.set_fuel(u64::MAX / 2)?;
        let instance = linker.instantiate(&mut store, &module)?;
        let init = instance.get_typed_func::<(), ()>(&mut store, "canister_init")?;
        init.call(&mut store, ())?;
        let instantiate_and_init = start.elapsed();

        store.data_mut().arg = EMPTY_ARG.to_vec();
        let update = instance.get_typed_func::<(), ()>(&mut store, "canister_update increment")?;
        let query = instance.get_typed_func::<(), ()>(&mut store, "canister_query get_state")?;
        let before = store.get_fuel()?;
        update.call(&mut store, ())?;
        let update_fuel = before - store.get_fuel()?;
        let update_time = per_call(|| update.call(&mut store, ()))?;
        let query_time = per_call(|| query.call(&mut store, ()))?;
        Ok(Figures {
            compile,
            instantiate_and_init,
            update: update_time,
            update_fuel,
            query: query_time,
        })
    }

    fn i32_at(params: &[Val], i: usize) -> usize {
        match params.get(i) {
            Some(Val::I32(v)) => *v as u32 as usize,
            Some(Val::I64(v)) => *v as usize,
            _ => 0,
        }
    }
}
