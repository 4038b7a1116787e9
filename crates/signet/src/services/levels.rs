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

use super::timestamps::{TimestampAuthority, TimestampUnavailable};
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
    /// and raises it to `level`, appending to `file`. Returns the file's new length. Blocking:
    /// call on a blocking thread, with `runtime` the handle of the runtime that owns the store.
    pub fn finish<F: Read + Write + Seek>(
        &self,
        runtime: &tokio::runtime::Handle,
        file: &mut F,
        byte_range: &ByteRange,
        cms: &[u8],
        level: SignatureLevel,
    ) -> Result<u64, LevelError> {
        if !level.needs_signature_timestamp() {
            signet_pdf::embed(file, byte_range, cms)?;
            return Ok(file
                .seek(std::io::SeekFrom::End(0))
                .map_err(PdfError::from)?);
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
        if level >= SignatureLevel::PadesBLTA {
            let options = PrepareOptions {
                update_id: Some(rand::random()),
                ..PrepareOptions::document_timestamp(self.clock.now())
            };
            let prepared = signet_pdf::prepare_appending(file, &options)?;
            let token = runtime.block_on(self.timestamps.timestamp(&prepared.digest))?;
            signet_pdf::embed(file, &prepared.byte_range, &token.der)?;
            let data = runtime.block_on(self.collector.for_signature(&token.der))?;
            let contents = signet_pdf::signature_contents(file, &prepared.byte_range)?;
            self.append_dss(file, contents, data)?;
        }
        Ok(file
            .seek(std::io::SeekFrom::End(0))
            .map_err(PdfError::from)?)
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
