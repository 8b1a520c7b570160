//! The Candid types of the restaking interface (`candid/restaking.did`). They live in
//! `stratros-restaking-api` so that clients need not link the canister; re-exported here so
//! that `restaking::types::…` (and `restaking::…`) paths keep working.

pub use stratros_restaking_api::*;
