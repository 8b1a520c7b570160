//! The events that change the restaking state, with explicit CBOR tags (never renumber a tag;
//! add new fields as `Option`s with new tags). Every event is applied by
//! [`crate::model::State::apply`], live and on replay after an upgrade.

use candid::Principal;
use minicbor::{Decode, Decoder, Encode, Encoder};

/// A principal in CBOR: its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct P(pub Principal);

impl<C> Encode<C> for P {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.bytes(self.0.as_slice())?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for P {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        let bytes = d.bytes()?;
        Principal::try_from_slice(bytes)
            .map(P)
            .map_err(|e| minicbor::decode::Error::message(format!("bad principal: {e}")))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct AssetWeightEv {
    #[n(0)]
    pub ledger: P,
    #[n(1)]
    pub weight_bps: u32,
    /// The ledger's `icrc1_decimals`, read when the AVS was registered. `None` in events
    /// logged before decimals were recorded: such a weight applies to raw token units, as it
    /// did when it was logged (see `model::normalized_stake`).
    #[n(2)]
    pub decimals: Option<u8>,
}

/// An ICRC-1 account in CBOR.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct AccountEv {
    #[n(0)]
    pub owner: P,
    #[cbor(n(1), with = "minicbor::bytes")]
    pub subaccount: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Event {
    #[n(0)]
    Init {
        #[n(0)]
        staking: P,
        #[n(1)]
        withdrawal_delay_ns: u64,
        #[n(2)]
        allocation_delay_ns: u64,
        #[n(3)]
        deallocation_delay_ns: u64,
        #[n(4)]
        commission_delay_ns: u64,
    },
    #[n(1)]
    ConfigUpdated {
        #[n(0)]
        staking: Option<P>,
    },
    #[n(2)]
    OperatorRegistered {
        #[n(0)]
        operator: P,
        #[n(1)]
        name: String,
        #[n(2)]
        metadata: String,
        #[n(3)]
        commission_bps: u32,
    },
    #[n(3)]
    CommissionChangeRequested {
        #[n(0)]
        operator: P,
        #[n(1)]
        commission_bps: u32,
    },
    #[n(4)]
    NodeRegistered {
        #[n(0)]
        operator: P,
        #[n(1)]
        node: P,
        /// `Scheme::tag()`.
        #[n(2)]
        scheme: u8,
        #[n(3)]
        key_name: String,
        #[cbor(n(4), with = "minicbor::bytes")]
        public_key: Vec<u8>,
    },
    #[n(5)]
    AvsRegistered {
        #[n(0)]
        id: String,
        #[n(1)]
        name: String,
        /// 0 confirmation, 1 data availability, 2 other.
        #[n(2)]
        kind: u8,
        #[n(3)]
        slashers: Vec<P>,
        #[n(4)]
        weights: Vec<AssetWeightEv>,
        #[n(5)]
        max_slash_bps: u32,
        #[n(6)]
        veto_window_ns: u64,
        #[n(7)]
        resolvers: Vec<P>,
        #[n(8)]
        reward_tokens: Vec<P>,
        /// Where the tokens slashed for this AVS go; `None` (and in events logged before
        /// redistribution existed): staking's configured slash destination.
        #[n(9)]
        redistribution: Option<AccountEv>,
    },
    /// A delegation waits for staking to lock the amount (op `op_id`).
    #[n(6)]
    DelegationRequested {
        #[n(0)]
        staker: P,
        #[n(1)]
        operator: P,
        #[n(2)]
        ledger: P,
        #[n(3)]
        amount: u128,
    },
    /// Staking answered a lock: accepted (the delegation takes effect) or refused (dropped).
    #[n(7)]
    LockSettled {
        #[n(0)]
        op_id: u64,
        #[n(1)]
        accepted: bool,
    },
    #[n(8)]
    UndelegateRequested {
        #[n(0)]
        staker: P,
        #[n(1)]
        operator: P,
        #[n(2)]
        ledger: P,
        #[n(3)]
        amount: u128,
    },
    #[n(9)]
    WithdrawalCancelled {
        #[n(0)]
        staker: P,
        #[n(1)]
        id: u64,
    },
    #[n(10)]
    WithdrawalCompleted {
        #[n(0)]
        id: u64,
    },
    #[n(11)]
    Allocated {
        #[n(0)]
        operator: P,
        #[n(1)]
        avs: String,
        #[n(2)]
        ledger: P,
        #[n(3)]
        bps: u32,
    },
    #[n(12)]
    SlashRequested {
        #[n(0)]
        slasher: P,
        #[n(1)]
        avs: String,
        #[n(2)]
        operator: P,
        #[n(3)]
        bps: u32,
        #[n(4)]
        reason: String,
    },
    #[n(13)]
    SlashVetoed {
        #[n(0)]
        resolver: P,
        #[n(1)]
        id: u64,
    },
    #[n(14)]
    SlashExecuted {
        #[n(0)]
        id: u64,
    },
    /// An equivocation proof, verified before it was logged.
    #[n(15)]
    EquivocationSlashed {
        #[n(0)]
        reporter: P,
        #[n(1)]
        node: P,
        #[n(2)]
        hub: P,
        #[n(3)]
        height: u64,
    },
    /// Brings one position up to date with its pool (slash and rewards).
    #[n(16)]
    DelegationSettled {
        #[n(0)]
        operator: P,
        #[n(1)]
        ledger: P,
        #[n(2)]
        staker: P,
    },
    #[n(17)]
    WithdrawalSettled {
        #[n(0)]
        id: u64,
    },
    /// Reward tokens received (already transferred to restaking).
    #[n(18)]
    RewardsDeposited {
        #[n(0)]
        from: P,
        #[n(1)]
        avs: String,
        #[n(2)]
        token: P,
        #[n(3)]
        amount: u128,
        /// Streamed over this many ns from the deposit; `None` or 0: distributed at once.
        #[n(4)]
        period_ns: Option<u64>,
    },
    #[n(19)]
    RewardsClaimed {
        #[n(0)]
        owner: P,
        #[n(1)]
        recipient: P,
    },
    /// A journaled unlock, slash or payout was executed by its canister.
    #[n(20)]
    OpSettled {
        #[n(0)]
        op_id: u64,
    },
    /// Every reward stream advanced to the event's timestamp (logged by the flows before
    /// other events, at most once a minute, and before every claim).
    #[n(21)]
    StreamsAdvanced,
    /// An incoming reward pull, journaled (op) before `icrc2_transfer_from` is called.
    /// `created_at_time` / `memo` are the caller's idempotency key when it gave one (a
    /// repeated request with the same key reuses the op); otherwise the op uses the event's
    /// timestamp and a memo derived from the op id. The ledger call carries them, so a retry
    /// after an unknown outcome is deduplicated by the ledger (`Duplicate`).
    #[n(22)]
    DepositRequested {
        #[n(0)]
        from: P,
        #[n(1)]
        avs: String,
        #[n(2)]
        token: P,
        #[n(3)]
        amount: u128,
        #[n(4)]
        period_ns: Option<u64>,
        #[n(5)]
        created_at_time: Option<u64>,
        #[cbor(n(6), with = "minicbor::bytes")]
        memo: Option<Vec<u8>>,
    },
    /// The ledger took the tokens of deposit op `op_id` (in block `block`, or earlier as the
    /// block a `Duplicate` answer names): they are credited to the AVS, once.
    #[n(23)]
    DepositReceived {
        #[n(0)]
        op_id: u64,
        #[n(1)]
        block: u128,
    },
    /// The ledger refused deposit op `op_id` (it took nothing): the op is dropped.
    #[n(24)]
    DepositFailed {
        #[n(0)]
        op_id: u64,
        #[n(1)]
        reason: String,
    },
}
