//! Structural checks of equivocation evidence (signatures are checked in `stratros-verify`).

use crate::encoding::header_hash;
use crate::types::EquivocationEvidence;
use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

/// Why evidence is not structurally an equivocation.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize, thiserror::Error)]
pub enum EvidenceError {
    #[error("the two headers come from different hubs ({first} and {second})")]
    DifferentHubs { first: Principal, second: Principal },
    #[error("the two headers have different heights ({first} and {second})")]
    DifferentHeights { first: u64, second: u64 },
    #[error("the two headers are the same header")]
    SameHeader,
}

/// Checks that the evidence names two different headers of one hub at one height. Both
/// signatures are by `evidence.node` by construction (there is one node field).
pub fn check_equivocation_structure(evidence: &EquivocationEvidence) -> Result<(), EvidenceError> {
    let (a, b) = (&evidence.first.header, &evidence.second.header);
    if a.hub != b.hub {
        return Err(EvidenceError::DifferentHubs {
            first: a.hub,
            second: b.hub,
        });
    }
    if a.height != b.height {
        return Err(EvidenceError::DifferentHeights {
            first: a.height,
            second: b.height,
        });
    }
    if header_hash(a) == header_hash(b) {
        return Err(EvidenceError::SameHeader);
    }
    Ok(())
}
