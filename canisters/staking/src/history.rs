//! Settling a transfer whose retry is `TooOld` from the ledger's ICRC-3 history: the search
//! lives in `libs/stratros-ledger-history` (the hub uses it too); this adapts the runtime.

pub use stratros_ledger_history::*;

use candid::Principal;
use icrc_ledger_types::icrc3::blocks::GetBlocksResult;

use crate::runtime::Runtime;

/// Staking's journaled transfers: outgoing and incoming operations share one id space.
pub const OP: &str = "op";

/// The runtime's `icrc3_get_blocks` as the search's block source.
pub struct Ledger<'a, R>(pub &'a R);

impl<R: Runtime> BlockSource for Ledger<'_, R> {
    async fn get_blocks(
        &self,
        ledger: Principal,
        start: u64,
        length: u64,
    ) -> Result<GetBlocksResult, String> {
        self.0
            .get_blocks(ledger, start, length)
            .await
            .map_err(|e| e.message)
    }
}
