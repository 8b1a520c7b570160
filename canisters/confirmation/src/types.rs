//! The Candid types of the hub's interface: its own arguments, replies and errors are shared
//! with its clients through `stratros_confirmation::hub`; this module adds the mirror of the
//! confirmation node's `sign_header` reply.

pub use stratros_confirmation::hub::*;

use candid::{CandidType, Principal};
use serde::Deserialize;
use stratros_confirmation::{Confirmation, Hash32};

/// The confirmation node's `sign_header` reply (a mirror of `confirmation_node`'s types: the
/// hub cannot link the node's crate, whose entry points would clash with its own).
pub mod node_api {
    use super::*;
    use stratros_confirmation::SignedHeader;

    #[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
    pub struct SignResponse {
        pub confirmation: Confirmation,
        pub header_hash: Hash32,
        pub log_index: u64,
        pub newly_signed: bool,
    }

    #[derive(Clone, Debug, PartialEq, Eq, CandidType, Deserialize)]
    pub enum SignError {
        NotHub {
            caller: Principal,
            hub: Principal,
        },
        WrongHub {
            header_hub: Principal,
            hub: Principal,
        },
        AlreadySignedOtherHeader {
            log_index: u64,
            signed: Box<SignedHeader>,
        },
        ChainMismatch {
            signed_height: u64,
            signed_header_hash: Hash32,
        },
        SigningInProgress {
            height: u64,
            header_hash: Hash32,
        },
        InsufficientCycles {
            available: u128,
            required: u128,
        },
        PublicKeyUnavailable {
            message: String,
        },
        ThresholdCallFailed {
            reject_code: Option<u32>,
            message: String,
        },
    }

    impl SignError {
        /// A refusal that no retry can change: the node signed another header at this height.
        pub fn is_permanent(&self) -> bool {
            matches!(
                self,
                SignError::AlreadySignedOtherHeader { .. } | SignError::ChainMismatch { .. }
            )
        }
    }
}
