//! Audit lines: one per certificate issued, renewed or revoked and per API key created or
//! revoked, under the target `audit` (filter them with `SIGNET_LOG=audit=info`, route them
//! apart in JSON by `"target":"audit"`). Ids and serials only: never a key, a subject name, a
//! personal number or an e-mail address.

use signet_crypto::ca::{RevocationReason, SerialNumber};

use crate::domain::{OrderId, SignerId};

/// A device's certificate was issued from its CSR (`POST /signers`).
pub fn certificate_issued(signer_id: &SignerId, serial: &SerialNumber) {
    tracing::info!(target: "audit", action = "certificate.issued", signer.id = %signer_id, serial = %serial, "certificate issued");
}

/// The renewal job re-certified a device's key.
pub fn certificate_renewed(signer_id: &SignerId, previous: &SerialNumber, serial: &SerialNumber) {
    tracing::info!(target: "audit", action = "certificate.renewed", signer.id = %signer_id, previous_serial = %previous, serial = %serial, "certificate renewed");
}

/// A certificate was revoked (a status change, or superseded by a new enrollment).
pub fn certificate_revoked(signer_id: &SignerId, serial: &SerialNumber, reason: RevocationReason) {
    tracing::info!(target: "audit", action = "certificate.revoked", signer.id = %signer_id, serial = %serial, reason = %reason, "certificate revoked");
}

/// A one-signature certificate was issued for a signer of a signing order.
pub fn signature_certificate_issued(order_id: &OrderId, serial: &SerialNumber) {
    tracing::info!(target: "audit", action = "certificate.issued", order.id = %order_id, serial = %serial, "signature certificate issued");
}

/// A signing order's signature certificate was revoked.
pub fn signature_certificate_revoked(
    order_id: &OrderId,
    serial: &SerialNumber,
    reason: RevocationReason,
) {
    tracing::info!(target: "audit", action = "certificate.revoked", order.id = %order_id, serial = %serial, reason = %reason, "signature certificate revoked");
}

/// An API key was created (its id; the key itself is shown once to whoever created it).
pub fn api_key_created(id: &str) {
    tracing::info!(target: "audit", action = "api_key.created", api_key.id = %id, "API key created");
}

/// An API key was revoked.
pub fn api_key_revoked(id: &str) {
    tracing::info!(target: "audit", action = "api_key.revoked", api_key.id = %id, "API key revoked");
}
