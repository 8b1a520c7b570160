//! vetKD over BLS12-381 (G2 keys, G1 signatures): the IC's two-step key
//! derivation (canister id, then context) done on the secret side, and the
//! encryption of the derived BLS signature under a transport key.

use crate::bls::{hash_to_scalar_two_inputs, scalar_from_hash, sign_augmented};
use crate::error::KeyError;
use ic_bls12_381::{G1Affine, G1Projective, G2Affine, Scalar};

const DST_CANISTER_ID: &str = "ic-vetkd-bls12-381-g2-canister-id";
const DST_CONTEXT: &str = "ic-vetkd-bls12-381-g2-context";

/// A vetKD key pair: the master key, or a key derived from it.
#[derive(Clone)]
pub(crate) struct VetKdKey {
    secret: Scalar,
    public: G2Affine,
}

impl VetKdKey {
    pub(crate) fn from_secret(secret: Scalar) -> Self {
        let public = G2Affine::from(G2Affine::generator() * secret);
        Self { secret, public }
    }

    pub(crate) fn public_key_bytes(&self) -> [u8; 96] {
        self.public.to_compressed()
    }

    /// Add `offset` to the secret key and `offset · G2` to the public key.
    fn shifted(&self, offset: Scalar) -> Self {
        let public = G2Affine::from(G2Affine::generator() * offset + self.public);
        Self {
            secret: self.secret + offset,
            public,
        }
    }

    /// The key of `vetkd_public_key` / `vetkd_derive_key` for a canister and
    /// context, as `MasterPublicKey::derive_canister_key(canister_id)
    /// .derive_sub_key(context)` computes it on the public side.
    pub(crate) fn derive(&self, canister_id: &[u8], context: &[u8]) -> Self {
        let offset =
            hash_to_scalar_two_inputs(&self.public_key_bytes(), canister_id, DST_CANISTER_ID);
        let canister_key = self.shifted(offset);
        if context.is_empty() {
            return canister_key;
        }
        let offset =
            hash_to_scalar_two_inputs(&canister_key.public_key_bytes(), context, DST_CONTEXT);
        canister_key.shifted(offset)
    }

    /// The encrypted key `E1 ‖ E2 ‖ E3` (48 + 96 + 48 bytes):
    /// `E1 = r·G1`, `E2 = r·G2`, `E3 = σ + r·tpk` where `σ` is the augmented
    /// BLS signature of `input`. With the identity as transport key, `E3 = σ`.
    pub(crate) fn encrypted_key(
        &self,
        input: &[u8],
        transport_public_key: &[u8],
        rand: [u8; 32],
    ) -> Result<Vec<u8>, KeyError> {
        let tpk_bytes: [u8; 48] = transport_public_key
            .try_into()
            .map_err(|_| KeyError::InvalidTransportPublicKey)?;
        let tpk = Option::<G1Affine>::from(G1Affine::from_compressed(&tpk_bytes))
            .ok_or(KeyError::InvalidTransportPublicKey)?;

        let signature = sign_augmented(&self.secret, &self.public, input);
        let r = scalar_from_hash(b"ic-emulator-crypto vetkd encryption", &rand);

        let e1 = G1Affine::from(G1Affine::generator() * r);
        let e2 = G2Affine::from(G2Affine::generator() * r);
        let e3 = G1Affine::from(G1Projective::from(signature) + tpk * r);

        let mut out = Vec::with_capacity(192);
        out.extend_from_slice(&e1.to_compressed());
        out.extend_from_slice(&e2.to_compressed());
        out.extend_from_slice(&e3.to_compressed());
        Ok(out)
    }
}
