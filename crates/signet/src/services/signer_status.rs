//! A CloudSigner signer's status change with its consequences: the store applies it through the
//! state machine, and when certificates were revoked a new CRL is signed at once. One function
//! for the API's `PUT /signers/{id}` and the operator's `signet signer revoke`, so both have the
//! same effect.

use signet_crypto::ca::RevocationReason;
use time::OffsetDateTime;

use crate::domain::{SignerId, SignerStatus};
use crate::pki::Pki;
use crate::store::{SignerStore, StatusChange};
use crate::telemetry::audit;

/// Applies `requested` to the signer; refreshes the CRL when certificates were revoked.
pub async fn change_signer_status(
    store: &dyn SignerStore,
    pki: &Pki,
    signer_id: &SignerId,
    requested: SignerStatus,
    reason: RevocationReason,
    now: OffsetDateTime,
) -> anyhow::Result<StatusChange> {
    let change = store
        .change_signer_status(signer_id, requested, reason, now)
        .await?;
    if let StatusChange::Applied { revoked, .. } = &change {
        for serial in revoked {
            audit::certificate_revoked(signer_id, serial, reason);
        }
        if !revoked.is_empty() {
            pki.refresh_crl(store, now).await?;
        }
    }
    Ok(change)
}
