//! The one error type of the crate: everything a caller (a canister, through
//! the emulated management canister) can get wrong.

use thiserror::Error;

/// Why a key, signature, derivation or certificate request was refused.
///
/// Every variant is caused by the caller's input; none is a bug of the
/// emulator. The emulator maps them onto management canister rejects.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    /// The key name is not one of [`crate::KEY_NAMES`].
    #[error("unknown threshold key name {key_name:?}")]
    UnknownKeyName {
        /// The name the caller asked for.
        key_name: String,
    },
    /// A principal (canister or subnet id) longer than 29 bytes.
    #[error("invalid principal: {len} bytes, at most {max} allowed")]
    InvalidPrincipal {
        /// Length that was given.
        len: usize,
        /// Largest length accepted.
        max: usize,
    },
    /// A derivation path with more than 255 elements.
    #[error("derivation path has {len} elements, at most {max} allowed")]
    DerivationPathTooLong {
        /// Number of elements that were given.
        len: usize,
        /// Largest number accepted.
        max: usize,
    },
    /// `sign_with_ecdsa` takes a 32-byte message hash.
    #[error("message hash must be 32 bytes, got {len}")]
    InvalidMessageHashLength {
        /// Length that was given.
        len: usize,
    },
    /// A BIP341 merkle root must be empty or 32 bytes.
    #[error("BIP341 merkle root must be empty or 32 bytes, got {len}")]
    InvalidMerkleRootLength {
        /// Length that was given.
        len: usize,
    },
    /// A BIP341 merkle root was given for a scheme other than BIP340.
    #[error("a BIP341 merkle root is only allowed with bip340secp256k1")]
    MerkleRootNotSupported,
    /// The vetKD transport public key is not a valid compressed G1 point.
    #[error("transport public key is not a valid 48-byte compressed BLS12-381 G1 point")]
    InvalidTransportPublicKey,
    /// `certified_data` is at most 32 bytes.
    #[error("certified data must be at most 32 bytes, got {len}")]
    CertifiedDataTooLong {
        /// Length that was given.
        len: usize,
    },
    /// A canister id range whose start lies after its end.
    #[error("canister id range has its start after its end")]
    InvalidCanisterRange,
    /// A certificate was asked for a canister that the subnet does not host.
    #[error("canister {canister_id} is not in the canister ranges of subnet {subnet_id}")]
    CanisterNotOnSubnet {
        /// Hex of the canister id.
        canister_id: String,
        /// Hex of the subnet id.
        subnet_id: String,
    },
    /// CBOR encoding failed (never expected when writing to memory).
    #[error("CBOR encoding failed: {0}")]
    Encoding(String),
}
