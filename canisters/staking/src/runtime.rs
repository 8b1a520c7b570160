//! What the staking logic needs from the IC, behind a trait so that the flows can run
//! natively with a stub ledger.

use candid::{Nat, Principal};
use ic_cdk::call::{Call, CallFailed};
use icrc_ledger_types::icrc1::account::Account;
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use icrc_ledger_types::icrc3::blocks::{GetBlocksRequest, GetBlocksResult};

/// A ledger call that did not produce a reply: rejected, trapped or timed out. The ledger may
/// or may not have executed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    pub message: String,
}

#[allow(async_fn_in_trait)]
pub trait Runtime {
    fn time(&self) -> u64;
    fn caller(&self) -> Principal;
    fn canister_id(&self) -> Principal;
    fn is_controller(&self, p: &Principal) -> bool;
    fn set_certified_data(&self, data: &[u8; 32]);
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
    async fn balance_of(&self, ledger: Principal, account: Account) -> Result<Nat, CallError>;
    async fn metadata(&self, ledger: Principal) -> Result<LedgerMeta, CallError>;
    /// ICRC-3 `icrc3_get_blocks` with one range (a ledger without it answers a reject).
    async fn get_blocks(
        &self,
        ledger: Principal,
        start: u64,
        length: u64,
    ) -> Result<GetBlocksResult, CallError>;
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerMeta {
    pub symbol: String,
    pub decimals: u8,
    pub fee: Nat,
    pub minting_account: Option<Account>,
}

pub struct IcRuntime;

fn failed(e: CallFailed) -> CallError {
    CallError {
        message: e.to_string(),
    }
}

async fn call<A: candid::CandidType, R: candid::CandidType + for<'de> serde::Deserialize<'de>>(
    ledger: Principal,
    method: &str,
    arg: &A,
) -> Result<R, CallError> {
    let response = Call::bounded_wait(ledger, method)
        .with_arg(arg)
        .await
        .map_err(failed)?;
    response.candid::<R>().map_err(|e| CallError {
        message: format!("{method}: cannot decode the reply: {e}"),
    })
}

async fn query0<R: candid::CandidType + for<'de> serde::Deserialize<'de>>(
    ledger: Principal,
    method: &str,
) -> Result<R, CallError> {
    let response = Call::bounded_wait(ledger, method)
        .with_args(&())
        .await
        .map_err(failed)?;
    response.candid::<R>().map_err(|e| CallError {
        message: format!("{method}: cannot decode the reply: {e}"),
    })
}

/// A ledger update returning `Result<Nat, E>`, with the cheap codec.
async fn ledger_update<A, E>(
    ledger: Principal,
    method: &str,
    arg: A,
) -> Result<Result<Nat, E>, CallError>
where
    A: candid::CandidType + 'static,
    E: candid::CandidType + for<'de> serde::Deserialize<'de>,
{
    let response = Call::bounded_wait(ledger, method)
        .take_raw_args(crate::codec::encode(arg))
        .await
        .map_err(failed)?;
    crate::codec::decode_nat_result(&response).map_err(|e| CallError {
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
    async fn transfer(
        &self,
        ledger: Principal,
        arg: TransferArg,
    ) -> Result<Result<Nat, TransferError>, CallError> {
        ledger_update(ledger, "icrc1_transfer", arg).await
    }
    async fn transfer_from(
        &self,
        ledger: Principal,
        arg: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, CallError> {
        ledger_update(ledger, "icrc2_transfer_from", arg).await
    }
    async fn balance_of(&self, ledger: Principal, account: Account) -> Result<Nat, CallError> {
        call(ledger, "icrc1_balance_of", &account).await
    }
    async fn metadata(&self, ledger: Principal) -> Result<LedgerMeta, CallError> {
        let fee: Nat = query0(ledger, "icrc1_fee").await?;
        let decimals: u8 = query0(ledger, "icrc1_decimals").await?;
        let symbol: String = query0(ledger, "icrc1_symbol").await?;
        let minting_account: Option<Account> = query0(ledger, "icrc1_minting_account").await?;
        Ok(LedgerMeta {
            symbol,
            decimals,
            fee,
            minting_account,
        })
    }
    async fn get_blocks(
        &self,
        ledger: Principal,
        start: u64,
        length: u64,
    ) -> Result<GetBlocksResult, CallError> {
        let args = vec![GetBlocksRequest {
            start: Nat::from(start),
            length: Nat::from(length),
        }];
        call(ledger, "icrc3_get_blocks", &args).await
    }
}
