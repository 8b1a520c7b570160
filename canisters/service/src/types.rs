//! The Candid types of the service's interface live in `libs/stratros-service-api`, so the
//! registry, the CLI and other canisters use them without linking this canister crate.

pub use stratros_service_api::*;
