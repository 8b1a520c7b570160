//! One function, [`verify_signature`], shared by the offline verifier (`stratros-verify`), the
//! hub (which checks every node's signature before counting it) and restaking (which checks
//! equivocation proofs).
//!
//! A crate of its own because `stratros-verify` also links the IC certificate verifier, whose
//! `cached → web-time` dependency imports `wasm-bindgen` functions on wasm32, and a canister
//! that imports anything outside `ic0` does not install.

use stratros_confirmation::{Hash32, Scheme};

/// Why a signature was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// The public key has the wrong length or does not decode as a point of the scheme.
    MalformedPublicKey,
    /// The key decodes, the signature does not verify under it.
    InvalidSignature,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::MalformedPublicKey => "malformed public key",
            Self::InvalidSignature => "invalid signature",
        })
    }
}

impl std::error::Error for SignatureError {}

/// Checks a signature of `scheme` by `public_key` over the 32-byte `digest`.
///
/// Keys: SEC1 secp256k1 (33 bytes, compressed) for ECDSA and BIP340, raw Ed25519 (32 bytes),
/// a vetKD derived public key (G2, 96 bytes) for BLS, whose signature is the vetKD key
/// derived for the input `digest` (G1, 48 bytes).
pub fn verify_signature(
    scheme: Scheme,
    public_key: &[u8],
    digest: &Hash32,
    signature: &[u8],
) -> Result<(), SignatureError> {
    if public_key.len() != scheme.public_key_len() {
        return Err(SignatureError::MalformedPublicKey);
    }
    let ok = match scheme {
        Scheme::EcdsaSecp256k1 => ic_secp256k1::PublicKey::deserialize_sec1(public_key)
            .map_err(|_| SignatureError::MalformedPublicKey)?
            .verify_ecdsa_signature_prehashed(&digest.0, signature),
        Scheme::SchnorrBip340 => ic_secp256k1::PublicKey::deserialize_sec1(public_key)
            .map_err(|_| SignatureError::MalformedPublicKey)?
            .verify_bip340_signature(&digest.0, signature),
        Scheme::SchnorrEd25519 => ic_ed25519::PublicKey::deserialize_raw(public_key)
            .map_err(|_| SignatureError::MalformedPublicKey)?
            .verify_signature(&digest.0, signature)
            .is_ok(),
        Scheme::Bls12_381 => {
            let key = ic_vetkeys::DerivedPublicKey::deserialize(public_key)
                .map_err(|_| SignatureError::MalformedPublicKey)?;
            ic_vetkeys::verify_bls_signature(&key, &digest.0, signature)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(SignatureError::InvalidSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(byte: u8) -> Hash32 {
        Hash32([byte; 32])
    }

    #[test]
    fn should_accept_ecdsa_and_bip340_signatures_and_refuse_others() {
        let mut rng = rand::thread_rng();
        let key = ic_secp256k1::PrivateKey::generate_using_rng(&mut rng);
        let public = key.public_key().serialize_sec1(true);
        let d = digest(7);
        let ecdsa = key.sign_digest_with_ecdsa(&d.0);
        assert_eq!(
            verify_signature(Scheme::EcdsaSecp256k1, &public, &d, &ecdsa),
            Ok(())
        );
        assert_eq!(
            verify_signature(Scheme::EcdsaSecp256k1, &public, &digest(8), &ecdsa),
            Err(SignatureError::InvalidSignature)
        );
        let bip340 = key.sign_message_with_bip340_no_rng(&d.0);
        assert_eq!(
            verify_signature(Scheme::SchnorrBip340, &public, &d, &bip340),
            Ok(())
        );
        assert_eq!(
            verify_signature(Scheme::SchnorrBip340, &public, &d, &ecdsa),
            Err(SignatureError::InvalidSignature),
            "an ECDSA signature is not a BIP340 one"
        );
    }

    #[test]
    fn should_accept_ed25519_signatures_and_refuse_others() {
        let key = ic_ed25519::PrivateKey::generate_using_rng(&mut rand::thread_rng());
        let public = key.public_key().serialize_raw();
        let d = digest(1);
        let signature = key.sign_message(&d.0);
        assert_eq!(
            verify_signature(Scheme::SchnorrEd25519, &public, &d, &signature),
            Ok(())
        );
        let mut forged = signature;
        forged[0] ^= 1;
        assert_eq!(
            verify_signature(Scheme::SchnorrEd25519, &public, &d, &forged),
            Err(SignatureError::InvalidSignature)
        );
    }

    #[test]
    fn should_refuse_malformed_keys() {
        for scheme in [
            Scheme::EcdsaSecp256k1,
            Scheme::SchnorrBip340,
            Scheme::SchnorrEd25519,
            Scheme::Bls12_381,
        ] {
            assert_eq!(
                verify_signature(scheme, &[1, 2, 3], &digest(0), &[0; 64]),
                Err(SignatureError::MalformedPublicKey),
                "{scheme}"
            );
            if scheme == Scheme::SchnorrEd25519 {
                // ic-ed25519 accepts 0xff… as an encoding; the length check is what applies.
                continue;
            }
            let not_a_point = vec![0xff; scheme.public_key_len()];
            assert_eq!(
                verify_signature(scheme, &not_a_point, &digest(0), &[0; 64]),
                Err(SignatureError::MalformedPublicKey),
                "{scheme}"
            );
        }
    }
}
