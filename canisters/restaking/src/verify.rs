//! Equivocation proofs, verified in the canister.
//!
//! The same checks as `stratros_verify::verify_equivocation` (a test compares the two), with
//! the three signature crates used directly: stratros-verify itself also links the IC
//! certificate verifier, whose `cached → web-time` dependency imports `wasm-bindgen`
//! functions on wasm32, and a canister importing anything outside `ic0` does not install.

use stratros_confirmation::{
    EquivocationEvidence, Hash32, Scheme, check_equivocation_structure, header_signing_digest,
};

/// Checks a signature of `scheme` by `public_key` over the 32-byte `digest`.
pub fn verify_signature(
    scheme: Scheme,
    public_key: &[u8],
    digest: &Hash32,
    signature: &[u8],
) -> Result<(), String> {
    if public_key.len() != scheme.public_key_len() {
        return Err("malformed public key".into());
    }
    let ok = match scheme {
        Scheme::EcdsaSecp256k1 => ic_secp256k1::PublicKey::deserialize_sec1(public_key)
            .map_err(|_| "malformed public key".to_string())?
            .verify_ecdsa_signature_prehashed(&digest.0, signature),
        Scheme::SchnorrBip340 => ic_secp256k1::PublicKey::deserialize_sec1(public_key)
            .map_err(|_| "malformed public key".to_string())?
            .verify_bip340_signature(&digest.0, signature),
        Scheme::SchnorrEd25519 => ic_ed25519::PublicKey::deserialize_raw(public_key)
            .map_err(|_| "malformed public key".to_string())?
            .verify_signature(&digest.0, signature)
            .is_ok(),
        Scheme::Bls12_381 => {
            let key = ic_vetkeys::DerivedPublicKey::deserialize(public_key)
                .map_err(|_| "malformed public key".to_string())?;
            ic_vetkeys::verify_bls_signature(&key, &digest.0, signature)
        }
    };
    if ok {
        Ok(())
    } else {
        Err("invalid signature".into())
    }
}

/// Two different headers of one hub and height, both signed by `evidence.node` with
/// `public_key` under `scheme`.
pub fn verify_equivocation(
    evidence: &EquivocationEvidence,
    public_key: &[u8],
    scheme: Scheme,
) -> Result<(), String> {
    check_equivocation_structure(evidence).map_err(|e| e.to_string())?;
    if evidence.scheme != scheme {
        return Err(format!(
            "the evidence names {}, the node signs with {scheme}",
            evidence.scheme
        ));
    }
    for (which, signed) in [("first", &evidence.first), ("second", &evidence.second)] {
        let digest = header_signing_digest(scheme, &evidence.node, &signed.header);
        verify_signature(scheme, public_key, &digest, signed.signature.as_slice())
            .map_err(|e| format!("{which} signature: {e}"))?;
    }
    Ok(())
}
