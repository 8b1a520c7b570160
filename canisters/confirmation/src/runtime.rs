//! What the hub's logic needs from the IC, behind a trait so that the logic runs natively in
//! unit tests with a stub.

use candid::{CandidType, Nat, Principal};
use icrc_ledger_types::icrc1::transfer::{TransferArg, TransferError};
use icrc_ledger_types::icrc2::allowance::AllowanceArgs;
use icrc_ledger_types::icrc2::approve::{ApproveArgs, ApproveError};
use icrc_ledger_types::icrc2::transfer_from::{TransferFromArgs, TransferFromError};
use icrc_ledger_types::icrc3::blocks::{GetBlocksRequest, GetBlocksResult};
use serde::Deserialize;
use stratros_confirmation::{BatchHeader, Scheme, VETKD_CONTEXT};

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
    /// `node`'s public key for `scheme` and `key_name`, from the management canister (the
    /// key the node signs with: empty derivation path; for vetKD, the Stratros context).
    async fn node_public_key(
        &self,
        node: Principal,
        scheme: Scheme,
        key_name: &str,
    ) -> Result<Vec<u8>, String>;
    /// A bounded-wait `sign_header(header)` call to `node`.
    async fn sign_header(
        &self,
        node: Principal,
        header: &BatchHeader,
        timeout_seconds: u32,
    ) -> SignOutcome;
    /// `icrc2_transfer_from` on `ledger`; `Err` when the outcome is unknown.
    async fn transfer_from(
        &self,
        ledger: Principal,
        args: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, String>;
    /// `icrc1_transfer` on `ledger`; `Err` when the outcome is unknown.
    async fn transfer(
        &self,
        ledger: Principal,
        args: TransferArg,
    ) -> Result<Result<Nat, TransferError>, String>;
    async fn approve(
        &self,
        ledger: Principal,
        args: ApproveArgs,
    ) -> Result<Result<Nat, ApproveError>, String>;
    /// What `args.spender` may still pull from `args.account`.
    async fn allowance(&self, ledger: Principal, args: AllowanceArgs) -> Result<u128, String>;
    async fn ledger_fee(&self, ledger: Principal) -> Result<u128, String>;
    /// Restaking's view of `avs`: the stake allocated to it, summed over assets (`None`: no
    /// such AVS).
    async fn avs_allocated(&self, restaking: Principal, avs: &str) -> Result<Option<u128>, String>;
    /// Restaking's `deposit_rewards`; the inner `Err` is restaking's refusal, as text.
    async fn deposit_rewards(
        &self,
        restaking: Principal,
        args: DepositRewardsArgs,
    ) -> Result<Result<(), String>, String>;
    /// ICRC-3 `icrc3_get_blocks` with one range (a ledger without it answers a reject).
    async fn get_blocks(
        &self,
        ledger: Principal,
        start: u64,
        length: u64,
    ) -> Result<GetBlocksResult, String>;
}

/// The runtime's `icrc3_get_blocks` as the ledger-history search's block source.
pub struct LedgerHistory<'a, R>(pub &'a R);

impl<R: Runtime> stratros_ledger_history::BlockSource for LedgerHistory<'_, R> {
    async fn get_blocks(
        &self,
        ledger: Principal,
        start: u64,
        length: u64,
    ) -> Result<GetBlocksResult, String> {
        self.0.get_blocks(ledger, start, length).await
    }
}

/// Restaking's `deposit_rewards` argument, from its published Candid types.
pub use stratros_restaking_api::DepositRewardsArgs;
use stratros_restaking_api::{AvsView, RestakingError};

/// Timeout of the bounded-wait calls to the ledger and to restaking.
const PAYMENT_CALL_TIMEOUT_SECONDS: u32 = 120;

async fn call_raw<A: candid::utils::ArgumentEncoder>(
    canister: Principal,
    method: &str,
    args: A,
) -> Result<Vec<u8>, String> {
    use ic_cdk::call::{Call, CallFailed};
    match Call::bounded_wait(canister, method)
        .change_timeout(PAYMENT_CALL_TIMEOUT_SECONDS)
        .with_args(&args)
        .await
    {
        Ok(reply) => Ok(reply.into_bytes()),
        Err(CallFailed::CallRejected(e)) => Err(format!(
            "{method} rejected ({}): {}",
            e.raw_reject_code(),
            e.reject_message()
        )),
        Err(e) => Err(format!("{method} failed: {e}")),
    }
}

async fn call<A: candid::utils::ArgumentEncoder, R: CandidType + for<'a> Deserialize<'a>>(
    canister: Principal,
    method: &str,
    args: A,
) -> Result<R, String> {
    let bytes = call_raw(canister, method, args).await?;
    candid::decode_one(&bytes).map_err(|e| format!("{method}: undecodable reply: {e}"))
}

fn nat_to_u128(n: &Nat) -> u128 {
    u128::try_from(&n.0).unwrap_or(u128::MAX)
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

    async fn node_public_key(
        &self,
        node: Principal,
        scheme: Scheme,
        key_name: &str,
    ) -> Result<Vec<u8>, String> {
        use ic_cdk_management_canister as mgmt;
        let name = key_name.to_string();
        match scheme {
            Scheme::EcdsaSecp256k1 => mgmt::ecdsa_public_key(&mgmt::EcdsaPublicKeyArgs {
                canister_id: Some(node),
                derivation_path: vec![],
                key_id: mgmt::EcdsaKeyId {
                    curve: mgmt::EcdsaCurve::Secp256k1,
                    name,
                },
            })
            .await
            .map(|r| r.public_key)
            .map_err(|e| e.to_string()),
            Scheme::SchnorrBip340 | Scheme::SchnorrEd25519 => {
                let algorithm = if scheme == Scheme::SchnorrEd25519 {
                    mgmt::SchnorrAlgorithm::Ed25519
                } else {
                    mgmt::SchnorrAlgorithm::Bip340secp256k1
                };
                mgmt::schnorr_public_key(&mgmt::SchnorrPublicKeyArgs {
                    canister_id: Some(node),
                    derivation_path: vec![],
                    key_id: mgmt::SchnorrKeyId { algorithm, name },
                })
                .await
                .map(|r| r.public_key)
                .map_err(|e| e.to_string())
            }
            Scheme::Bls12_381 => mgmt::vetkd_public_key(&mgmt::VetKDPublicKeyArgs {
                canister_id: Some(node),
                context: VETKD_CONTEXT.to_vec(),
                key_id: mgmt::VetKDKeyId {
                    curve: mgmt::VetKDCurve::Bls12_381_G2,
                    name,
                },
            })
            .await
            .map(|r| r.public_key)
            .map_err(|e| e.to_string()),
        }
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

    async fn transfer_from(
        &self,
        ledger: Principal,
        args: TransferFromArgs,
    ) -> Result<Result<Nat, TransferFromError>, String> {
        call(ledger, "icrc2_transfer_from", (args,)).await
    }

    async fn transfer(
        &self,
        ledger: Principal,
        args: TransferArg,
    ) -> Result<Result<Nat, TransferError>, String> {
        call(ledger, "icrc1_transfer", (args,)).await
    }

    async fn approve(
        &self,
        ledger: Principal,
        args: ApproveArgs,
    ) -> Result<Result<Nat, ApproveError>, String> {
        call(ledger, "icrc2_approve", (args,)).await
    }

    async fn allowance(&self, ledger: Principal, args: AllowanceArgs) -> Result<u128, String> {
        let a: icrc_ledger_types::icrc2::allowance::Allowance =
            call(ledger, "icrc2_allowance", (args,)).await?;
        Ok(nat_to_u128(&a.allowance))
    }

    async fn ledger_fee(&self, ledger: Principal) -> Result<u128, String> {
        let fee: Nat = call(ledger, "icrc1_fee", ()).await?;
        Ok(nat_to_u128(&fee))
    }

    async fn avs_allocated(&self, restaking: Principal, avs: &str) -> Result<Option<u128>, String> {
        let view: Option<AvsView> = call(restaking, "get_avs", (avs.to_string(),)).await?;
        Ok(view.map(|v| {
            v.allocated
                .iter()
                .fold(0u128, |t, a| t.saturating_add(nat_to_u128(&a.amount)))
        }))
    }

    async fn deposit_rewards(
        &self,
        restaking: Principal,
        args: DepositRewardsArgs,
    ) -> Result<Result<(), String>, String> {
        let reply: Result<(), RestakingError> = call(restaking, "deposit_rewards", (args,)).await?;
        Ok(reply.map_err(|e| format!("{e:?}")))
    }

    async fn get_blocks(
        &self,
        ledger: Principal,
        start: u64,
        length: u64,
    ) -> Result<GetBlocksResult, String> {
        let args = vec![GetBlocksRequest {
            start: Nat::from(start),
            length: Nat::from(length),
        }];
        call(ledger, "icrc3_get_blocks", (args,)).await
    }
}
