//! What the hub's logic needs from the IC, behind a trait so that the logic runs natively in
//! unit tests with a stub.

use candid::Principal;
use stratros_confirmation::BatchHeader;

use crate::state::SignOutcome;
use crate::types::node_api::{SignError, SignResponse};

/// The IC as the hub sees it.
#[allow(async_fn_in_trait)]
pub trait Runtime {
    fn caller(&self) -> Principal;
    fn canister_id(&self) -> Principal;
    fn time(&self) -> u64;
    fn is_controller(&self, p: &Principal) -> bool;
    fn cycle_balance(&self) -> u128;
    fn set_certified_data(&self, data: &[u8; 32]);
    /// The instruction counter of the current message.
    fn instruction_counter(&self) -> u64;
    /// Makes sure the work timer runs by the state's next deadline.
    fn schedule(&self);
    /// A bounded-wait `sign_header(header)` call to `node`.
    async fn sign_header(
        &self,
        node: Principal,
        header: &BatchHeader,
        timeout_seconds: u32,
    ) -> SignOutcome;
}

/// The real IC, through ic-cdk.
pub struct IcRuntime;

impl Runtime for IcRuntime {
    fn caller(&self) -> Principal {
        ic_cdk::api::msg_caller()
    }

    fn canister_id(&self) -> Principal {
        ic_cdk::api::canister_self()
    }

    fn time(&self) -> u64 {
        ic_cdk::api::time()
    }

    fn is_controller(&self, p: &Principal) -> bool {
        ic_cdk::api::is_controller(p)
    }

    fn cycle_balance(&self) -> u128 {
        ic_cdk::api::canister_cycle_balance()
    }

    fn set_certified_data(&self, data: &[u8; 32]) {
        ic_cdk::api::certified_data_set(data);
    }

    fn instruction_counter(&self) -> u64 {
        ic_cdk::api::instruction_counter()
    }

    fn schedule(&self) {
        crate::timer::arm();
    }

    async fn sign_header(
        &self,
        node: Principal,
        header: &BatchHeader,
        timeout_seconds: u32,
    ) -> SignOutcome {
        use ic_cdk::call::{Call, CallFailed};
        let result = Call::bounded_wait(node, "sign_header")
            .with_arg(header.clone())
            .change_timeout(timeout_seconds)
            .await;
        match result {
            Ok(reply) => match reply.candid::<Result<SignResponse, SignError>>() {
                Ok(Ok(response)) => SignOutcome::Signed(response),
                Ok(Err(error)) => SignOutcome::Refused(error),
                Err(e) => SignOutcome::CallFailed {
                    reject_code: None,
                    message: format!("undecodable reply: {e}"),
                },
            },
            Err(CallFailed::CallRejected(e)) => SignOutcome::CallFailed {
                reject_code: Some(e.raw_reject_code()),
                message: e.reject_message().to_string(),
            },
            Err(e) => SignOutcome::CallFailed {
                reject_code: None,
                message: e.to_string(),
            },
        }
    }
}
