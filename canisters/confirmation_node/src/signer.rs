//! Signing headers for the hub, and the node's public key.

use stratros_confirmation::{BatchHeader, Blob, Confirmation, header_hash, header_signing_digest};

use crate::runtime::{Runtime, ThresholdError};
use crate::state::{Slot, mutate_state, read_state};
use crate::types::{LogEntry, SignError, SignResponse};

/// Gives the slot back if the signing future ends without recording a signature: on an error,
/// and also when the future is dropped (ic-cdk drops it when the callback traps).
struct Reservation {
    hub: candid::Principal,
    height: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        mutate_state(|s| s.release(self.hub, self.height));
    }
}

impl From<ThresholdError> for SignError {
    fn from(e: ThresholdError) -> Self {
        match e {
            ThresholdError::InsufficientCycles {
                available,
                required,
            } => SignError::InsufficientCycles {
                available,
                required,
            },
            ThresholdError::Rejected { code, message } => SignError::ThresholdCallFailed {
                reject_code: Some(code),
                message,
            },
            ThresholdError::UnknownKey(message) | ThresholdError::Other(message) => {
                SignError::ThresholdCallFailed {
                    reject_code: None,
                    message,
                }
            }
        }
    }
}

/// The node's public key: cached, or fetched (and cached) now.
pub async fn ensure_public_key<R: Runtime>(rt: &R) -> Result<Blob, SignError> {
    if let Some(key) = read_state(|s| s.public_key().cloned()) {
        return Ok(key);
    }
    let (scheme, key_name) = read_state(|s| (s.scheme(), s.key_name().to_string()));
    let key =
        rt.public_key(scheme, &key_name)
            .await
            .map_err(|e| SignError::PublicKeyUnavailable {
                message: format!("{e:?}"),
            })?;
    if key.len() != scheme.public_key_len() {
        return Err(SignError::PublicKeyUnavailable {
            message: format!(
                "the {scheme} public key has {} bytes, expected {}",
                key.len(),
                scheme.public_key_len()
            ),
        });
    }
    let key = Blob(key);
    // Concurrent fetches get the same key; the first one to return stores it.
    mutate_state(|s| {
        if s.public_key().is_none() {
            s.set_public_key(key.clone());
        }
    });
    Ok(key)
}

fn response<R: Runtime>(
    rt: &R,
    entry: LogEntry,
    public_key: Blob,
    newly_signed: bool,
) -> SignResponse {
    read_state(|s| SignResponse {
        confirmation: Confirmation {
            node: rt.canister_id(),
            scheme: s.scheme(),
            key_name: s.key_name().to_string(),
            public_key,
            signature: entry.signature,
        },
        header_hash: entry.header_hash,
        log_index: entry.index,
        newly_signed,
    })
}

/// Signs `header` for the hub, at most one header per (hub, height).
///
/// Order: caller and header checks; the public key (may await, once); then, with no `await` in
/// between, the slot check, the cycles check and the reservation; then the threshold call. A
/// failed call gives the reservation back: its signature, if the subnet produced one, reached
/// nobody, and a retry of the same header is safe (two signatures of one header are not an
/// equivocation).
pub async fn sign_header<R: Runtime>(
    rt: &R,
    header: BatchHeader,
) -> Result<SignResponse, SignError> {
    let caller = rt.caller();
    let (hub, scheme, key_name) = read_state(|s| (s.hub(), s.scheme(), s.key_name().to_string()));
    if caller != hub {
        return Err(SignError::NotHub { caller, hub });
    }
    if header.hub != hub {
        return Err(SignError::WrongHub {
            header_hub: header.hub,
            hub,
        });
    }
    let public_key = ensure_public_key(rt).await?;

    let header_hash = header_hash(&header);
    let required = rt.threshold_fee(scheme, &key_name)?;
    let reservation = mutate_state(|s| {
        match s.check_and_reserve(&header, &header_hash)? {
            Slot::Signed(entry) => return Ok(Err(entry)),
            Slot::Reserved => {}
        }
        let available = rt.liquid_cycles();
        if available < required {
            s.release(header.hub, header.height);
            return Err(SignError::InsufficientCycles {
                available,
                required,
            });
        }
        Ok(Ok(Reservation {
            hub: header.hub,
            height: header.height,
        }))
    })?;
    let reservation = match reservation {
        Ok(reservation) => reservation,
        Err(signed) => return Ok(response(rt, *signed, public_key, false)),
    };

    let node = rt.canister_id();
    let digest = header_signing_digest(scheme, &node, &header);
    let signature = rt.sign(scheme, &key_name, &digest).await?;
    if signature.len() != scheme.signature_len() {
        return Err(SignError::ThresholdCallFailed {
            reject_code: None,
            message: format!(
                "the {scheme} signature has {} bytes, expected {}",
                signature.len(),
                scheme.signature_len()
            ),
        });
    }
    let now = rt.time();
    let (entry, root) = mutate_state(|s| {
        let entry = s.record_signed(header, header_hash, Blob(signature), now);
        (entry, s.certified_root())
    });
    rt.set_certified_data(&root);
    drop(reservation);
    Ok(response(rt, entry, public_key, true))
}
