//! The Candid types of the confirmation hub's interface (`candid/confirmation.did`): its own
//! arguments, replies and errors. They live here, not in the canister crate, so the hub, the
//! services, the CLI and the tests share one definition (a canister crate cannot be linked
//! into another binary: its entry points would clash).

use crate::{
    BatchHeader, Blob, Confirmation, Hash32, PolicyError, PolicyNode, QuorumPolicy, QuorumRule,
    Record, RecordId,
};
use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

/// The argument of `canister_init` (`Init`) and `canister_post_upgrade` (`Upgrade`).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum Arg {
    Init(InitArgs),
    Upgrade(Option<UpgradeArgs>),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct InitArgs {
    /// Principals allowed to submit records (more with `add_submitter`).
    pub submitters: Vec<Principal>,
    /// Confirmation nodes (more with `register_node`). Sealing waits until the policy is valid.
    pub nodes: Vec<PolicyNode>,
    /// Default `OneOfEachScheme`.
    pub quorum_rule: Option<QuorumRule>,
    /// Default and limits: see [`Config`].
    pub config: Option<ConfigUpdate>,
    /// Per-record fees; none (or a zero fee) charges nothing.
    pub fees: Option<FeeConfig>,
    /// Principals besides the controllers allowed to call `add_submitter` (e.g. the service
    /// registry).
    pub registrars: Option<Vec<Principal>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct UpgradeArgs {
    pub config: Option<ConfigUpdate>,
    /// Replaces the fee configuration (none keeps it).
    pub fees: Option<FeeConfig>,
    /// Replaces the registrars (none keeps them).
    pub registrars: Option<Vec<Principal>>,
}

/// Per-record fees in an ICRC-2 token, and where the hub forwards them.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct FeeConfig {
    /// The ICRC-2 ledger fees are paid in. Changing it needs every credit spent or refunded:
    /// the hub refuses a new ledger while credits are outstanding.
    pub ledger: Principal,
    /// Charged for each new record (duplicates are free); 0 charges nothing.
    pub fee_per_record: u128,
    /// The restaking canister that receives collected fees as rewards of `avs`; none keeps
    /// them at the hub.
    pub restaking: Option<Principal>,
    /// The confirmation AVS's id at restaking.
    pub avs: String,
    /// Forward once at least this much is collected (it must exceed the ledger fees of a
    /// forward: an approval and a transfer).
    pub min_forward: u128,
    /// How often the forwarding timer runs (60..=86400).
    pub forward_interval_seconds: u64,
}

/// `deposit_fees`: the hub pulls `amount` from the caller's account with
/// `icrc2_transfer_from` (approve `amount` + the ledger fee first). A retry with the same
/// `created_at_time` is deduplicated by the ledger and credits nothing twice.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct DepositFeesArgs {
    pub amount: u128,
    /// IC nanoseconds; reuse it when retrying after an unknown outcome.
    pub created_at_time: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct FeeDeposit {
    /// The ledger block of the transfer.
    pub block_index: u128,
    /// What this call credited: 0 when the block was credited before (a retry).
    pub credited: u128,
    /// The caller's credit now.
    pub credit: u128,
}

/// Why `deposit_fees` credited nothing.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum FeeError {
    /// The hub charges no fees (no ledger configured).
    FeesDisabled,
    /// Only submitters deposit fees.
    Unauthorized {
        caller: Principal,
    },
    ZeroAmount,
    /// Another deposit of the caller is in flight.
    Busy,
    /// The ledger refused the transfer (allowance, balance, time window, ...).
    LedgerRefused {
        message: String,
    },
    /// The ledger's answer is unknown: retry with the same `created_at_time`.
    LedgerUnreachable {
        message: String,
    },
    /// `withdraw_credit` asked for more than the caller's credit.
    InsufficientCredit {
        needed: u128,
        available: u128,
    },
    /// `withdraw_credit`: the amount does not cover the ledger fee (the recipient gets
    /// `amount - ledger_fee`).
    AmountTooSmall {
        ledger_fee: u128,
    },
    /// `withdraw_credit`: a subaccount is 32 bytes.
    InvalidSubaccount,
}

/// `withdraw_credit`: takes `amount` out of the caller's credit and sends `amount - ledger fee`
/// to `to` (default: the caller's main account) with `icrc1_transfer`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct WithdrawCreditArgs {
    pub amount: u128,
    pub to: Option<Principal>,
    pub to_subaccount: Option<Blob>,
    /// The request's idempotency key (IC nanoseconds): a repeated request with the same key
    /// is the same withdrawal, debited once; reuse it to retry after an unknown outcome.
    pub created_at_time: u64,
}

/// A credit withdrawal and where it stands.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct CreditWithdrawal {
    pub id: u64,
    pub submitter: Principal,
    /// Taken out of the credit.
    pub amount: u128,
    /// Paid to the ledger out of `amount`.
    pub ledger_fee: u128,
    pub to: Principal,
    pub to_subaccount: Option<Blob>,
    pub state: WithdrawalState,
    /// The submitter's credit now.
    pub credit: u128,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum WithdrawalState {
    /// The ledger's answer is not known yet: the hub retries the same transfer (same
    /// `created_at_time` and memo, so the ledger executes it at most once).
    Pending {
        last_error: Option<String>,
    },
    Done {
        block_index: u128,
    },
    /// The ledger refused the first attempt for good: the amount is back in the credit.
    Refused {
        reason: String,
    },
}

/// A submitter's fee account at the hub.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct FeeAccount {
    pub submitter: Principal,
    pub ledger: Option<Principal>,
    pub fee_per_record: u128,
    /// What the submitter can still spend.
    pub credit: u128,
    pub deposited: u128,
    pub charged: u128,
    /// Records charged for.
    pub records_charged: u64,
    /// Taken out of the credit by withdrawals (pending or done).
    pub withdrawn: u128,
}

/// The hub's fee books.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct FeeStatus {
    pub config: Option<FeeConfig>,
    /// Sum of every submitter's credit.
    pub credits: u128,
    /// Charged and not forwarded yet.
    pub collected: u128,
    /// Delivered to restaking.
    pub forwarded: u128,
    /// Paid to the ledger for forwarding (approvals and transfers).
    pub forward_ledger_fees: u128,
    pub forward: Option<ForwardView>,
    /// Credit withdrawn by submitters (pending or done).
    pub withdrawn: u128,
    /// Withdrawals whose ledger outcome is not known yet.
    pub withdrawals_pending: u64,
    /// Entries in the fee event log.
    pub events: u64,
}

/// The forward in progress (one at a time).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct ForwardView {
    pub id: u64,
    pub amount: u128,
    pub approved: bool,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// What a canister needs to relay a receipt (`get_record_proof`, callable by canisters): the
/// receipt without the IC certificate and witness, which a client fetches from the hub with
/// the query `get_header_certificate(height)`.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct RecordProof {
    pub record: Record,
    pub leaf_index: u64,
    pub leaf_hash: Hash32,
    pub proof: Vec<Hash32>,
    pub header: BatchHeader,
    pub header_hash: Hash32,
    pub confirmations: Vec<Confirmation>,
    pub quorum_policy: QuorumPolicy,
}

/// The IC certificate of the hub's certified data and the witness of `headers/<height>`
/// (`get_header_certificate`, query only).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct HeaderCertificate {
    pub height: u64,
    pub header_hash: Hash32,
    pub certificate: Blob,
    pub witness: Blob,
}

impl RecordProof {
    /// The full receipt, with a certificate and witness from `get_header_certificate`.
    pub fn into_receipt(self, certificate: HeaderCertificate) -> crate::Receipt {
        crate::Receipt {
            record: self.record,
            leaf_index: self.leaf_index,
            leaf_hash: self.leaf_hash,
            proof: self.proof,
            header: self.header,
            confirmations: self.confirmations,
            quorum_policy: self.quorum_policy,
            certificate: certificate.certificate,
            witness: certificate.witness,
        }
    }
}

/// The most batches `list_batches` returns.
pub const MAX_BATCH_PAGE: u64 = 100;

/// The hub's tunables. Every field has a default and bounds (the hub validates them).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Config {
    /// A batch is sealed as soon as this many records are pending (1..=MAX_BATCH_RECORDS).
    pub max_batch_records: u64,
    /// ... or when the oldest pending record is this old.
    pub max_batch_age_seconds: u64,
    /// At most this many records per `submit` call.
    pub max_records_per_call: u32,
    /// Largest optional payload of a record, in bytes.
    pub max_payload_bytes: u32,
    /// Largest `kind`, in bytes.
    pub max_kind_bytes: u32,
    /// Largest `reference`, in bytes.
    pub max_reference_bytes: u32,
    /// Timeout of the bounded-wait `sign_header` calls.
    pub call_timeout_seconds: u32,
    /// First retry delay after a failed `sign_header`; doubles with each failure.
    pub retry_base_seconds: u64,
    /// The longest retry delay.
    pub retry_max_seconds: u64,
}

/// The defaults a hub starts with (each within the bounds the hub validates).
impl Default for Config {
    fn default() -> Self {
        Config {
            max_batch_records: 10_000,
            max_batch_age_seconds: 30,
            max_records_per_call: 1_000,
            max_payload_bytes: 1_024,
            max_kind_bytes: 64,
            max_reference_bytes: 128,
            call_timeout_seconds: 60,
            retry_base_seconds: 5,
            retry_max_seconds: 600,
        }
    }
}

/// Optional changes to [`Config`].
#[derive(Clone, Debug, Default, PartialEq, Eq, CandidType, Deserialize)]
pub struct ConfigUpdate {
    pub max_batch_records: Option<u64>,
    pub max_batch_age_seconds: Option<u64>,
    pub max_records_per_call: Option<u32>,
    pub max_payload_bytes: Option<u32>,
    pub max_kind_bytes: Option<u32>,
    pub max_reference_bytes: Option<u32>,
    pub call_timeout_seconds: Option<u32>,
    pub retry_base_seconds: Option<u64>,
    pub retry_max_seconds: Option<u64>,
}

/// One accepted record.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Submitted {
    pub id: RecordId,
    /// `true` when the submitter's `reference` (its idempotency key) was already known: `id` is
    /// the earlier record's, and nothing new was stored.
    pub duplicate: bool,
}

/// Why `submit` accepted nothing (a call is all or nothing).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum SubmitError {
    /// The caller is not an authorized submitter.
    Unauthorized { caller: Principal },
    /// The call carried no record.
    EmptySubmission,
    /// More records than `max_records_per_call`.
    TooManyRecords { max: u32, got: u64 },
    /// `submit_packed`: the blob is not a valid packed submission.
    Malformed { message: String },
    /// Record `index` of the call has a field larger than allowed.
    RecordTooLarge {
        index: u64,
        field: String,
        max: u32,
        got: u64,
    },
    /// The caller's fee credit does not cover the call's new records: `deposit_fees` first.
    InsufficientCredit { needed: u128, available: u128 },
}

/// Why `get_receipt` has no receipt.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum ReceiptError {
    /// No record has this id (yet): ids below `next_id` exist.
    UnknownRecord { id: RecordId, next_id: RecordId },
    /// The record waits for its batch to be sealed.
    NotSealed { id: RecordId },
    /// The batch is sealed but its quorum is not reached yet.
    NotConfirmed {
        height: u64,
        confirmations: u32,
        nodes: u32,
    },
    /// `data_certificate()` is only available in a non-replicated query: call it as a query.
    CertificateUnavailable,
}

/// Why `get_batch` failed.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum BatchError {
    /// Heights below `next_height` exist.
    UnknownHeight { height: u64, next_height: u64 },
}

/// Why a controller operation failed.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum AdminError {
    NotController {
        caller: Principal,
    },
    /// The resulting quorum policy would be invalid.
    InvalidPolicy(PolicyError),
    UnknownNode(Principal),
    /// `seal_now` with no pending record.
    NothingPending,
    /// `seal_now` while no valid quorum policy is configured.
    NoValidPolicy,
    /// A configuration the hub refuses.
    InvalidConfig(String),
}

/// How far one node got with one batch.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct NodeProgress {
    pub node: Principal,
    pub scheme: crate::Scheme,
    pub key_name: String,
    /// The node's signature, once received.
    pub confirmation: Option<Confirmation>,
    /// Failed `sign_header` attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (IC nanoseconds).
    pub next_attempt_nanos: u64,
    pub last_error: Option<String>,
    /// The node refused for good (it signed another header at this height): never retried.
    pub refused: bool,
}

/// A sealed batch and its confirmation progress.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize)]
pub struct Batch {
    pub header: BatchHeader,
    pub header_hash: Hash32,
    /// Where the batch's inner tree levels start in the hub's node store.
    pub tree_offset: u64,
    pub sealed_at_nanos: u64,
    /// Instructions the seal took (tree, header, storage), as the counter saw them.
    pub seal_instructions: u64,
    /// Of which the SHA-256 of the inner tree nodes.
    pub seal_hash_instructions: u64,
    /// Set when the quorum policy first held.
    pub confirmed_at_nanos: Option<u64>,
    pub nodes: Vec<NodeProgress>,
}

impl Batch {
    pub fn confirmations(&self) -> Vec<Confirmation> {
        self.nodes
            .iter()
            .filter_map(|n| n.confirmation.clone())
            .collect()
    }

    pub fn is_confirmed(&self) -> bool {
        self.confirmed_at_nanos.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct ListBatchesArgs {
    /// First height of the page.
    pub start: u64,
    /// At most the hub's page limit (100); larger values are capped.
    pub limit: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct BatchPage {
    pub batches: Vec<Batch>,
    /// Number of batches sealed so far (heights `0..total`).
    pub total: u64,
}

/// What `get_status` reports.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct Status {
    pub hub: Principal,
    /// Records accepted but not sealed yet.
    pub pending_records: u64,
    pub next_record_id: RecordId,
    /// Batches sealed (heights `0..batches`).
    pub batches: u64,
    /// Sealed batches with nodes still to sign (quorum reached or not).
    pub open_batches: u64,
    pub last_header_hash: Hash32,
    /// The policy that new batches get.
    pub quorum: QuorumPolicy,
    pub quorum_valid: bool,
    pub submitters: u64,
    pub config: Config,
    pub cycles: u128,
    /// Principals besides the controllers that may add submitters.
    pub registrars: Vec<Principal>,
    pub fees: FeeStatus,
}
