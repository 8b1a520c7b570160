//! The cryptography of the Stratros IC emulator.
//!
//! [`Keys`] holds every master secret key of an emulated IC, generated
//! deterministically from a 32-byte seed, and answers the management
//! canister's threshold key API (ECDSA secp256k1, Schnorr BIP340 and
//! Ed25519, vetKD) with the IC's exact key derivation, so that keys and
//! signatures check offline with `ic-secp256k1`, `ic-ed25519` and
//! `ic-vetkeys` from [`Keys::master_public_keys`]. [`Keys::certificate`]
//! builds the BLS-signed state certificates of `data_certificate()`, with a
//! root subnet and delegated subnets as on mainnet, verifiable with
//! `ic-certificate-verification` from [`Keys::root_public_key_der`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bls;
mod certificate;
mod error;
mod keys;
mod vetkd;

pub use certificate::SubnetSigner;
pub use error::KeyError;
pub use keys::{Keys, MasterPublicKeyInfo, SchnorrAlgorithm};

/// The threshold key names the emulator knows: the local replica's
/// `dfx_test_key` and mainnet's `test_key_1` and `key_1`.
pub const KEY_NAMES: [&str; 3] = ["dfx_test_key", "test_key_1", "key_1"];

/// Most elements a derivation path may have (the IC's limit).
pub const MAX_DERIVATION_PATH_LEN: usize = 255;

/// Longest principal (canister or subnet id), in bytes.
pub const MAX_PRINCIPAL_LEN: usize = 29;

/// Longest `certified_data`, in bytes.
pub const MAX_CERTIFIED_DATA_LEN: usize = 32;
