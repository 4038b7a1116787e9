//! Services between HTTP and storage: each owns the rules and protocols of one part of Signet
//! and takes its own dependencies (store, blobs, CA, clock), never `AppState`, so every surface
//! and job calls the same operations.

pub mod documents;
pub mod external_revocation;
pub mod levels;
pub mod orders;
pub mod readiness;
pub mod reads;
pub mod received;
pub mod signature_revocation;
pub mod signer_auth;
pub mod signer_status;
pub mod signing_links;
pub mod timestamps;
pub mod validation_data;
