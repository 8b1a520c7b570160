//! What the restaking flows need from the IC, behind a trait so that they run natively with a
//! stub in tests.

use candid::{Nat, Principal};
use ic_cdk::call::Call;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use stratros_confirmation::Scheme;
use stratros_staking_api::{HookArgs, HookError, HookReceipt, HookView, SlashBatchArgs};

/// A call that produced no reply (rejected, trapped or timed out): it may or may not have run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    pub message: String,
}

/// Staking's three restaking hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Lock,
    Unlock,
    Slash,
}

impl Hook {
    pub fn method(self) -> &'static str {
        match self {
            Hook::Lock => "restaking_lock",
            Hook::Unlock => "restaking_unlock",
            Hook::Slash => "restaking_slash",
        }
    }
}

#[allow(async_fn_in_trait)]
pub trait Runtime {
    fn time(&self) -> u64;
    fn caller(&self) -> Principal;
    fn canister_id(&self) -> Principal;
    fn is_controller(&self, p: &Principal) -> bool;
    fn set_certified_data(&self, data: &[u8; 32]);
    async fn staking_hook(
        &self,
        staking: Principal,
        hook: Hook,
        args: HookArgs,
    ) -> Result<Result<HookReceipt, HookError>, CallError>;
    async fn transfer(
        &self,
        ledger: Principal,
        arg: TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallError>;
    async fn transfer_from(
        &self,
        ledger: Principal,
        arg: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, CallError>;
    async fn fee(&self, ledger: Principal) -> Result<Nat, CallError>;
    /// The ledger's `icrc1_decimals`.
    async fn decimals(&self, ledger: Principal) -> Result<u8, CallError>;
    /// Staking's `restaking_slash_batch`: one result per slash, in order.
    async fn staking_slash_batch(
        &self,
        staking: Principal,
        args: SlashBatchArgs,
    ) -> Result<Result<Vec<Result<HookReceipt, HookError>>, HookError>, CallError>;
    /// Staking's `get_hook`: what it applied for an op id (a read, no side effect).
    async fn staking_get_hook(
        &self,
        staking: Principal,
        op_id: u64,
    ) -> Result<Option<HookView>, CallError>;
    /// The confirmation node canister's own account of itself (`node_info`).
    async fn node_info(&self, node: Principal) -> Result<NodeInfo, CallError>;
}

/// The fields of the confirmation node's `node_info` reply that restaking checks (Candid
/// ignores the others).
#[derive(Clone, Debug, PartialEq, Eq, candid::CandidType, serde::Deserialize)]
pub struct NodeInfo {
    pub scheme: Scheme,
    pub key_name: String,
    pub public_key: Option<serde_bytes::ByteBuf>,
}

pub struct IcRuntime;

async fn call<A, T>(callee: Principal, method: &str, arg: &A) -> Result<T, CallError>
where
    A: candid::CandidType,
    T: candid::CandidType + for<'de> serde::Deserialize<'de>,
{
    let response = Call::bounded_wait(callee, method)
        .with_arg(arg)
        .await
        .map_err(|e| CallError {
            message: format!("{method}: {e}"),
        })?;
    response.candid::<T>().map_err(|e| CallError {
        message: format!("{method}: cannot decode the reply: {e}"),
    })
}

impl Runtime for IcRuntime {
    fn time(&self) -> u64 {
        ic_cdk::api::time()
    }

    fn caller(&self) -> Principal {
        ic_cdk::api::msg_caller()
    }

    fn canister_id(&self) -> Principal {
        ic_cdk::api::canister_self()
    }

    fn is_controller(&self, p: &Principal) -> bool {
        ic_cdk::api::is_controller(p)
    }

    fn set_certified_data(&self, data: &[u8; 32]) {
        ic_cdk::api::certified_data_set(data);
    }

    async fn staking_hook(
        &self,
        staking: Principal,
        hook: Hook,
        args: HookArgs,
    ) -> Result<Result<HookReceipt, HookError>, CallError> {
        call(staking, hook.method(), &args).await
    }

    async fn transfer(
        &self,
        ledger: Principal,
        arg: TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallError> {
        call(ledger, "icrc1_transfer", &arg).await
    }

    async fn transfer_from(
        &self,
        ledger: Principal,
        arg: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, CallError> {
        call(ledger, "icrc2_transfer_from", &arg).await
    }

    async fn staking_slash_batch(
        &self,
        staking: Principal,
        args: SlashBatchArgs,
    ) -> Result<Result<Vec<Result<HookReceipt, HookError>>, HookError>, CallError> {
        call(staking, "restaking_slash_batch", &args).await
    }

    async fn staking_get_hook(
        &self,
        staking: Principal,
        op_id: u64,
    ) -> Result<Option<HookView>, CallError> {
        call(staking, "get_hook", &op_id).await
    }

    async fn node_info(&self, node: Principal) -> Result<NodeInfo, CallError> {
        let response = Call::bounded_wait(node, "node_info")
            .with_args(&())
            .await
            .map_err(|e| CallError {
                message: format!("node_info: {e}"),
            })?;
        response.candid::<NodeInfo>().map_err(|e| CallError {
            message: format!("node_info: cannot decode the reply: {e}"),
        })
    }

    async fn decimals(&self, ledger: Principal) -> Result<u8, CallError> {
        let response = Call::bounded_wait(ledger, "icrc1_decimals")
            .with_args(&())
            .await
            .map_err(|e| CallError {
                message: format!("icrc1_decimals: {e}"),
            })?;
        response.candid::<u8>().map_err(|e| CallError {
            message: format!("icrc1_decimals: cannot decode the reply: {e}"),
        })
    }

    async fn fee(&self, ledger: Principal) -> Result<Nat, CallError> {
        let response = Call::bounded_wait(ledger, "icrc1_fee")
            .with_args(&())
            .await
            .map_err(|e| CallError {
                message: format!("icrc1_fee: {e}"),
            })?;
        response.candid::<Nat>().map_err(|e| CallError {
            message: format!("icrc1_fee: cannot decode the reply: {e}"),
        })
    }
}
