use std::cell::RefCell;
use std::time::Duration;

use candid::Principal;

use crate::backend::{
    CallError, CallId, CanisterSpec, CanisterStatus, IcBackend, IcBackendExt, InstallMode,
    RejectCode,
};

/// A backend that replies to every call with its raw argument and records the calls.
#[derive(Default)]
struct EchoBackend {
    calls: RefCell<Vec<(String, Option<Principal>)>>,
    ticks: std::cell::Cell<usize>,
}

impl IcBackend for EchoBackend {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn create_canister(&self, _: &CanisterSpec) -> Result<Principal, CallError> {
        Ok(Principal::from_slice(&[1]))
    }
    fn install(
        &self,
        _: Principal,
        _: InstallMode,
        _: Vec<u8>,
        _: Vec<u8>,
        _: Option<Principal>,
    ) -> Result<(), CallError> {
        Ok(())
    }
    fn update_call(
        &self,
        _: Principal,
        sender: Option<Principal>,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        self.calls.borrow_mut().push((method.to_string(), sender));
        if method == "reject" {
            return Err(CallError::new(RejectCode::CanisterReject, "no"));
        }
        Ok(arg)
    }
    fn query_call(
        &self,
        canister: Principal,
        sender: Option<Principal>,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        self.update_call(canister, sender, method, arg)
    }
    fn submit_call(
        &self,
        _: Principal,
        _: Option<Principal>,
        _: &str,
        _: Vec<u8>,
    ) -> Result<CallId, CallError> {
        Ok(CallId(7))
    }
    fn await_call(&self, _: CallId) -> Result<Vec<u8>, CallError> {
        Ok(candid::encode_one(42u64).unwrap())
    }
    fn advance_time(&self, _: Duration) {}
    fn set_time(&self, _: u64) {}
    fn time(&self) -> u64 {
        0
    }
    fn root_key(&self) -> Vec<u8> {
        Vec::new()
    }
    fn canister_status(
        &self,
        _: Principal,
        _: Option<Principal>,
    ) -> Result<CanisterStatus, CallError> {
        Err(CallError::new(RejectCode::DestinationInvalid, "none"))
    }
    fn add_cycles(&self, _: Principal, amount: u128) -> u128 {
        amount
    }
    fn cycle_balance(&self, _: Principal) -> u128 {
        0
    }
    fn stop_canister(&self, _: Principal, _: Option<Principal>) -> Result<(), CallError> {
        Ok(())
    }
    fn start_canister(&self, _: Principal, _: Option<Principal>) -> Result<(), CallError> {
        Ok(())
    }
    fn delete_canister(&self, _: Principal, _: Option<Principal>) -> Result<(), CallError> {
        Ok(())
    }
    fn set_controllers(
        &self,
        _: Principal,
        _: Option<Principal>,
        _: Vec<Principal>,
    ) -> Result<(), CallError> {
        Ok(())
    }
    fn uninstall_code(&self, _: Principal, _: Option<Principal>) -> Result<(), CallError> {
        Ok(())
    }
    fn tick(&self) {
        self.ticks.set(self.ticks.get() + 1);
    }
}

#[test]
fn should_round_trip_typed_update_through_candid() {
    let backend = EchoBackend::default();
    let reply: String = backend
        .update(Principal::anonymous(), "echo", "hello".to_string())
        .unwrap();
    assert_eq!(reply, "hello");
}

#[test]
fn should_pass_sender_and_tuple_arguments() {
    let backend = EchoBackend::default();
    let sender = Principal::from_slice(&[9]);
    let (a, b): (u64, String) = backend
        .query_args(
            Principal::anonymous(),
            Some(sender),
            "pair",
            (5u64, "x".to_string()),
        )
        .unwrap();
    assert_eq!((a, b.as_str()), (5, "x"));
    assert_eq!(
        backend.calls.borrow()[0],
        ("pair".to_string(), Some(sender))
    );
}

#[test]
fn should_return_reject_as_call_error() {
    let backend = EchoBackend::default();
    let err = backend
        .update::<u64, u64>(Principal::anonymous(), "reject", 1)
        .unwrap_err();
    assert_eq!(err.reject_code, RejectCode::CanisterReject);
    assert_eq!(err.to_string(), "reject CanisterReject: no");
}

#[test]
#[should_panic(expected = "cannot Candid-decode the reply of `echo`")]
fn should_panic_with_method_name_when_reply_does_not_decode() {
    let backend = EchoBackend::default();
    let _: Result<u64, _> = backend.update(Principal::anonymous(), "echo", "text".to_string());
}

#[test]
fn should_decode_awaited_submitted_call() {
    let backend = EchoBackend::default();
    let id = backend
        .submit(Principal::anonymous(), None, "slow", ())
        .unwrap();
    assert_eq!(backend.await_typed::<u64>(id).unwrap(), 42);
}

#[test]
fn should_map_only_spec_reject_codes() {
    assert_eq!(RejectCode::from_u32(5), Some(RejectCode::CanisterError));
    assert_eq!(RejectCode::from_u32(0), None);
    assert_eq!(RejectCode::from_u32(7), None);
}

#[test]
fn should_show_error_code_when_present() {
    let err = CallError {
        reject_code: RejectCode::CanisterError,
        message: "trapped".into(),
        error_code: Some("IC0503".into()),
    };
    assert_eq!(err.to_string(), "reject CanisterError (IC0503): trapped");
}

#[test]
fn should_find_workspace_root_with_workspace_table() {
    let root = crate::workspace_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("[workspace]"));
    assert!(root.join("libs/ic-testkit").is_dir());
}

#[test]
#[should_panic(expected = "scripts/build.sh")]
fn should_tell_to_run_build_script_when_wasm_is_missing() {
    crate::wasm("no-such-canister-for-ic-testkit");
}

#[test]
fn should_run_a_fixed_number_of_rounds_when_the_backend_cannot_tell_it_is_idle() {
    let backend = EchoBackend::default();
    backend.run_until_idle();
    assert_eq!(backend.ticks.get(), crate::IDLE_ROUNDS);
    backend.advance_and_settle(Duration::from_secs(1));
    assert_eq!(backend.ticks.get(), 2 * crate::IDLE_ROUNDS);
}

#[test]
fn should_find_no_certified_data_in_bytes_that_are_not_a_certificate() {
    assert_eq!(
        crate::certified_data(b"not cbor", Principal::anonymous()),
        None
    );
}
