//! Finishing a signature at its PAdES level (ETSI EN 319 142-1), shared by both APIs: the
//! verified CMS goes into its placeholder (B-B), with a signature timestamp over its signature
//! value (B-T), followed by a `/DSS` revision with everything that validates the signer's and the
//! TSA's chains offline (B-LT), then a document timestamp and the `/DSS` entries for its own TSA
//! chain (B-LTA). Every step appends to the same file, so the earlier revisions stay untouched.
//!
//! Fails closed: when a timestamp or the validation data cannot be had the caller gets a
//! [`LevelUnavailable`] and must not record the signature (the file is scratch until it does);
//! never a silent downgrade to a lower level.
//!
//! Runs on a blocking thread (the PDF work reads and writes files); the timestamp and the store
//! are asked through the runtime handle the caller passes in.

use std::io::{Read, Seek, Write};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use signet_pdf::{ByteRange, DssUpdate, PdfError, PrepareOptions, VriEntry};
use time::OffsetDateTime;

use super::timestamps::{TimestampAuthority, TimestampToken, TimestampUnavailable};
use super::validation_data::{ValidationDataCollector, ValidationDataUnavailable};
use crate::clock::Clock;
use crate::domain::SignatureLevel;

/// Why a signature could not be finished at its level. The first two are the outside world's
/// (answer 503 TIMESTAMP_UNAVAILABLE, the client may try again); `Pdf` is ours.
#[derive(Debug, thiserror::Error)]
pub enum LevelError {
    #[error(transparent)]
    Timestamp(#[from] TimestampUnavailable),
    #[error("the validation data cannot be had: {0}")]
    ValidationData(#[from] ValidationDataUnavailable),
    #[error("finishing the PDF: {0}")]
    Pdf(#[from] PdfError),
}

impl LevelError {
    /// Whether this is a timestamp or validation data that cannot be had now (503), rather than a
    /// fault of Signet's.
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, LevelError::Pdf(_))
    }
}

/// A finished file: its length, and when its last document timestamp must be renewed by
/// (B-LTA only; `None` below).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub len: u64,
    pub archive_expires_at: Option<OffsetDateTime>,
}

/// A document timestamp just appended.
struct DocumentTimestamp {
    expires_at: OffsetDateTime,
}

/// Why a B-LTA file's document timestamp could not be renewed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The TSA or the validation data cannot be had now (or the PDF work failed).
    #[error(transparent)]
    Level(#[from] LevelError),
    /// The file has no document timestamp Signet can find: it is not a B-LTA file.
    #[error("the file has no document timestamp to renew")]
    NoDocumentTimestamp,
    /// The TSA's certificate ends no later than the current timestamp's: a new timestamp would
    /// prove nothing more. The TSA's certificate must be renewed first.
    #[error(
        "the timestamp authority's certificate ends at {offered}, no later than the current \
         document timestamp's ({current}); renew the TSA certificate (Signet's built-in TSA \
         renews its own at start-up within 90 days of its end)"
    )]
    NotLater {
        current: OffsetDateTime,
        offered: OffsetDateTime,
    },
}

impl From<PdfError> for ArchiveError {
    fn from(error: PdfError) -> Self {
        ArchiveError::Level(LevelError::Pdf(error))
    }
}

/// When a timestamp token stops proving anything: the earliest notAfter of the TSA's
/// certificate and of the other certificates the token carries (its chain, when included).
fn chain_end(token: &TimestampToken) -> Result<OffsetDateTime, LevelError> {
    let unreadable = |e: String| LevelError::ValidationData(ValidationDataUnavailable::Cms(e));
    let mut end =
        signet_crypto::ca::certificate_not_after(&token.tsa_certificate_der).map_err(unreadable)?;
    for der in signet_crypto::cms::certificates(&token.der).unwrap_or_default() {
        end = end.min(signet_crypto::ca::certificate_not_after(&der).map_err(unreadable)?);
    }
    Ok(end)
}

/// The timestamp authority and the validation data collector, with the clock for `/TU`.
pub struct LevelFinisher {
    timestamps: Arc<TimestampAuthority>,
    collector: ValidationDataCollector,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LevelFinisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LevelFinisher").finish_non_exhaustive()
    }
}

/// Whether a placeholder for `level` must hold a signature timestamp too.
pub fn prepare_options_for(level: SignatureLevel, options: PrepareOptions) -> PrepareOptions {
    if level.needs_signature_timestamp() {
        options.with_timestamp_reserve()
    } else {
        options
    }
}

impl LevelFinisher {
    pub fn new(
        timestamps: Arc<TimestampAuthority>,
        collector: ValidationDataCollector,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            timestamps,
            collector,
            clock,
        }
    }

    /// Embeds `cms` (a verified SignedData) into the placeholder `byte_range` brackets in `file`
    /// and raises it to `level`, appending to `file`. Returns the file's new length and, at
    /// B-LTA, when its document timestamp must be renewed by. Blocking: call on a blocking
    /// thread, with `runtime` the handle of the runtime that owns the store.
    pub fn finish<F: Read + Write + Seek>(
        &self,
        runtime: &tokio::runtime::Handle,
        file: &mut F,
        byte_range: &ByteRange,
        cms: &[u8],
        level: SignatureLevel,
    ) -> Result<Finished, LevelError> {
        if !level.needs_signature_timestamp() {
            signet_pdf::embed(file, byte_range, cms)?;
            return Ok(Finished {
                len: file
                    .seek(std::io::SeekFrom::End(0))
                    .map_err(PdfError::from)?,
                archive_expires_at: None,
            });
        }
        // The checks that need no TSA come first inside `embed_with_timestamp`; the token is asked
        // for only then, through the closure.
        let embedded = signet_pdf::embed_with_timestamp(file, byte_range, cms, |signature| {
            let digest: [u8; 32] = Sha256::digest(signature).into();
            runtime
                .block_on(self.timestamps.timestamp(&digest))
                .map(|token| token.der)
        })
        .map_err(|e| match e {
            signet_pdf::TimestampedError::Timestamp(e) => LevelError::Timestamp(e),
            signet_pdf::TimestampedError::Pdf(e) => LevelError::Pdf(e),
        })?;
        if level >= SignatureLevel::PadesBLT {
            let data = runtime.block_on(self.collector.for_signature(&embedded))?;
            let contents = signet_pdf::signature_contents(file, byte_range)?;
            self.append_dss(file, contents, data)?;
        }
        let mut archive_expires_at = None;
        if level >= SignatureLevel::PadesBLTA {
            match self.append_document_timestamp(runtime, file, None) {
                Ok(token) => archive_expires_at = Some(token.expires_at),
                Err(ArchiveError::Level(error)) => return Err(error),
                // Only a renewal (`after` given) refuses a token or looks for an earlier one.
                Err(other) => {
                    return Err(LevelError::Pdf(PdfError::Unsupported(other.to_string())))
                }
            }
        }
        Ok(Finished {
            len: file
                .seek(std::io::SeekFrom::End(0))
                .map_err(PdfError::from)?,
            archive_expires_at,
        })
    }

    /// The B-LTA renewal (ETSI EN 319 142-1 §5.5, "LTA" repeated): appends to `file` (a copy of
    /// a stored B-LTA file) a `/DSS` update with fresh validation data for its last document
    /// timestamp's chain, then a new document timestamp, then the `/DSS` entries for the new
    /// timestamp's chain. `expires_at` is when the last one stops proving anything: a new one
    /// that does not outlast it (the TSA still signs under the same certificate) is refused with
    /// [`ArchiveError::NotLater`] before anything is written for it. Blocking.
    pub fn renew_document_timestamp<F: Read + Write + Seek>(
        &self,
        runtime: &tokio::runtime::Handle,
        file: &mut F,
        expires_at: OffsetDateTime,
    ) -> Result<Finished, ArchiveError> {
        let byte_range =
            signet_pdf::last_document_timestamp(file)?.ok_or(ArchiveError::NoDocumentTimestamp)?;
        let contents = signet_pdf::signature_contents(file, &byte_range)?;
        let token = signet_pdf::der_prefix(&contents)
            .ok_or(ArchiveError::NoDocumentTimestamp)?
            .to_vec();
        let data = runtime
            .block_on(self.collector.for_signature(&token))
            .map_err(LevelError::from)?;
        self.append_dss(file, contents, data)?;
        let token = self.append_document_timestamp(runtime, file, Some(expires_at))?;
        Ok(Finished {
            len: file
                .seek(std::io::SeekFrom::End(0))
                .map_err(PdfError::from)?,
            archive_expires_at: Some(token.expires_at),
        })
    }

    /// Appends a document timestamp and the `/DSS` entries for its TSA's chain. With `after`,
    /// a token whose chain ends no later than that is refused before it is embedded.
    fn append_document_timestamp<F: Read + Write + Seek>(
        &self,
        runtime: &tokio::runtime::Handle,
        file: &mut F,
        after: Option<OffsetDateTime>,
    ) -> Result<DocumentTimestamp, ArchiveError> {
        let options = PrepareOptions {
            update_id: Some(rand::random()),
            ..PrepareOptions::document_timestamp(self.clock.now())
        };
        let prepared = signet_pdf::prepare_appending(file, &options)?;
        let token = runtime
            .block_on(self.timestamps.timestamp(&prepared.digest))
            .map_err(LevelError::from)?;
        let expires_at = chain_end(&token)?;
        if let Some(after) = after.filter(|after| expires_at <= *after) {
            return Err(ArchiveError::NotLater {
                current: after,
                offered: expires_at,
            });
        }
        signet_pdf::embed(file, &prepared.byte_range, &token.der)?;
        let data = runtime
            .block_on(self.collector.for_signature(&token.der))
            .map_err(LevelError::from)?;
        let contents = signet_pdf::signature_contents(file, &prepared.byte_range)?;
        self.append_dss(file, contents, data)?;
        Ok(DocumentTimestamp { expires_at })
    }

    fn append_dss<F: Read + Write + Seek>(
        &self,
        file: &mut F,
        signature_contents: Vec<u8>,
        data: signet_pdf::ValidationData,
    ) -> Result<(), PdfError> {
        let update = DssUpdate {
            entries: vec![VriEntry {
                signature_contents,
                data,
                time: Some(self.clock.now()),
            }],
            // Each update gets its own second `/ID` half (ISO 32000-1 §14.4).
            update_id: Some(rand::random()),
            ..DssUpdate::default()
        };
        signet_pdf::append_dss_appending(file, &update)?;
        Ok(())
    }
}
