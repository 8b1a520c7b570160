//! The master keys of an emulated IC and the management canister's threshold
//! key API on top of them (`ecdsa_public_key`, `sign_with_ecdsa`,
//! `schnorr_public_key`, `sign_with_schnorr`, `vetkd_public_key`,
//! `vetkd_derive_key`).

use crate::bls::{CertificationKey, scalar_from_hash};
use crate::error::KeyError;
use crate::vetkd::VetKdKey;
use crate::{KEY_NAMES, MAX_DERIVATION_PATH_LEN, MAX_PRINCIPAL_LEN};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[cfg(test)]
mod tests;

/// The two algorithms of `sign_with_schnorr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SchnorrAlgorithm {
    /// BIP340 over secp256k1 (`bip340secp256k1`), optionally BIP341-tweaked.
    Bip340Secp256k1,
    /// Ed25519 (`ed25519`).
    Ed25519,
}

/// One master public key, as [`Keys::master_public_keys`] lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasterPublicKeyInfo {
    /// `ecdsa_secp256k1`, `schnorr_bip340`, `schnorr_ed25519` or `vetkd_bls12_381`.
    pub scheme: String,
    /// One of [`KEY_NAMES`].
    pub key_name: String,
    /// SEC1 compressed (secp256k1), 32 bytes (Ed25519) or 96-byte G2 (vetKD), in hex.
    pub public_key_hex: String,
    /// The master chain code (all zeros on the IC) for the schemes that have one.
    pub chain_code_hex: Option<String>,
}

/// Every master key of one key name.
#[derive(Clone)]
struct MasterKeySet {
    name: &'static str,
    ecdsa: ic_secp256k1::PrivateKey,
    bip340: ic_secp256k1::PrivateKey,
    ed25519: ic_ed25519::PrivateKey,
    vetkd: VetKdKey,
}

/// All master secret keys of an emulated IC: per key name in [`KEY_NAMES`],
/// one secp256k1 key for ECDSA, one for BIP340, one Ed25519 key and one vetKD
/// key, plus the root (NNS) certification key. Subnet certification keys
/// are derived from the same seed (see [`Keys::subnet_signer`]).
///
/// Generated deterministically from a 32-byte seed: the same seed gives the
/// same keys. The `Debug` output shows public keys only.
#[derive(Clone)]
pub struct Keys {
    seed: [u8; 32],
    sets: Vec<MasterKeySet>,
    pub(crate) root: CertificationKey,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("master_public_keys", &self.master_public_keys())
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// 32 bytes of key material for one purpose, from the seed.
pub(crate) fn seed_for(seed: &[u8; 32], purpose: &str, name: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"ic-emulator-crypto\0");
    for part in [purpose.as_bytes(), name] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(seed);
    h.finalize().into()
}

fn check_principal(id: &[u8]) -> Result<(), KeyError> {
    if id.len() > MAX_PRINCIPAL_LEN {
        return Err(KeyError::InvalidPrincipal {
            len: id.len(),
            max: MAX_PRINCIPAL_LEN,
        });
    }
    Ok(())
}

fn check_path(derivation_path: &[Vec<u8>]) -> Result<(), KeyError> {
    if derivation_path.len() > MAX_DERIVATION_PATH_LEN {
        return Err(KeyError::DerivationPathTooLong {
            len: derivation_path.len(),
            max: MAX_DERIVATION_PATH_LEN,
        });
    }
    Ok(())
}

fn secp256k1_path(canister_id: &[u8], path: &[Vec<u8>]) -> ic_secp256k1::DerivationPath {
    ic_secp256k1::DerivationPath::from_canister_id_and_path(canister_id, path)
}

fn ed25519_path(canister_id: &[u8], path: &[Vec<u8>]) -> ic_ed25519::DerivationPath {
    ic_ed25519::DerivationPath::from_canister_id_and_path(canister_id, path)
}

impl Keys {
    /// Generate every master key from `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let sets = KEY_NAMES
            .iter()
            .map(|&name| MasterKeySet {
                name,
                ecdsa: ic_secp256k1::PrivateKey::generate_from_seed(&seed_for(
                    &seed,
                    "ecdsa_secp256k1",
                    name.as_bytes(),
                )),
                bip340: ic_secp256k1::PrivateKey::generate_from_seed(&seed_for(
                    &seed,
                    "schnorr_bip340",
                    name.as_bytes(),
                )),
                ed25519: ic_ed25519::PrivateKey::generate_from_seed(&seed_for(
                    &seed,
                    "schnorr_ed25519",
                    name.as_bytes(),
                )),
                vetkd: VetKdKey::from_secret(scalar_from_hash(
                    b"vetkd_bls12_381",
                    &seed_for(&seed, "vetkd_bls12_381", name.as_bytes()),
                )),
            })
            .collect();
        let root = CertificationKey::from_secret(scalar_from_hash(
            b"root",
            &seed_for(&seed, "certification", b"root"),
        ));
        Self { seed, sets, root }
    }

    /// Whether `name` is one of [`KEY_NAMES`].
    pub fn is_known_key_name(name: &str) -> bool {
        KEY_NAMES.contains(&name)
    }

    pub(crate) fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    fn set(&self, key_name: &str) -> Result<&MasterKeySet, KeyError> {
        self.sets
            .iter()
            .find(|s| s.name == key_name)
            .ok_or_else(|| KeyError::UnknownKeyName {
                key_name: key_name.to_string(),
            })
    }

    /// `ecdsa_public_key`: the derived key (SEC1 compressed, 33 bytes) and its
    /// chain code (32 bytes).
    pub fn ecdsa_public_key(
        &self,
        key_name: &str,
        canister_id: &[u8],
        derivation_path: &[Vec<u8>],
    ) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
        let set = self.set(key_name)?;
        check_principal(canister_id)?;
        check_path(derivation_path)?;
        let (pk, chain_code) = set
            .ecdsa
            .public_key()
            .derive_subkey(&secp256k1_path(canister_id, derivation_path));
        Ok((pk.serialize_sec1(true), chain_code.to_vec()))
    }

    /// `sign_with_ecdsa`: 64 bytes `r ‖ s` with low `s` (RFC 6979, so
    /// deterministic) over a 32-byte message hash.
    pub fn sign_with_ecdsa(
        &self,
        key_name: &str,
        canister_id: &[u8],
        derivation_path: &[Vec<u8>],
        message_hash: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let set = self.set(key_name)?;
        check_principal(canister_id)?;
        check_path(derivation_path)?;
        if message_hash.len() != 32 {
            return Err(KeyError::InvalidMessageHashLength {
                len: message_hash.len(),
            });
        }
        let (sk, _) = set
            .ecdsa
            .derive_subkey(&secp256k1_path(canister_id, derivation_path));
        Ok(sk.sign_digest_with_ecdsa(message_hash).to_vec())
    }

    /// `schnorr_public_key`: BIP340 keys as 33-byte SEC1 compressed (drop the
    /// first byte for the x-only key), Ed25519 keys as 32 bytes; with the
    /// 32-byte chain code.
    pub fn schnorr_public_key(
        &self,
        alg: SchnorrAlgorithm,
        key_name: &str,
        canister_id: &[u8],
        derivation_path: &[Vec<u8>],
    ) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
        let set = self.set(key_name)?;
        check_principal(canister_id)?;
        check_path(derivation_path)?;
        match alg {
            SchnorrAlgorithm::Bip340Secp256k1 => {
                let (pk, chain_code) = set
                    .bip340
                    .public_key()
                    .derive_subkey(&secp256k1_path(canister_id, derivation_path));
                Ok((pk.serialize_sec1(true), chain_code.to_vec()))
            }
            SchnorrAlgorithm::Ed25519 => {
                let (pk, chain_code) = set
                    .ed25519
                    .public_key()
                    .derive_subkey(&ed25519_path(canister_id, derivation_path));
                Ok((pk.serialize_raw().to_vec(), chain_code.to_vec()))
            }
        }
    }

    /// `sign_with_schnorr`: a 64-byte signature of `message` (any length).
    ///
    /// For BIP340, `bip341_merkle_root` `None` signs with the derived key,
    /// `Some(root)` (empty or 32 bytes) with its BIP341 tweak; `aux_rand` is
    /// BIP340's auxiliary randomness. Ed25519 takes no merkle root and is
    /// deterministic here (the IC's threshold Ed25519 is not; verifiers
    /// cannot tell).
    #[allow(clippy::too_many_arguments)]
    pub fn sign_with_schnorr(
        &self,
        alg: SchnorrAlgorithm,
        key_name: &str,
        canister_id: &[u8],
        derivation_path: &[Vec<u8>],
        message: &[u8],
        bip341_merkle_root: Option<&[u8]>,
        aux_rand: [u8; 32],
    ) -> Result<Vec<u8>, KeyError> {
        let set = self.set(key_name)?;
        check_principal(canister_id)?;
        check_path(derivation_path)?;
        match alg {
            SchnorrAlgorithm::Bip340Secp256k1 => {
                if let Some(root) = bip341_merkle_root
                    && !root.is_empty()
                    && root.len() != 32
                {
                    return Err(KeyError::InvalidMerkleRootLength { len: root.len() });
                }
                let (sk, _) = set
                    .bip340
                    .derive_subkey(&secp256k1_path(canister_id, derivation_path));
                let mut rng = rand_chacha::ChaCha20Rng::from_seed(aux_rand);
                match bip341_merkle_root {
                    None => Ok(sk.sign_message_with_bip340(message, &mut rng).to_vec()),
                    Some(root) => sk
                        .sign_message_with_bip341(message, &mut rng, root)
                        .map(|sig| sig.to_vec())
                        .map_err(|_| KeyError::InvalidMerkleRootLength { len: root.len() }),
                }
            }
            SchnorrAlgorithm::Ed25519 => {
                if bip341_merkle_root.is_some() {
                    return Err(KeyError::MerkleRootNotSupported);
                }
                let (sk, _) = set
                    .ed25519
                    .derive_subkey(&ed25519_path(canister_id, derivation_path));
                Ok(sk.sign_message(message).to_vec())
            }
        }
    }

    /// `vetkd_public_key`: the 96-byte G2 key of a canister and context.
    pub fn vetkd_public_key(
        &self,
        key_name: &str,
        canister_id: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let set = self.set(key_name)?;
        check_principal(canister_id)?;
        Ok(set
            .vetkd
            .derive(canister_id, context)
            .public_key_bytes()
            .to_vec())
    }

    /// `vetkd_derive_key`: the encrypted key `E1(48) ‖ E2(96) ‖ E3(48)` for
    /// `input`, under a 48-byte compressed G1 transport public key. `rand`
    /// is the encryption randomness; with the identity transport key
    /// (`0xc0` then 47 zero bytes) `E3` is the deterministic BLS signature.
    pub fn vetkd_derive_key(
        &self,
        key_name: &str,
        canister_id: &[u8],
        context: &[u8],
        input: &[u8],
        transport_public_key: &[u8],
        rand: [u8; 32],
    ) -> Result<Vec<u8>, KeyError> {
        let set = self.set(key_name)?;
        check_principal(canister_id)?;
        set.vetkd
            .derive(canister_id, context)
            .encrypted_key(input, transport_public_key, rand)
    }

    /// Every master public key, for offline derivation by clients.
    pub fn master_public_keys(&self) -> Vec<MasterPublicKeyInfo> {
        let zero_chain_code = Some(hex::encode([0u8; 32]));
        let mut out = Vec::with_capacity(4 * self.sets.len());
        for set in &self.sets {
            let entries = [
                (
                    "ecdsa_secp256k1",
                    set.ecdsa.public_key().serialize_sec1(true),
                    zero_chain_code.clone(),
                ),
                (
                    "schnorr_bip340",
                    set.bip340.public_key().serialize_sec1(true),
                    zero_chain_code.clone(),
                ),
                (
                    "schnorr_ed25519",
                    set.ed25519.public_key().serialize_raw().to_vec(),
                    zero_chain_code.clone(),
                ),
                (
                    "vetkd_bls12_381",
                    set.vetkd.public_key_bytes().to_vec(),
                    None,
                ),
            ];
            out.extend(entries.into_iter().map(|(scheme, pk, chain_code_hex)| {
                MasterPublicKeyInfo {
                    scheme: scheme.to_string(),
                    key_name: set.name.to_string(),
                    public_key_hex: hex::encode(pk),
                    chain_code_hex,
                }
            }));
        }
        out
    }

    /// The IC root key in DER (133 bytes), as a local replica's
    /// `fetch_root_key` returns it.
    pub fn root_public_key_der(&self) -> Vec<u8> {
        self.root.public_key_der()
    }
}
