//! Offline verification of Stratros receipts and equivocation evidence.
//!
//! [`verify_receipt`] checks, in order: the leaf hash, the Merkle proof against the header's root,
//! the quorum policy hash in the header, every confirmation (policy membership, key derived from
//! the trust anchors' master key for that node, signature over the signing digest), the quorum,
//! and the IC certificate (root key, delegation, freshness) with the witness that holds the header
//! hash at `headers/<height>`.

mod anchors;
mod error;
mod strict_cbor;

pub use anchors::{MAINNET_ROOT_KEY_DER, MasterKey, TrustAnchors, derive_from_master};
pub use error::{ConfirmationFailure, VerifyError};

use candid::Principal;
use ic_cbor::{CertificateToCbor, HashTreeToCbor};
use ic_certificate_verification::VerifyCertificate;
use ic_certification::{Certificate, HashTree, LookupResult};
use std::collections::BTreeSet;
use stratros_confirmation::{
    EquivocationEvidence, Hash32, Receipt, Scheme, certified_header_path,
    check_equivocation_structure, header_hash, header_signing_digest, leaf_hash, merkle,
    quorum_policy_hash, signing_digest,
};

/// What a valid receipt establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedReceipt {
    pub record_id: u64,
    pub hub: Principal,
    pub height: u64,
    pub header_hash: Hash32,
    pub leaf_hash: Hash32,
    /// The nodes whose confirmations were checked, with their schemes.
    pub confirmed_by: Vec<(Principal, Scheme)>,
}

/// Checks a signature of `scheme` by `public_key` over the 32-byte `digest`.
/// `Err(MalformedPublicKey)` when the key does not decode, `Err(InvalidSignature)` when it does
/// not verify.
pub fn verify_signature(
    scheme: Scheme,
    public_key: &[u8],
    digest: &Hash32,
    signature: &[u8],
) -> Result<(), ConfirmationFailure> {
    stratros_signatures::verify_signature(scheme, public_key, digest, signature).map_err(
        |e| match e {
            stratros_signatures::SignatureError::MalformedPublicKey => {
                ConfirmationFailure::MalformedPublicKey
            }
            stratros_signatures::SignatureError::InvalidSignature => {
                ConfirmationFailure::InvalidSignature
            }
        },
    )
}

/// Verifies a receipt offline. `now_nanos` is the current time (Unix epoch, nanoseconds);
/// the certificate's `/time` must lie within `max_cert_age_nanos` of it (either side).
pub fn verify_receipt(
    receipt: &Receipt,
    anchors: &TrustAnchors,
    now_nanos: u64,
    max_cert_age_nanos: u64,
) -> Result<VerifiedReceipt, VerifyError> {
    let header = &receipt.header;
    let record = &receipt.record;

    // 1. The record and its leaf.
    let computed = leaf_hash(record);
    if computed != receipt.leaf_hash {
        return Err(VerifyError::LeafHashMismatch {
            computed,
            claimed: receipt.leaf_hash,
        });
    }
    if record.id < header.first_record_id || record.id > header.last_record_id {
        return Err(VerifyError::RecordOutsideBatch {
            id: record.id,
            first: header.first_record_id,
            last: header.last_record_id,
        });
    }

    // 2. The Merkle proof.
    if receipt.leaf_index >= header.leaf_count {
        return Err(VerifyError::LeafIndexOutOfRange {
            index: receipt.leaf_index,
            leaf_count: header.leaf_count,
        });
    }
    if !merkle::verify_proof(
        &header.merkle_root,
        &computed,
        receipt.leaf_index,
        header.leaf_count,
        &receipt.proof,
    ) {
        return Err(VerifyError::MerkleProofInvalid);
    }

    // 3. The policy is the one the header commits to.
    let policy = &receipt.quorum_policy;
    let policy_hash = quorum_policy_hash(policy);
    if policy_hash != header.quorum_policy_hash {
        return Err(VerifyError::PolicyHashMismatch {
            computed: policy_hash,
            in_header: header.quorum_policy_hash,
        });
    }
    policy.validate()?;

    // 4. Every confirmation.
    let hh = header_hash(header);
    let mut seen = BTreeSet::new();
    let mut confirmed_by = Vec::new();
    for (index, c) in receipt.confirmations.iter().enumerate() {
        let fail = |failure| VerifyError::Confirmation {
            index,
            node: c.node,
            scheme: c.scheme,
            failure,
        };
        let entry = policy
            .node(&c.node)
            .ok_or_else(|| fail(ConfirmationFailure::NotInPolicy))?;
        if !seen.insert(c.node) {
            return Err(fail(ConfirmationFailure::DuplicateNode));
        }
        if entry.scheme != c.scheme {
            return Err(fail(ConfirmationFailure::SchemeMismatch {
                policy: entry.scheme,
            }));
        }
        if entry.key_name != c.key_name {
            return Err(fail(ConfirmationFailure::KeyNameMismatch {
                policy: entry.key_name.clone(),
            }));
        }
        let expected = anchors
            .derive_node_key(c.scheme, &c.key_name, &c.node)
            .map_err(|e| fail(ConfirmationFailure::CannotDerive(e)))?;
        if expected != c.public_key.as_slice() {
            return Err(fail(ConfirmationFailure::PublicKeyNotDerived {
                expected: hex::encode(expected),
            }));
        }
        let digest = signing_digest(c.scheme, &c.node, &header.hub, header.height, &hh);
        verify_signature(
            c.scheme,
            c.public_key.as_slice(),
            &digest,
            c.signature.as_slice(),
        )
        .map_err(fail)?;
        confirmed_by.push((c.node, c.scheme));
    }

    // 5. The quorum.
    if !policy.is_satisfied(confirmed_by.iter().map(|(p, _)| p)) {
        return Err(VerifyError::QuorumNotReached {
            confirmed: confirmed_by.len(),
        });
    }

    // 6. The IC certificate and the witness.
    verify_certified_header(
        receipt.certificate.as_slice(),
        receipt.witness.as_slice(),
        &header.hub,
        header.height,
        &hh,
        anchors.root_key.as_slice(),
        now_nanos,
        max_cert_age_nanos,
    )?;

    Ok(VerifiedReceipt {
        record_id: record.id,
        hub: header.hub,
        height: header.height,
        header_hash: hh,
        leaf_hash: computed,
        confirmed_by,
    })
}

/// Checks that `certificate` (CBOR) is valid for `hub` under `root_key_der` and fresh, that its
/// `/canister/<hub>/certified_data` equals the root hash of `witness` (CBOR hash tree), and that
/// the witness holds `header_hash` at `headers/<height: u64 BE>`.
#[allow(clippy::too_many_arguments)]
pub fn verify_certified_header(
    certificate: &[u8],
    witness: &[u8],
    hub: &Principal,
    height: u64,
    header_hash: &Hash32,
    root_key_der: &[u8],
    now_nanos: u64,
    max_cert_age_nanos: u64,
) -> Result<(), VerifyError> {
    strict_cbor::check(certificate)
        .map_err(|e| VerifyError::CertificateMalformed(format!("non-canonical CBOR: {e}")))?;
    strict_cbor::check(witness)
        .map_err(|e| VerifyError::WitnessMalformed(format!("non-canonical CBOR: {e}")))?;
    let cert = Certificate::from_cbor(certificate)
        .map_err(|e| VerifyError::CertificateMalformed(e.to_string()))?;
    cert.verify(
        hub.as_slice(),
        root_key_der,
        &u128::from(now_nanos),
        &u128::from(max_cert_age_nanos),
    )
    .map_err(|e| VerifyError::CertificateInvalid(e.to_string()))?;
    let certified =
        match cert
            .tree
            .lookup_path([b"canister".as_slice(), hub.as_slice(), b"certified_data"])
        {
            LookupResult::Found(v) => v.to_vec(),
            _ => return Err(VerifyError::CertifiedDataMissing(*hub)),
        };
    let tree: HashTree =
        HashTree::from_cbor(witness).map_err(|e| VerifyError::WitnessMalformed(e.to_string()))?;
    let root = tree.digest();
    if certified != root {
        return Err(VerifyError::CertifiedDataMismatch {
            certified: hex::encode(&certified),
            witness: hex::encode(root),
        });
    }
    let path = certified_header_path(height);
    match tree.lookup_path(path.iter().map(|p| p.as_slice())) {
        LookupResult::Found(v) if v == header_hash.0 => Ok(()),
        LookupResult::Found(v) => Err(VerifyError::WitnessHeaderMismatch {
            height,
            witnessed: hex::encode(v),
            computed: *header_hash,
        }),
        _ => Err(VerifyError::HeaderNotInWitness { height }),
    }
}

/// Verifies equivocation evidence: structurally two different headers of one hub and height,
/// both signed by `evidence.node` with `public_key` under `scheme`.
///
/// The caller supplies the node's public key (e.g. derived with [`TrustAnchors::derive_node_key`]
/// or read from the node), so that restaking can check it against what it registered.
pub fn verify_equivocation(
    evidence: &EquivocationEvidence,
    public_key: &[u8],
    scheme: Scheme,
) -> Result<(), VerifyError> {
    check_equivocation_structure(evidence)?;
    if evidence.scheme != scheme {
        return Err(VerifyError::EvidenceSchemeMismatch {
            evidence: evidence.scheme,
            given: scheme,
        });
    }
    for (which, signed) in [("first", &evidence.first), ("second", &evidence.second)] {
        let digest = header_signing_digest(scheme, &evidence.node, &signed.header);
        match verify_signature(scheme, public_key, &digest, signed.signature.as_slice()) {
            Ok(()) => {}
            Err(ConfirmationFailure::MalformedPublicKey) => {
                return Err(VerifyError::EvidenceMalformedKey);
            }
            Err(_) => return Err(VerifyError::EvidenceSignatureInvalid { which }),
        }
    }
    Ok(())
}
