//! Candid types of the canisters the CLI talks to. The hub's come from
//! `stratros_confirmation::hub`; the confirmation node's and the ledger fixture's are mirrored
//! from `candid/confirmation_node.did` and `candid/icrc_ledger.did` until they move to shared
//! crates too (a canister crate cannot be linked into the CLI: each exports `canister_init` and
//! friends). `tests/candid_types.rs` checks them all against the `.did` files.

use candid::{CandidType, Nat, Principal};
use icrc_ledger_types::icrc1::account::Account;
use serde::Deserialize;
use stratros_confirmation::{Blob, Confirmation, Hash32, Scheme, SignedHeader};

/// `confirmation_node`: install and upgrade argument.
#[derive(Clone, Debug, CandidType, Deserialize)]
pub enum NodeArg {
    Init(NodeInitArgs),
    Upgrade(Option<NodeUpgradeArgs>),
}

#[derive(Clone, Debug, CandidType, Deserialize)]
pub struct NodeInitArgs {
    pub scheme: Scheme,
    pub key_name: String,
    pub hub: Principal,
}

#[derive(Clone, Debug, Default, CandidType, Deserialize)]
pub struct NodeUpgradeArgs {
    pub hub: Option<Principal>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct NodeInfo {
    pub node: Principal,
    pub scheme: Scheme,
    pub key_name: String,
    pub hub: Principal,
    pub public_key: Option<Blob>,
    pub log_length: u64,
    pub signature_fee: Option<Nat>,
    pub liquid_cycles: Nat,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct SignResponse {
    pub log_index: u64,
    pub header_hash: Hash32,
    pub newly_signed: bool,
    pub confirmation: Confirmation,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum SignError {
    AlreadySignedOtherHeader {
        log_index: u64,
        signed: SignedHeader,
    },
    SigningInProgress {
        height: u64,
        header_hash: Hash32,
    },
    NotHub {
        hub: Principal,
        caller: Principal,
    },
    ThresholdCallFailed {
        reject_code: Option<u32>,
        message: String,
    },
    PublicKeyUnavailable {
        message: String,
    },
    InsufficientCycles {
        available: Nat,
        required: Nat,
    },
    ChainMismatch {
        signed_header_hash: Hash32,
        signed_height: u64,
    },
    WrongHub {
        hub: Principal,
        header_hub: Principal,
    },
}

/// `icrc_ledger` (the test fixture): install and upgrade argument.
#[derive(Clone, Debug, CandidType, Deserialize)]
pub enum LedgerArg {
    Init(LedgerInitArgs),
    Upgrade(Option<LedgerUpgradeArgs>),
}

#[derive(Clone, Debug, CandidType, Deserialize)]
pub struct LedgerInitArgs {
    pub token_name: String,
    pub token_symbol: String,
    pub decimals: u8,
    pub transfer_fee: Nat,
    pub minting_account: Account,
    pub initial_balances: Vec<(Account, Nat)>,
    pub max_memo_length: Option<u16>,
}

#[derive(Clone, Debug, Default, CandidType, Deserialize)]
pub struct LedgerUpgradeArgs {
    pub transfer_fee: Option<Nat>,
    pub max_memo_length: Option<u16>,
}

// `confirmation` (the hub): its types are shared by the hub and its clients.
pub use stratros_confirmation::hub::{
    AdminError, Arg, Batch, BatchError, BatchPage, Config, ConfigUpdate, InitArgs, ListBatchesArgs,
    NodeProgress, ReceiptError, Status, SubmitError, Submitted, UpgradeArgs,
};
pub use stratros_confirmation::hub::{
    DepositFeesArgs, FeeAccount, FeeConfig, FeeDeposit, FeeError, FeeStatus, HeaderCertificate,
    RecordProof,
};

pub mod registry;
pub mod service;
