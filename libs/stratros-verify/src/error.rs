//! What failed, precisely.

use candid::Principal;
use stratros_confirmation::{EvidenceError, Hash32, PolicyError, Scheme};

/// Why one confirmation was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfirmationFailure {
    #[error("the node is not in the quorum policy")]
    NotInPolicy,
    #[error("a second confirmation from the same node")]
    DuplicateNode,
    #[error("scheme differs from the policy's ({policy})")]
    SchemeMismatch { policy: Scheme },
    #[error("key name differs from the policy's ({policy:?})")]
    KeyNameMismatch { policy: String },
    #[error("cannot derive the node's key: {0}")]
    CannotDerive(String),
    #[error("public key is not the one derived from the master key (expected {expected})")]
    PublicKeyNotDerived { expected: String },
    #[error("public key is malformed")]
    MalformedPublicKey,
    #[error("signature is invalid")]
    InvalidSignature,
}

/// Why a receipt (or evidence) failed verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("trust anchors: {0}")]
    TrustAnchors(String),
    #[error("record: leaf hash is {computed}, receipt says {claimed}")]
    LeafHashMismatch { computed: Hash32, claimed: Hash32 },
    #[error("record: id {id} outside the batch's range {first}..={last}")]
    RecordOutsideBatch { id: u64, first: u64, last: u64 },
    #[error("merkle: leaf index {index} out of range for {leaf_count} leaves")]
    LeafIndexOutOfRange { index: u64, leaf_count: u64 },
    #[error("merkle: proof does not lead to the header's root")]
    MerkleProofInvalid,
    #[error("policy: hash {computed} differs from the header's {in_header}")]
    PolicyHashMismatch { computed: Hash32, in_header: Hash32 },
    #[error("policy: {0}")]
    InvalidPolicy(#[from] PolicyError),
    #[error("confirmation #{index} (node {node}, {scheme}): {failure}")]
    Confirmation {
        index: usize,
        node: Principal,
        scheme: Scheme,
        failure: ConfirmationFailure,
    },
    #[error("quorum: not reached with {confirmed} valid confirmation(s)")]
    QuorumNotReached { confirmed: usize },
    #[error("certificate: cannot decode: {0}")]
    CertificateMalformed(String),
    #[error("certificate: {0}")]
    CertificateInvalid(String),
    #[error("certificate: no certified_data for hub {0}")]
    CertifiedDataMissing(Principal),
    #[error("certificate: certified data {certified} differs from the witness root {witness}")]
    CertifiedDataMismatch { certified: String, witness: String },
    #[error("witness: cannot decode: {0}")]
    WitnessMalformed(String),
    #[error("witness: no header hash at headers/{height}")]
    HeaderNotInWitness { height: u64 },
    #[error("witness: header hash at headers/{height} is {witnessed}, the header's is {computed}")]
    WitnessHeaderMismatch {
        height: u64,
        witnessed: String,
        computed: Hash32,
    },
    #[error("equivocation: {0}")]
    Evidence(#[from] EvidenceError),
    #[error("equivocation: evidence is for {evidence}, the key is for {given}")]
    EvidenceSchemeMismatch { evidence: Scheme, given: Scheme },
    #[error("equivocation: public key is malformed")]
    EvidenceMalformedKey,
    #[error("equivocation: the {which} signature is invalid")]
    EvidenceSignatureInvalid { which: &'static str },
}
