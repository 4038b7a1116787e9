//! What a validator needs to check a signature offline, years later (PAdES B-LT's `/DSS`):
//! every certificate of the signer's chain and of each timestamp token's TSA chain, an OCSP
//! response for each certificate Signet's CA issued (from Signet's own responder, called in
//! process), and the CA's current CRL. Both kinds of revocation data go in because pyHanko's
//! `adesverify` judging a B-LT signature offline only uses the CRL, while behind a document
//! timestamp (B-LTA) it takes either (see `signet_pdf::ValidationData`).
//!
//! Also the one place that says what status Signet's OCSP responder gives a serial: the
//! CloudSigner certificates in the store, the order-signature certificates, and the TSA and
//! responder certificates in service. `GET/POST /ca/ocsp` and the collector both ask it, so a
//! response in a `/DSS` says what the responder would say online.
//!
//! Fails closed: a certificate Signet's CA issued whose status it does not know, a responder
//! that is not set up, or a CRL that cannot be had is an error, never a `/DSS` without it.
//! Certificates from other CAs (an external TSA's chain) get theirs from outside, through
//! [`ExternalRevocation`]: their issuer, an OCSP response and the CRL, fetched and checked; a
//! certificate of another CA with no such source configured is an error too.

use std::sync::Arc;

use signet_crypto::ca::{RevocationReason, SerialNumber};
use signet_crypto::ocsp::{CertificateStatus, Lookup, OcspRequest};
use signet_pdf::ValidationData;

use super::external_revocation::ExternalRevocation;
use crate::clock::Clock;
use crate::pki::{LtvServices, Pki, OCSP_VALIDITY};
use crate::store::{SignerStore, StoreResult};

/// Why the validation data for a signature cannot be had. Each means: do not record the
/// signature; the client may try again later (503 TIMESTAMP_UNAVAILABLE).
#[derive(Debug, thiserror::Error)]
pub enum ValidationDataUnavailable {
    #[error("the OCSP responder is not set up on this server")]
    NoResponder,
    #[error("the signature's certificates cannot be read: {0}")]
    Cms(String),
    #[error("the OCSP responder does not know a certificate Signet's CA issued (serial {0})")]
    UnknownCertificate(SerialNumber),
    #[error("an OCSP response could not be made: {0}")]
    Ocsp(String),
    #[error("the certificate status could not be read: {0}")]
    Store(String),
    #[error("the CA's CRL could not be had: {0}")]
    Crl(String),
    /// A certificate of another CA (an external TSA's) without a way to check it.
    #[error("a certificate from another CA is in the chain, and no external revocation source is set up")]
    NoExternalSource,
    /// An external TSA's chain whose revocation data cannot be had.
    #[error("{0}")]
    External(String),
}

/// The status Signet's OCSP responder gives `serial` (of a certificate Signet's CA issued):
/// revoked or good when Signet knows it, unknown otherwise.
pub async fn certificate_status(
    store: &dyn SignerStore,
    services: &LtvServices,
    serial: &SerialNumber,
) -> StoreResult<CertificateStatus> {
    let revoked = |revoked_at, reason: Option<RevocationReason>| CertificateStatus::Revoked {
        revoked_at,
        reason: reason.unwrap_or(RevocationReason::Unspecified),
    };
    if let Some(record) = store.find_certificate(serial).await? {
        return Ok(match record.revoked_at {
            Some(at) => revoked(at, record.revocation_reason),
            None => CertificateStatus::Good,
        });
    }
    if let Some(record) = store.find_signature_certificate(serial).await? {
        return Ok(match record.revoked_at {
            Some(at) => revoked(at, record.revocation_reason),
            None => CertificateStatus::Good,
        });
    }
    if services.service_serials.contains(serial) {
        return Ok(CertificateStatus::Good);
    }
    Ok(CertificateStatus::Unknown)
}

/// Collects validation data from the store, the CA and the responder.
pub struct ValidationDataCollector {
    store: Arc<dyn SignerStore>,
    pki: Arc<Pki>,
    clock: Arc<dyn Clock>,
    external: Option<ExternalRevocation>,
}

impl ValidationDataCollector {
    pub fn new(store: Arc<dyn SignerStore>, pki: Arc<Pki>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            pki,
            clock,
            external: None,
        }
    }

    /// Where revocation data for other CAs' certificates (an external TSA's chain) comes from.
    pub fn with_external(mut self, external: Option<ExternalRevocation>) -> Self {
        self.external = external;
        self
    }

    /// Everything that validates the CMS `signed_data_der` (a signature, or a document
    /// timestamp token): its certificates and those of the signature timestamp tokens in it.
    pub async fn for_signature(
        &self,
        signed_data_der: &[u8],
    ) -> Result<ValidationData, ValidationDataUnavailable> {
        let cms_error =
            |e: signet_crypto::cms::CmsError| ValidationDataUnavailable::Cms(e.to_string());
        let mut certificates =
            signet_crypto::cms::certificates(signed_data_der).map_err(cms_error)?;
        for token in
            signet_crypto::cms::signature_timestamp_tokens(signed_data_der).map_err(cms_error)?
        {
            certificates.extend(signet_crypto::cms::certificates(&token).map_err(cms_error)?);
        }
        self.for_certificates(certificates).await
    }

    /// The certificates (and the CA's and the responder's), an OCSP response for each one
    /// Signet's CA issued, and the CA's CRL.
    pub async fn for_certificates(
        &self,
        certificates: Vec<Vec<u8>>,
    ) -> Result<ValidationData, ValidationDataUnavailable> {
        let services = self
            .pki
            .services()
            .ok_or(ValidationDataUnavailable::NoResponder)?;
        let ca_der = self.pki.ca().certificate_der();
        let now = self.clock.now();
        let mut data = ValidationData::default();
        let add_certificate = |data: &mut ValidationData, der: &[u8]| {
            if !data.certificates.iter().any(|c| c == der) {
                data.certificates.push(der.to_vec());
            }
        };
        for certificate in &certificates {
            add_certificate(&mut data, certificate);
        }
        let mut ours = false;
        for certificate in certificates.iter().filter(|c| c.as_slice() != ca_der) {
            // Not issued by Signet's CA (checked by signature): another CA's. A root needs
            // nothing; any other gets its revocation data from outside, or the signature waits.
            let Ok(request) = OcspRequest::for_certificate(certificate, ca_der) else {
                if signet_crypto::revocation::is_self_signed(certificate) {
                    continue;
                }
                let external = self
                    .external
                    .as_ref()
                    .ok_or(ValidationDataUnavailable::NoExternalSource)?;
                external
                    .collect(certificate, &certificates, now, &mut data)
                    .await?;
                continue;
            };
            ours = true;
            let id = request
                .cert_ids
                .first()
                .ok_or_else(|| ValidationDataUnavailable::Ocsp("an empty request".into()))?;
            let Lookup::Serial(serial) = services.ocsp.identify(id) else {
                return Err(ValidationDataUnavailable::Ocsp(
                    "the responder does not recognise its own CA's certificate".into(),
                ));
            };
            let status = certificate_status(self.store.as_ref(), services, &serial)
                .await
                .map_err(|e| ValidationDataUnavailable::Store(e.to_string()))?;
            if status == CertificateStatus::Unknown {
                return Err(ValidationDataUnavailable::UnknownCertificate(serial));
            }
            let response = services
                .ocsp
                .respond(&request, &[status], now, OCSP_VALIDITY)
                .map_err(|e| ValidationDataUnavailable::Ocsp(e.to_string()))?;
            data.ocsp_responses.push(response);
        }
        if ours {
            add_certificate(&mut data, &services.ocsp_certificate_der);
            add_certificate(&mut data, ca_der);
            let crl = self
                .pki
                .current_crl(self.store.as_ref(), now)
                .await
                .map_err(|e| ValidationDataUnavailable::Crl(format!("{e:#}")))?;
            data.crls.push(crl.der);
        }
        Ok(data)
    }
}
