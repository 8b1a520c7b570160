use candid::{Encode, Principal};
use ic_emulator::*;

fn probe() -> Vec<u8> {
    let path = std::env::var("PROBE_WASM").unwrap_or_else(|_| "/work/target-canisters/wasm32-unknown-unknown/release/probe.wasm".into());
    std::fs::read(path).expect("probe wasm")
}

#[test]
fn smoke() {
    let mut emu = Emulator::new();
    let id = emu.create_canister();
    let t = std::time::Instant::now();
    emu.install_canister(id, &probe(), Encode!(&Some("hello".to_string())).unwrap(), None).unwrap();
    eprintln!("install {:?}", t.elapsed());
    let user = Principal::from_slice(&[1, 2, 3]);
    let r = emu.update_call(id, user, "increment", Encode!().unwrap()).unwrap();
    eprintln!("increment -> {:?}", candid::decode_one::<u64>(&r));
    let t = std::time::Instant::now();
    for _ in 0..100 {
        emu.update_call(id, user, "increment", Encode!().unwrap()).unwrap();
    }
    eprintln!("100 increments {:?}", t.elapsed());
    let r = emu.update_call(id, user, "mutate_then_trap", Encode!().unwrap());
    eprintln!("mutate_then_trap -> {:?}", r);
    emu.take_executions();
    let r = emu.update_call(id, user, "call_increment", Encode!(&id, &true).unwrap());
    eprintln!("call_increment -> {:?}", r.map(|b| candid::decode_one::<Result<u64, String>>(&b)));
    for e in emu.take_executions() { eprintln!("  {e:?}"); }
    for l in emu.take_logs() { eprintln!("  log {l:?}"); }
    let r = emu.update_call(id, user, "trap_in_reply_callback", Encode!(&id).unwrap());
    eprintln!("trap_in_reply_callback -> {:?}", r);
    let r = emu.update_call(id, user, "inspect_rejected", Encode!().unwrap());
    eprintln!("inspect_rejected -> {:?}", r);
    let r = emu.query_call(id, user, "get_state", Encode!().unwrap());
    eprintln!("get_state -> {:?}", r.map(|b| b.len()));
    emu.upgrade_canister(id, &probe(), Encode!(&None::<String>).unwrap(), None).unwrap();
    let r = emu.query_call(id, user, "lifecycle", Encode!().unwrap());
    eprintln!("lifecycle -> {:?}", r.map(|b| candid::IDLArgs::from_bytes(&b).unwrap().to_string()));
    for e in emu.executions().iter().rev().take(5) { eprintln!("{e:?}"); }
}
