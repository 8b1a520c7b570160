//! `registry`: the registry's own Candid types, from `stratros-registry-api` (the registry is a
//! canister crate, which the CLI cannot link).

pub use stratros_registry_api::*;
