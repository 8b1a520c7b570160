//! `service`: the service's own Candid types, from `stratros-service-api` (the service is a
//! canister crate, which the CLI cannot link).

pub use stratros_service_api::*;
