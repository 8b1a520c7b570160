//! The events that change the staking state, with explicit CBOR tags (never renumber a tag;
//! add new fields as `Option`s with new tags).

use candid::Principal;
use minicbor::{Decode, Decoder, Encode, Encoder};

/// A principal in CBOR: its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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

/// An ICRC-1 account in CBOR.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Encode, Decode)]
pub struct Acct {
    #[n(0)]
    pub owner: P,
    #[n(1)]
    pub subaccount: Option<[u8; 32]>,
}

impl From<&icrc_ledger_types::icrc1::account::Account> for Acct {
    fn from(a: &icrc_ledger_types::icrc1::account::Account) -> Self {
        Acct {
            owner: P(a.owner),
            subaccount: a.subaccount,
        }
    }
}

impl From<&Acct> for icrc_ledger_types::icrc1::account::Account {
    fn from(a: &Acct) -> Self {
        icrc_ledger_types::icrc1::account::Account {
            owner: a.owner.0,
            subaccount: a.subaccount,
        }
    }
}

/// What an incoming transfer is for.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum InKind {
    /// `stake`: `icrc2_transfer_from` of the owner's tokens.
    #[n(0)]
    Stake {
        #[n(0)]
        lock_seconds: Option<u64>,
    },
    /// `notify_deposit`: a sweep of the owner's deposit subaccount into the main account.
    #[n(1)]
    Deposit {
        #[n(0)]
        lock_seconds: Option<u64>,
    },
    /// `fund_rewards`: reward tokens pulled with `icrc2_transfer_from`.
    #[n(2)]
    Fund,
}

/// What an outgoing transfer is for.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum OutKind {
    #[n(0)]
    Withdraw,
    #[n(1)]
    Claim,
    #[n(2)]
    Slash,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Encode, Decode)]
pub enum SlashTo {
    #[n(0)]
    Burn,
    #[n(1)]
    Account(#[n(0)] Acct),
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Event {
    #[n(0)]
    Init {
        #[n(0)]
        restaking: Option<P>,
        #[n(1)]
        unbonding_seconds: u64,
        #[n(2)]
        reward_period_seconds: u64,
        #[n(3)]
        slash_to: SlashTo,
        #[n(4)]
        reconcile_interval_seconds: u64,
    },
    /// An upgrade changed the configuration (only the given fields).
    #[n(1)]
    ConfigUpdated {
        #[n(0)]
        restaking: Option<P>,
        #[n(1)]
        unbonding_seconds: Option<u64>,
        #[n(2)]
        reward_period_seconds: Option<u64>,
        #[n(3)]
        slash_to: Option<SlashTo>,
        #[n(4)]
        reconcile_interval_seconds: Option<u64>,
    },
    #[n(2)]
    AssetAdded {
        #[n(0)]
        ledger: P,
        #[n(1)]
        min_stake: u128,
    },
    /// Fee, decimals, symbol and minting account as read from the ledger.
    #[n(3)]
    AssetMetadata {
        #[n(0)]
        ledger: P,
        #[n(1)]
        symbol: String,
        #[n(2)]
        decimals: u8,
        #[n(3)]
        fee: u128,
        #[n(4)]
        minting_account: Option<Acct>,
    },
    /// An incoming transfer is about to be asked of the ledger (journaled).
    #[n(4)]
    InStarted {
        #[n(0)]
        id: u64,
        #[n(1)]
        owner: P,
        #[n(2)]
        ledger: P,
        #[n(3)]
        amount: u128,
        #[n(4)]
        kind: InKind,
        #[n(5)]
        created_at_time: u64,
    },
    /// The ledger executed it (or answered `Duplicate`): the tokens are credited.
    #[n(5)]
    InSettled {
        #[n(0)]
        id: u64,
        #[n(1)]
        block: Option<u128>,
    },
    /// The ledger refused it: nothing moved.
    #[n(6)]
    InFailed {
        #[n(0)]
        id: u64,
    },
    #[n(7)]
    Unstaked {
        #[n(0)]
        owner: P,
        #[n(1)]
        ledger: P,
        #[n(2)]
        amount: u128,
        #[n(3)]
        unbonding_id: u64,
        #[n(4)]
        ready_at: u64,
    },
    #[n(8)]
    UnstakeCancelled {
        #[n(0)]
        owner: P,
        #[n(1)]
        unbonding_id: u64,
    },
    /// An outgoing transfer is reserved and journaled. The owner receives `amount - fee`.
    #[n(9)]
    OutStarted {
        #[n(0)]
        id: u64,
        #[n(1)]
        kind: OutKind,
        #[n(2)]
        owner: P,
        #[n(3)]
        ledger: P,
        #[n(4)]
        to: Acct,
        #[n(5)]
        amount: u128,
        #[n(6)]
        fee: u128,
        #[n(7)]
        created_at_time: u64,
        /// Withdraw: the unbonding entries it takes.
        #[n(8)]
        unbonding_ids: Vec<u64>,
        /// Slash: the destination bucket it drains (`None` in logs written before slash
        /// destinations per call: the configured one).
        #[n(9)]
        slash_to: Option<SlashTo>,
    },
    #[n(10)]
    OutSettled {
        #[n(0)]
        id: u64,
        #[n(1)]
        block: Option<u128>,
    },
    /// The ledger refused it: the reservation goes back where it came from.
    #[n(11)]
    OutFailed {
        #[n(0)]
        id: u64,
    },
    #[n(12)]
    Locked {
        #[n(0)]
        op_id: u64,
        #[n(1)]
        owner: P,
        #[n(2)]
        ledger: P,
        #[n(3)]
        amount: u128,
    },
    #[n(13)]
    Unlocked {
        #[n(0)]
        op_id: u64,
        #[n(1)]
        owner: P,
        #[n(2)]
        ledger: P,
        #[n(3)]
        amount: u128,
    },
    #[n(14)]
    Slashed {
        #[n(0)]
        op_id: u64,
        #[n(1)]
        owner: P,
        #[n(2)]
        ledger: P,
        #[n(3)]
        amount: u128,
        /// Where the tokens go; `None`: the configured destination at the time of the slash.
        #[n(4)]
        to: Option<SlashTo>,
    },
    /// Outgoing transfer `id` got `TooOld`, and the ledger's history (the whole window its
    /// old `created_at_time` allowed) has no block of it: it never executed and no longer
    /// can, so it is sent again as a new transaction with this `created_at_time`.
    #[n(15)]
    OutResent {
        #[n(0)]
        id: u64,
        #[n(1)]
        created_at_time: u64,
    },
}

/// One entry of the log: when, and what.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Entry {
    #[n(0)]
    pub timestamp: u64,
    #[n(1)]
    pub event: Event,
}

pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    minicbor::to_vec(entry).unwrap_or_else(|e| panic!("BUG: cannot encode an event: {e}"))
}

pub fn decode_entry(bytes: &[u8]) -> Entry {
    minicbor::decode(bytes).unwrap_or_else(|e| panic!("BUG: cannot decode an event: {e}"))
}
