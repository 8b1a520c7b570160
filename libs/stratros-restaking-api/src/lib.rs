//! The public Candid types of the Stratros restaking canister (`candid/restaking.did`):
//! lifecycle, endpoint arguments, views and the error enum. Shared by the canister (which
//! re-exports them from `restaking::types`), its clients, the CLI and tests, so that none of
//! them links the canister itself.

use candid::{CandidType, Nat, Principal};
use serde::Deserialize;
use stratros_confirmation::{Blob, EquivocationEvidence, Scheme};

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum Arg {
    Init(InitArgs),
    Upgrade(Option<UpgradeArgs>),
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct InitArgs {
    /// The staking canister whose lock / unlock / slash hooks restaking calls.
    pub staking: Principal,
    /// Default 7 days.
    pub withdrawal_delay_seconds: Option<u64>,
    /// Default 1 day.
    pub allocation_delay_seconds: Option<u64>,
    /// Default 7 days (a deallocation stays slashable meanwhile).
    pub deallocation_delay_seconds: Option<u64>,
    /// Default 7 days.
    pub commission_delay_seconds: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct UpgradeArgs {
    pub staking: Option<Principal>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum AvsKind {
    Confirmation,
    DataAvailability,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct RegisterOperatorArgs {
    pub name: String,
    pub metadata: String,
    pub commission_bps: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct RegisterNodeArgs {
    pub node: Principal,
    pub scheme: Scheme,
    pub key_name: String,
    /// The node's derived public key (SEC1 33 bytes, Ed25519 32 bytes, G2 96 bytes).
    pub public_key: Blob,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct AssetWeight {
    pub ledger: Principal,
    /// Weight of one token unit of this asset in reward shares, in basis points.
    pub weight_bps: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct RegisterAvsArgs {
    pub id: String,
    pub name: String,
    pub kind: AvsKind,
    pub slashers: Vec<Principal>,
    pub asset_weights: Vec<AssetWeight>,
    /// The largest fraction one incident may slash, in basis points of the allocation.
    pub max_slash_bps: u32,
    pub veto_window_seconds: u64,
    pub resolvers: Vec<Principal>,
    pub reward_tokens: Vec<Principal>,
    /// Where the tokens slashed for this AVS go (sent by staking, minus the ledger fee).
    /// `None`: staking's configured slash destination (burn by default), as before.
    pub redistribution_account: Option<Account>,
}

/// An ICRC-1 account: the same Candid type as `icrc_ledger_types`' `Account`
/// (`record { owner : principal; subaccount : opt blob }`, a subaccount has 32 bytes), kept
/// here so that clients need not link the ledger types.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, CandidType, Deserialize)]
pub struct Account {
    pub owner: Principal,
    pub subaccount: Option<Blob>,
}

/// An asset's ledger decimals, read from the ledger when the AVS was registered (`None`: an
/// AVS registered before they were recorded, whose weights apply to raw token units).
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct AssetDecimals {
    pub ledger: Principal,
    pub decimals: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct DelegateArgs {
    pub operator: Principal,
    pub ledger: Principal,
    pub amount: Nat,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct AllocateArgs {
    pub avs: String,
    pub ledger: Principal,
    /// Target fraction of the operator's delegated stake of `ledger`, in basis points.
    pub bps: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct RequestSlashArgs {
    pub avs: String,
    pub operator: Principal,
    pub bps: u32,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct DepositRewardsArgs {
    pub avs: String,
    pub token: Principal,
    pub amount: Nat,
    /// Stream the deposit linearly over this many seconds (added to what the AVS's stream of
    /// this token still holds, which then ends at the later of the two ends); `None` or 0:
    /// distributed at once.
    pub period_seconds: Option<u64>,
    /// Idempotency key (with `memo`): a repeated request with the same caller,
    /// `created_at_time` (ns, at most 23 h old) and `memo` (at most 32 bytes, not starting
    /// with `restaking-deposit`, which restaking reserves for its own pulls) credits once;
    /// restaking's `icrc2_transfer_from` carries both, so the ledger deduplicates its retries.
    /// `None`: every request is a new deposit.
    pub created_at_time: Option<u64>,
    pub memo: Option<Blob>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct EquivocationArgs {
    /// The operator the reporter accuses: the node must be registered to it.
    pub operator: Principal,
    pub evidence: EquivocationEvidence,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct TokenAmount {
    pub token: Principal,
    pub amount: Nat,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct DelegationView {
    pub operator: Principal,
    pub ledger: Principal,
    /// Current value (slashes applied, rounded down).
    pub amount: Nat,
    /// What staking holds locked for it (until the pending slashes are settled).
    pub locked: Nat,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct WithdrawalView {
    pub id: u64,
    pub operator: Principal,
    pub ledger: Principal,
    pub amount: Nat,
    pub complete_at: u64,
    pub seconds_left: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct ExposureView {
    pub operator: Principal,
    pub ledger: Principal,
    pub avs: String,
    /// The staker's stake an incident of this AVS can slash now (before `max_slash_bps`).
    pub slashable: Nat,
    /// When a pending deallocation ends this exposure (or lowers it), if one is pending.
    pub until: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct PendingOpView {
    pub op_id: u64,
    pub kind: String,
    pub owner: Principal,
    pub ledger: Principal,
    pub amount: Nat,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct StakerView {
    pub delegations: Vec<DelegationView>,
    pub withdrawals: Vec<WithdrawalView>,
    pub exposure: Vec<ExposureView>,
    pub pending_rewards: Vec<TokenAmount>,
    pub pending_ops: Vec<PendingOpView>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct NodeView {
    pub node: Principal,
    pub scheme: Scheme,
    pub key_name: String,
    pub public_key: Blob,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct AllocationView {
    pub avs: String,
    /// Slashable now, in basis points of the pool (rounded down) and in tokens.
    pub current_bps: u32,
    pub current_amount: Nat,
    pub pending_bps: Option<u32>,
    pub pending_effective_at: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct PoolView {
    pub ledger: Principal,
    /// Sum of the positions' settled amounts (what staking holds locked).
    pub settled_total: Nat,
    /// Current value (slashes applied).
    pub value: Nat,
    pub delegators: u64,
    pub allocations: Vec<AllocationView>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct OperatorView {
    pub operator: Principal,
    pub name: String,
    pub metadata: String,
    pub commission_bps: u32,
    pub pending_commission_bps: Option<u32>,
    pub pending_commission_effective_at: Option<u64>,
    pub nodes: Vec<NodeView>,
    pub pools: Vec<PoolView>,
    pub slashes: Vec<SlashView>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum SlashStatus {
    Pending,
    Vetoed,
    Executed,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct SlashView {
    pub id: u64,
    pub avs: String,
    pub operator: Principal,
    pub bps: u32,
    pub reason: String,
    pub objective: bool,
    pub status: SlashStatus,
    pub requested_at: u64,
    pub executable_at: u64,
    /// Per asset, the nominal amount slashed (rounded up) when it executed.
    pub slashed: Vec<TokenAmount>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct AvsView {
    pub id: String,
    pub name: String,
    pub kind: AvsKind,
    pub slashers: Vec<Principal>,
    pub asset_weights: Vec<AssetWeight>,
    pub max_slash_bps: u32,
    pub veto_window_seconds: u64,
    pub resolvers: Vec<Principal>,
    pub reward_tokens: Vec<Principal>,
    /// Per asset, the stake allocated to this AVS now.
    pub allocated: Vec<TokenAmount>,
    pub rewards_deposited: Vec<TokenAmount>,
    pub slashes: Vec<SlashView>,
    pub asset_decimals: Vec<AssetDecimals>,
    /// See `RegisterAvsArgs::redistribution_account`.
    pub redistribution_account: Option<Account>,
    /// Per asset, the settled losses attributed to this AVS's slashes and sent to staking's
    /// slash hook: to `redistribution_account`, or to staking's destination when it is `None`.
    pub slashed_tokens: Vec<TokenAmount>,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct EventsPage {
    pub total: u64,
    /// (index, timestamp, summary) of each event; the CBOR is certified through the hash chain.
    pub events: Vec<EventView>,
    pub certificate: Option<Blob>,
    pub certified_tree: Blob,
}

#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub struct EventView {
    pub index: u64,
    pub timestamp: u64,
    pub cbor: Blob,
    pub hash: Blob,
    pub summary: String,
}

/// Every error a caller can cause. No state changes when one is returned.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
pub enum RestakingError {
    AnonymousCaller,
    NotController,
    InvalidArgument(String),
    AmountTooLarge,
    ZeroAmount,
    OperatorAlreadyRegistered,
    UnknownOperator {
        operator: Principal,
    },
    NodeAlreadyRegistered {
        node: Principal,
        operator: Principal,
    },
    AvsAlreadyRegistered {
        id: String,
    },
    UnknownAvs {
        id: String,
    },
    /// The AVS gives no weight to this asset.
    AssetNotInAvs {
        avs: String,
        ledger: Principal,
    },
    /// The requested allocations of this asset would exceed 100 %.
    OverAllocated {
        available_bps: u32,
    },
    /// The pool was slashed to nothing; it accepts no more stake.
    PoolExhausted,
    NoDelegation,
    InsufficientDelegation {
        available: Nat,
    },
    UnknownWithdrawal {
        id: u64,
    },
    WithdrawalNotReady {
        complete_at: u64,
    },
    NotSlasher,
    NotResolver,
    SlashTooLarge {
        max_bps: u32,
    },
    UnknownSlash {
        id: u64,
    },
    SlashNotPending {
        id: u64,
    },
    VetoWindowOpen {
        executable_at: u64,
    },
    VetoWindowClosed,
    /// Equivocation proofs.
    UnknownNode {
        node: Principal,
    },
    NodeOfOtherOperator {
        node: Principal,
        operator: Principal,
    },
    NoConfirmationAvs,
    EvidenceAlreadyUsed,
    InvalidEvidence(String),
    NoAllocatedStake,
    NothingToClaim,
    UnknownOp {
        op_id: u64,
    },
    /// Staking refused the lock (e.g. not enough free stake).
    StakingRejected(String),
    /// The call to staking or a ledger did not settle yet: it is journaled and retried.
    Pending {
        op_id: u64,
        message: String,
    },
    LedgerError(String),
}
