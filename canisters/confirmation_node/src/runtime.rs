//! What the node's logic needs from the IC, behind a trait so that the logic runs natively in
//! unit tests with a stub.

use candid::Principal;
use ic_cdk_management_canister as mgmt;
use stratros_confirmation::{Hash32, Scheme, VETKD_CONTEXT};

/// Why a threshold call (signature or public key) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThresholdError {
    /// The subnet does not know the key name (or the scheme's curve).
    UnknownKey(String),
    /// The call could not be made for want of cycles.
    InsufficientCycles { available: u128, required: u128 },
    /// The management canister rejected the call (the signature may still have been produced).
    Rejected { code: u32, message: String },
    /// Anything else: the call could not be made or its answer did not decode.
    Other(String),
}

/// The IC as the node sees it.
#[allow(async_fn_in_trait)]
pub trait Runtime {
    fn caller(&self) -> Principal;
    fn canister_id(&self) -> Principal;
    fn time(&self) -> u64;
    /// Cycles the node may spend without freezing.
    fn liquid_cycles(&self) -> u128;
    /// The fee of one threshold signature (or vetKD derivation) with this key.
    fn threshold_fee(&self, scheme: Scheme, key_name: &str) -> Result<u128, ThresholdError>;
    fn set_certified_data(&self, data: &[u8; 32]);
    /// The raw signature of `digest` under this node's derived key: 64 bytes (ECDSA r‖s,
    /// BIP340, Ed25519) or 48 bytes (BLS, E3 of a vetKD key for the identity transport key).
    async fn sign(
        &self,
        scheme: Scheme,
        key_name: &str,
        digest: &Hash32,
    ) -> Result<Vec<u8>, ThresholdError>;
    /// This node's derived public key (SEC1 33 bytes, Ed25519 32 bytes, G2 96 bytes).
    async fn public_key(&self, scheme: Scheme, key_name: &str) -> Result<Vec<u8>, ThresholdError>;
}

/// The G1 identity (compressed): with it as transport key, `E3` of a vetKD key is the plain
/// BLS signature.
pub const IDENTITY_TRANSPORT_KEY: [u8; 48] = {
    let mut k = [0u8; 48];
    k[0] = 0xc0;
    k
};
/// Where the BLS signature lies in a vetKD encrypted key (E1 48 ‖ E2 96 ‖ E3 48).
pub const VETKD_SIGNATURE_RANGE: std::ops::Range<usize> = 144..192;

/// The real IC, through ic-cdk.
pub struct IcRuntime;

fn ecdsa_key(name: &str) -> mgmt::EcdsaKeyId {
    mgmt::EcdsaKeyId {
        curve: mgmt::EcdsaCurve::Secp256k1,
        name: name.to_string(),
    }
}

fn schnorr_key(scheme: Scheme, name: &str) -> mgmt::SchnorrKeyId {
    let algorithm = match scheme {
        Scheme::SchnorrEd25519 => mgmt::SchnorrAlgorithm::Ed25519,
        _ => mgmt::SchnorrAlgorithm::Bip340secp256k1,
    };
    mgmt::SchnorrKeyId {
        algorithm,
        name: name.to_string(),
    }
}

fn vetkd_key(name: &str) -> mgmt::VetKDKeyId {
    mgmt::VetKDKeyId {
        curve: mgmt::VetKDCurve::Bls12_381_G2,
        name: name.to_string(),
    }
}

fn from_call_failed(e: ic_cdk::call::CallFailed) -> ThresholdError {
    use ic_cdk::call::CallFailed;
    match e {
        CallFailed::InsufficientLiquidCycleBalance(e) => ThresholdError::InsufficientCycles {
            available: e.available,
            required: e.required,
        },
        CallFailed::CallRejected(e) => ThresholdError::Rejected {
            code: e.raw_reject_code(),
            message: e.reject_message().to_string(),
        },
        CallFailed::CallPerformFailed(e) => ThresholdError::Other(e.to_string()),
    }
}

fn from_sign_error(e: mgmt::SignCallError) -> ThresholdError {
    match e {
        mgmt::SignCallError::SignCostError(e) => ThresholdError::UnknownKey(e.to_string()),
        mgmt::SignCallError::CallFailed(e) => from_call_failed(e),
        mgmt::SignCallError::CandidDecodeFailed(e) => ThresholdError::Other(e.to_string()),
    }
}

fn from_error(e: ic_cdk::call::Error) -> ThresholdError {
    use ic_cdk::call::Error;
    match e {
        Error::InsufficientLiquidCycleBalance(e) => ThresholdError::InsufficientCycles {
            available: e.available,
            required: e.required,
        },
        Error::CallRejected(e) => ThresholdError::Rejected {
            code: e.raw_reject_code(),
            message: e.reject_message().to_string(),
        },
        other => ThresholdError::Other(other.to_string()),
    }
}

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

    fn liquid_cycles(&self) -> u128 {
        ic_cdk::api::canister_liquid_cycle_balance()
    }

    fn threshold_fee(&self, scheme: Scheme, key_name: &str) -> Result<u128, ThresholdError> {
        let result = match scheme {
            Scheme::EcdsaSecp256k1 => {
                ic_cdk::api::cost_sign_with_ecdsa(key_name, u32::from(mgmt::EcdsaCurve::Secp256k1))
            }
            Scheme::SchnorrBip340 | Scheme::SchnorrEd25519 => ic_cdk::api::cost_sign_with_schnorr(
                key_name,
                u32::from(schnorr_key(scheme, key_name).algorithm),
            ),
            Scheme::Bls12_381 => ic_cdk::api::cost_vetkd_derive_key(
                key_name,
                u32::from(mgmt::VetKDCurve::Bls12_381_G2),
            ),
        };
        result.map_err(|e| ThresholdError::UnknownKey(format!("{key_name:?}: {e}")))
    }

    fn set_certified_data(&self, data: &[u8; 32]) {
        ic_cdk::api::certified_data_set(data);
    }

    async fn sign(
        &self,
        scheme: Scheme,
        key_name: &str,
        digest: &Hash32,
    ) -> Result<Vec<u8>, ThresholdError> {
        match scheme {
            Scheme::EcdsaSecp256k1 => mgmt::sign_with_ecdsa(&mgmt::SignWithEcdsaArgs {
                message_hash: digest.0.to_vec(),
                derivation_path: vec![],
                key_id: ecdsa_key(key_name),
            })
            .await
            .map(|r| r.signature)
            .map_err(from_sign_error),
            Scheme::SchnorrBip340 | Scheme::SchnorrEd25519 => {
                mgmt::sign_with_schnorr(&mgmt::SignWithSchnorrArgs {
                    message: digest.0.to_vec(),
                    derivation_path: vec![],
                    key_id: schnorr_key(scheme, key_name),
                    aux: None,
                })
                .await
                .map(|r| r.signature)
                .map_err(from_sign_error)
            }
            Scheme::Bls12_381 => {
                let reply = mgmt::vetkd_derive_key(&mgmt::VetKDDeriveKeyArgs {
                    input: digest.0.to_vec(),
                    context: VETKD_CONTEXT.to_vec(),
                    transport_public_key: IDENTITY_TRANSPORT_KEY.to_vec(),
                    key_id: vetkd_key(key_name),
                })
                .await
                .map_err(from_sign_error)?;
                reply
                    .encrypted_key
                    .get(VETKD_SIGNATURE_RANGE)
                    .filter(|_| reply.encrypted_key.len() == VETKD_SIGNATURE_RANGE.end)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| {
                        ThresholdError::Other(format!(
                            "vetkd_derive_key returned {} bytes, expected 192",
                            reply.encrypted_key.len()
                        ))
                    })
            }
        }
    }

    async fn public_key(&self, scheme: Scheme, key_name: &str) -> Result<Vec<u8>, ThresholdError> {
        match scheme {
            Scheme::EcdsaSecp256k1 => mgmt::ecdsa_public_key(&mgmt::EcdsaPublicKeyArgs {
                canister_id: None,
                derivation_path: vec![],
                key_id: ecdsa_key(key_name),
            })
            .await
            .map(|r| r.public_key)
            .map_err(from_error),
            Scheme::SchnorrBip340 | Scheme::SchnorrEd25519 => {
                mgmt::schnorr_public_key(&mgmt::SchnorrPublicKeyArgs {
                    canister_id: None,
                    derivation_path: vec![],
                    key_id: schnorr_key(scheme, key_name),
                })
                .await
                .map(|r| r.public_key)
                .map_err(from_error)
            }
            Scheme::Bls12_381 => mgmt::vetkd_public_key(&mgmt::VetKDPublicKeyArgs {
                canister_id: None,
                context: VETKD_CONTEXT.to_vec(),
                key_id: vetkd_key(key_name),
            })
            .await
            .map(|r| r.public_key)
            .map_err(from_error),
        }
    }
}
