//! Revoking the certificate behind one signature on a signing order (`signet order
//! revoke-signature ORDER SIGNER`). Each signer's signature is made with a key and certificate
//! Signet issued for that signature alone (`services::orders`), so revoking it touches nothing
//! else: the certificate goes into the next CRL, which is signed and published at once, and the
//! OCSP responder answers "revoked" with the time and reason from then on.
//!
//! **Not on anonymisation or deletion.** A signature made stays valid: the certificate said who
//! signed when they signed, and a PAdES B-T or later signature proves it was made before any
//! revocation, but a B-B one does not, and validators would call it invalid from then on.
//! Anonymising a person removes their personal data from Signet's records, not from documents
//! already handed out; deleting an order removes Signet's copy, not the signed file its parties
//! keep. So neither revokes: revocation is a statement about a key (compromised, issued in
//! error), made by an operator on purpose. The certificate records outlive both (no personal
//! data in them), and the responder keeps answering for them.

use signet_crypto::ca::{RevocationReason, SerialNumber};
use time::OffsetDateTime;

use crate::domain::OrderId;
use crate::pki::Pki;
use crate::store::{SignatureCertificateRecord, Store, StoreError};

/// Why a signature's certificate could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeSignatureError {
    #[error("no order {0}")]
    NoOrder(OrderId),
    #[error("order {order_id} has no signer {internal_id}")]
    NoSigner {
        order_id: OrderId,
        internal_id: String,
    },
    /// The signer has no recorded signature certificate (has not signed, or signed before
    /// Signet kept which signer a certificate was for).
    #[error("signer {internal_id} of order {order_id} has no signature certificate to revoke")]
    NoCertificate {
        order_id: OrderId,
        internal_id: String,
    },
    #[error("reading or writing the certificates: {0}")]
    Store(#[from] StoreError),
    #[error("publishing the CRL: {0:#}")]
    Crl(anyhow::Error),
}

/// A certificate of the signature, as it stands after the revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSignatureCertificate {
    pub serial: SerialNumber,
    pub revoked_at: OffsetDateTime,
    pub reason: RevocationReason,
    /// Whether this call revoked it (else an earlier one had, with its own time and reason).
    pub newly_revoked: bool,
}

/// Revokes the certificate(s) issued for the signature of the signer with `signer_internal_id`
/// on `order_id` (there may be more than one when a signing attempt was retried; every one is
/// revoked), then signs and stores a new CRL. Revoking again changes nothing and says so.
pub async fn revoke_signature(
    store: &dyn Store,
    pki: &Pki,
    order_id: OrderId,
    signer_internal_id: &str,
    reason: RevocationReason,
    now: OffsetDateTime,
) -> Result<Vec<RevokedSignatureCertificate>, RevokeSignatureError> {
    let order = store
        .find_order(&order_id)
        .await?
        .ok_or(RevokeSignatureError::NoOrder(order_id))?;
    let position = order
        .signers
        .iter()
        .find(|s| {
            s.person
                .internal_id
                .eq_ignore_ascii_case(signer_internal_id)
        })
        .map(|s| s.position)
        .ok_or_else(|| RevokeSignatureError::NoSigner {
            order_id,
            internal_id: signer_internal_id.to_owned(),
        })?;
    let records = store
        .revoke_signature_certificates(&order_id, position, reason, now)
        .await?;
    if records.is_empty() {
        return Err(RevokeSignatureError::NoCertificate {
            order_id,
            internal_id: signer_internal_id.to_owned(),
        });
    }
    let revoked: Vec<RevokedSignatureCertificate> = records
        .iter()
        .filter_map(|(record, newly)| revoked_from(record, *newly))
        .collect();
    if revoked.iter().any(|r| r.newly_revoked) {
        pki.refresh_crl(store, now)
            .await
            .map_err(RevokeSignatureError::Crl)?;
        for certificate in revoked.iter().filter(|r| r.newly_revoked) {
            crate::telemetry::audit::signature_certificate_revoked(
                &order_id,
                &certificate.serial,
                certificate.reason,
            );
        }
    }
    Ok(revoked)
}

fn revoked_from(
    record: &SignatureCertificateRecord,
    newly_revoked: bool,
) -> Option<RevokedSignatureCertificate> {
    let revoked_at = record.revoked_at?;
    Some(RevokedSignatureCertificate {
        serial: record.serial,
        revoked_at,
        reason: record
            .revocation_reason
            .unwrap_or(RevocationReason::Unspecified),
        newly_revoked,
    })
}

/// The operator command's work, from settings to the lines it prints: opens the store and the
/// CA in the data directory, revokes, and says what became of each certificate.
pub async fn revoke_signature_command(
    settings: &crate::config::Settings,
    order_id: &str,
    signer_internal_id: &str,
    reason: &str,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<String>> {
    use anyhow::Context;
    let order_id =
        OrderId::parse(order_id).map_err(|e| anyhow::anyhow!("the order id {order_id:?}: {e}"))?;
    let reason: RevocationReason = reason
        .parse()
        .map_err(|e: String| anyhow::anyhow!("the revocation reason {reason:?}: {e}"))?;
    // The CA may not sign a removeFromCRL (8) and cACompromise is not a signature's to claim.
    anyhow::ensure!(
        !matches!(
            reason,
            RevocationReason::CaCompromise | RevocationReason::AaCompromise
        ),
        "the revocation reason {reason} is not one for a signature's certificate"
    );
    let store = crate::startup::open_store(settings).await?;
    let (_, key_path) = crate::pki::ca_paths(&settings.data_dir);
    anyhow::ensure!(
        key_path.exists(),
        "no CA in {} (this data directory has never served)",
        settings.data_dir.display()
    );
    let ca = crate::pki::load_or_create_ca(&settings.data_dir, now)?;
    let validity = time::Duration::days(i64::from(settings.certificate_validity_days));
    // The CRL names no URL of its own: the public URL only matters for issuing.
    let pki = Pki::new(ca, validity, settings.public_url.as_deref().unwrap_or(""));
    let revoked = revoke_signature(
        store.as_ref(),
        &pki,
        order_id,
        signer_internal_id,
        reason,
        now,
    )
    .await
    .context("revoking the signature's certificate")?;
    Ok(revoked
        .iter()
        .map(|r| {
            let when = r
                .revoked_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| r.revoked_at.to_string());
            let what = if r.newly_revoked {
                "revoked"
            } else {
                "already revoked"
            };
            format!("{} {what} at {when} ({})", r.serial, r.reason)
        })
        .collect())
}
