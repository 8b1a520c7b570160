//! Quorum policy validation and evaluation.

use crate::types::{PolicyNode, QuorumPolicy, QuorumRule, Scheme};
use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Why a quorum policy is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, CandidType, Serialize, Deserialize, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy lists no node")]
    NoNodes,
    #[error("node {0} is listed twice")]
    DuplicateNode(Principal),
    #[error("k = {k} must be between 1 and the number of nodes ({n})")]
    InvalidThreshold { k: u32, n: u32 },
}

impl QuorumPolicy {
    /// One of each scheme over the given nodes.
    pub fn one_of_each_scheme(nodes: Vec<PolicyNode>) -> Self {
        QuorumPolicy {
            nodes,
            rule: QuorumRule::OneOfEachScheme,
        }
    }

    /// `k` of the given nodes.
    pub fn k_of_n(k: u32, nodes: Vec<PolicyNode>) -> Self {
        QuorumPolicy {
            nodes,
            rule: QuorumRule::KOfN { k },
        }
    }

    /// Checks the policy can ever be satisfied and names each node once.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.nodes.is_empty() {
            return Err(PolicyError::NoNodes);
        }
        let mut seen = BTreeSet::new();
        for n in &self.nodes {
            if !seen.insert(n.node) {
                return Err(PolicyError::DuplicateNode(n.node));
            }
        }
        if let QuorumRule::KOfN { k } = self.rule {
            let n = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
            if k == 0 || k > n {
                return Err(PolicyError::InvalidThreshold { k, n });
            }
        }
        Ok(())
    }

    /// The policy's entry for `node`.
    pub fn node(&self, node: &Principal) -> Option<&PolicyNode> {
        self.nodes.iter().find(|n| &n.node == node)
    }

    /// The schemes a one-of-each-scheme policy requires.
    pub fn required_schemes(&self) -> BTreeSet<Scheme> {
        self.nodes.iter().map(|n| n.scheme).collect()
    }

    /// Whether the nodes in `confirmed` (those whose confirmation was checked) satisfy the rule.
    /// Nodes not listed in the policy and repeated nodes are ignored.
    pub fn is_satisfied<'a>(&self, confirmed: impl IntoIterator<Item = &'a Principal>) -> bool {
        let listed: BTreeSet<&Principal> = confirmed
            .into_iter()
            .filter(|p| self.node(p).is_some())
            .collect();
        match self.rule {
            QuorumRule::KOfN { k } => k > 0 && listed.len() >= k as usize,
            QuorumRule::OneOfEachScheme => {
                let covered: BTreeSet<Scheme> = listed
                    .iter()
                    .filter_map(|p| self.node(p).map(|n| n.scheme))
                    .collect();
                !self.nodes.is_empty() && covered == self.required_schemes()
            }
        }
    }
}
