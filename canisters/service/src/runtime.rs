//! What the service's logic needs from the IC, behind a trait so that the logic runs natively
//! in unit tests with a stub.

use candid::{Nat, Principal};
use ic_cdk::call::{Call, CallFailed, CandidDecodeFailed};
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use stratros_confirmation::RecordInput;
use stratros_confirmation::hub::{
    BatchPage, DepositFeesArgs, FeeAccount, FeeDeposit, FeeError, ListBatchesArgs, ReceiptError,
    RecordProof, SubmitError, Submitted,
};

use crate::types::RecordView;

/// Why an inter-canister call produced no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    /// The IC reject code, when the call was rejected.
    pub reject_code: Option<u32>,
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reject_code {
            Some(code) => write!(f, "rejected ({code}): {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The IC as the service sees it.
#[allow(async_fn_in_trait)]
pub trait Runtime {
    fn caller(&self) -> Principal;
    fn time(&self) -> u64;
    fn is_controller(&self, p: &Principal) -> bool;
    fn set_certified_data(&self, data: &[u8; 32]);
    /// Runs [`crate::records::tick`] after `seconds` (replacing an earlier schedule).
    fn schedule_tick(&self, seconds: u64);
    async fn hub_submit(
        &self,
        hub: Principal,
        records: Vec<RecordInput>,
    ) -> Result<Result<Vec<Submitted>, SubmitError>, CallError>;
    async fn hub_list_batches(
        &self,
        hub: Principal,
        args: ListBatchesArgs,
    ) -> Result<BatchPage, CallError>;
    /// The hub's `get_record_proof` (leaf, Merkle path, header, confirmations).
    async fn hub_record_proof(
        &self,
        hub: Principal,
        id: u64,
    ) -> Result<Result<RecordProof, ReceiptError>, CallError>;
    /// The service's own fee account at the hub.
    async fn hub_fee_account(&self, hub: Principal) -> Result<FeeAccount, CallError>;
    async fn hub_deposit_fees(
        &self,
        hub: Principal,
        args: DepositFeesArgs,
    ) -> Result<Result<FeeDeposit, FeeError>, CallError>;
    async fn ledger_fee(&self, ledger: Principal) -> Result<u128, CallError>;
    async fn ledger_approve(
        &self,
        ledger: Principal,
        args: ApproveArgs,
    ) -> Result<Result<Nat, ApproveError>, CallError>;
    async fn service_get_record(
        &self,
        service: Principal,
        id: u64,
    ) -> Result<Option<RecordView>, CallError>;
}

/// The real IC, through ic-cdk.
pub struct IcRuntime;

/// Seconds a bounded-wait call to the hub or another service may take.
const CALL_TIMEOUT_SECONDS: u32 = 60;

fn from_call_failed(e: CallFailed) -> CallError {
    match e {
        CallFailed::CallRejected(e) => CallError {
            reject_code: Some(e.raw_reject_code()),
            message: e.reject_message().to_string(),
        },
        other => CallError {
            reject_code: None,
            message: other.to_string(),
        },
    }
}

fn from_decode(e: CandidDecodeFailed) -> CallError {
    CallError {
        reject_code: None,
        message: format!("cannot decode the reply: {e}"),
    }
}

async fn call<
    A: candid::utils::ArgumentEncoder,
    R: candid::CandidType + for<'a> serde::Deserialize<'a>,
>(
    canister: Principal,
    method: &str,
    args: A,
) -> Result<R, CallError> {
    let response = Call::bounded_wait(canister, method)
        .change_timeout(CALL_TIMEOUT_SECONDS)
        .with_args(&args)
        .await
        .map_err(from_call_failed)?;
    response.candid::<R>().map_err(from_decode)
}

thread_local! {
    static TICK_TIMER: std::cell::Cell<Option<ic_cdk_timers::TimerId>> =
        const { std::cell::Cell::new(None) };
}

impl Runtime for IcRuntime {
    fn caller(&self) -> Principal {
        ic_cdk::api::msg_caller()
    }

    fn time(&self) -> u64 {
        ic_cdk::api::time()
    }

    fn is_controller(&self, p: &Principal) -> bool {
        ic_cdk::api::is_controller(p)
    }

    fn set_certified_data(&self, data: &[u8; 32]) {
        ic_cdk::api::certified_data_set(data);
    }

    fn schedule_tick(&self, seconds: u64) {
        if let Some(old) = TICK_TIMER.take() {
            ic_cdk_timers::clear_timer(old);
        }
        let id = ic_cdk_timers::set_timer(std::time::Duration::from_secs(seconds), async {
            TICK_TIMER.set(None);
            crate::records::tick(&IcRuntime).await;
        });
        TICK_TIMER.set(Some(id));
    }

    async fn hub_submit(
        &self,
        hub: Principal,
        records: Vec<RecordInput>,
    ) -> Result<Result<Vec<Submitted>, SubmitError>, CallError> {
        call(hub, "submit", (records,)).await
    }

    async fn hub_list_batches(
        &self,
        hub: Principal,
        args: ListBatchesArgs,
    ) -> Result<BatchPage, CallError> {
        call(hub, "list_batches", (args,)).await
    }

    async fn hub_record_proof(
        &self,
        hub: Principal,
        id: u64,
    ) -> Result<Result<RecordProof, ReceiptError>, CallError> {
        call(hub, "get_record_proof", (id,)).await
    }

    async fn hub_fee_account(&self, hub: Principal) -> Result<FeeAccount, CallError> {
        call(
            hub,
            "get_fee_account",
            (Some(ic_cdk::api::canister_self()),),
        )
        .await
    }

    async fn hub_deposit_fees(
        &self,
        hub: Principal,
        args: DepositFeesArgs,
    ) -> Result<Result<FeeDeposit, FeeError>, CallError> {
        call(hub, "deposit_fees", (args,)).await
    }

    async fn ledger_fee(&self, ledger: Principal) -> Result<u128, CallError> {
        let fee: Nat = call(ledger, "icrc1_fee", ()).await?;
        u128::try_from(&fee.0).map_err(|_| CallError {
            reject_code: None,
            message: format!("the ledger fee {fee} does not fit 128 bits"),
        })
    }

    async fn ledger_approve(
        &self,
        ledger: Principal,
        args: ApproveArgs,
    ) -> Result<Result<Nat, ApproveError>, CallError> {
        call(ledger, "icrc2_approve", (args,)).await
    }

    async fn service_get_record(
        &self,
        service: Principal,
        id: u64,
    ) -> Result<Option<RecordView>, CallError> {
        call(service, "get_record", (id,)).await
    }
}
