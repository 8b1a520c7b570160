//! Equivocation proofs, verified in the canister.
//!
//! The same checks as `stratros_verify::verify_equivocation` (a test compares the two). Each
//! signature is checked by `stratros_signatures::verify_signature`, the one function the
//! offline verifier and the hub use too; restaking does not link `stratros-verify` itself: it
//! also links the IC certificate verifier, whose `cached → web-time` dependency imports
//! `wasm-bindgen` functions on wasm32, and a canister importing anything outside `ic0` does
//! not install.

use stratros_confirmation::{
    EquivocationEvidence, Scheme, check_equivocation_structure, header_signing_digest,
};
use stratros_signatures::verify_signature;

/// Two different headers of one hub and height, both signed by `evidence.node` with
/// `public_key` under `scheme`. The error reads as before the shared crate: "first
/// signature: malformed public key", "second signature: invalid signature", ….
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
