//! A smoke scenario with the probe canister, on every backend: the emulator
//! always, PocketIC too when `POCKET_IC_BIN` is set (`out/probe.wasm` is built by
//! `scripts/build.sh`).

use ic_testkit::{CanisterSpec, IcBackendExt, RejectCode, SubnetKind, backends_for_test};
use std::time::Duration;

#[test]
fn should_roll_back_a_trapping_update_and_keep_the_counter() {
    for backend in backends_for_test("should_roll_back_a_trapping_update_and_keep_the_counter") {
        let probe = backend
            .deploy(
                &CanisterSpec::on(SubnetKind::Application),
                ic_testkit::wasm("probe"),
                Some("hello".to_string()),
            )
            .expect("deploy probe");
        assert_eq!(
            backend.update::<(), u64>(probe, "increment", ()).unwrap(),
            1
        );
        let err = backend
            .update::<(), ()>(probe, "mutate_then_trap", ())
            .unwrap_err();
        assert_eq!(
            err.reject_code,
            RejectCode::CanisterError,
            "{}",
            backend.name()
        );
        let counter: u64 = backend.update(probe, "increment", ()).unwrap();
        assert_eq!(counter, 2, "{}", backend.name());
    }
}

#[test]
fn should_fire_timers_after_time_advances_on_every_backend() {
    for backend in backends_for_test("should_fire_timers_after_time_advances_on_every_backend") {
        let probe = backend
            .deploy(
                &CanisterSpec::on(SubnetKind::Fiduciary),
                ic_testkit::wasm("probe"),
                None::<String>,
            )
            .expect("deploy probe");
        backend.update::<u64, ()>(probe, "set_timer", 5).unwrap();
        backend.advance_time(Duration::from_secs(6));
        backend.tick_n(5);
        let state: probe::ProbeState = backend.query(probe, "get_state", ()).unwrap();
        assert_eq!(state.timer_runs, 1, "{}", backend.name());
    }
}
