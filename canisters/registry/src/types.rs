//! The registry's public Candid types live in `stratros-registry-api`, shared with its clients
//! (the CLI); re-exported here under their usual paths.

pub use stratros_registry_api::*;
