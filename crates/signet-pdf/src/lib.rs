//! Signet's PDF signing engine: prepares an incremental signature revision in a PDF,
//! computes the byte ranges to be signed and splices a CMS signature into the placeholder.
//! Pure: it reads and writes only through the handles it is given.
//!
//! Signing is split in two because the private key usually lives on a device:
//! [`prepare`] appends a revision with an invisible signature field and a zero-filled
//! `/Contents` placeholder and returns the SHA-256 of the byte ranges; the caller builds
//! SignedAttributes for that digest ([`signet_crypto::cms::signed_attributes_der`]), has them
//! signed, builds the SignedData and calls [`embed`]. [`sign_with_key`] does all of it in one
//! step for a key the server holds. The original file is always kept as an untouched prefix, so
//! earlier signatures stay valid.
//!
//! Long-term validation (PAdES, ETSI EN 319 142-1) builds on the same steps: B-T adds a
//! signature timestamp to the CMS before it is embedded ([`embed_with_timestamp`], for which
//! [`PrepareOptions::reserve_timestamp_bytes`] makes room); B-LT appends the validation data as a
//! Document Security Store ([`append_dss`]); B-LTA adds a document timestamp
//! ([`RevisionKind::DocumentTimestamp`], [`add_document_timestamp`]) and the DSS entries for
//! its TSA. Fetching tokens and revocation data is the caller's: these functions take them, or a
//! closure that gets them.
//!
//! Every parse runs under a resource budget set by the document's size ([`budget`]), and stops
//! when the caller's [`Cancel`] token is raised.

pub mod budget;
mod dss;
mod embed;
mod filters;
mod prepare;
mod source;
mod syntax;
mod update;

pub use budget::{Cancel, CancelOnDrop};
pub use dss::{
    append_dss, append_dss_appending, vri_key, DssAppended, DssUpdate, ValidationData, VriEntry,
};
pub use embed::{
    byte_range_digest, clear_placeholder, der_prefix, embed, last_document_timestamp,
    placeholder_is_empty, signature_contents,
};
pub use prepare::{check, check_with, prepare, prepare_appending};

use std::io::{Read, Seek, Write};
use time::OffsetDateTime;

/// DER bytes reserved for the CMS by default: RSA-4096 with a two-certificate chain and a later
/// RFC 3161 timestamp token fit with room to spare. The placeholder holds twice as many hex digits.
pub const DEFAULT_PLACEHOLDER_CAPACITY: usize = 16_384;

/// DER bytes a signature timestamp token adds to a CMS (PAdES B-T), with room to spare. Measured
/// (tests/engine/ltv.rs): a token from Signet's P-256 TSA carrying its certificate adds about
/// 1.2 kB; one from `openssl ts` with an RSA-2048 key carrying its certificate and the CA's,
/// 1.9 kB. A TSA under a longer all-RSA chain (three 1.3 kB certificates) stays near 4.5 kB.
pub const TIMESTAMP_TOKEN_RESERVE: usize = 8_192;

/// DER bytes reserved for a document timestamp token (PAdES B-LTA) by
/// [`PrepareOptions::document_timestamp`]: the token is the whole `/Contents`, so this is
/// [`TIMESTAMP_TOKEN_RESERVE`] again.
pub const DOCUMENT_TIMESTAMP_CAPACITY: usize = TIMESTAMP_TOKEN_RESERVE;

/// What may go wrong while preparing or finishing a signature.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// Reading or writing a handle failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The input does not start like a PDF file.
    #[error("not a PDF: {0}")]
    NotPdf(String),
    /// The document is encrypted (`/Encrypt` in its trailer); Signet does not sign those.
    #[error("the PDF is encrypted; remove the password protection before signing")]
    Encrypted,
    /// The PDF parser could not read the document.
    #[error("the PDF cannot be parsed: {0}")]
    Unparseable(String),
    /// The document's structure is broken in a way that an incremental update cannot build on.
    #[error("the PDF is damaged: {0}")]
    Damaged(String),
    /// The document carries a certification signature that allows no changes (DocMDP `/P 1`),
    /// so any further signature would break it.
    #[error(
        "the PDF is certified with no changes allowed; a further signature would invalidate it"
    )]
    Certified,
    /// A well-formed document that uses something this engine does not handle.
    #[error("unsupported PDF: {0}")]
    Unsupported(String),
    /// Reading the document would cost more than its size allows (see [`budget`]); the message
    /// names the limit.
    #[error("the PDF asks for more work than a file of its size may: {0}")]
    OverBudget(String),
    /// The caller raised the [`Cancel`] token (the client went away); the work stopped.
    #[error("the work on the PDF was cancelled")]
    Cancelled,
    /// The CMS does not fit in the placeholder reserved at preparation.
    #[error("the signature needs {needed} bytes but the placeholder holds {capacity}")]
    PlaceholderTooSmall {
        /// DER length of the CMS.
        needed: usize,
        /// DER bytes the placeholder can hold.
        capacity: usize,
    },
    /// The file handed to [`embed`] does not hold an empty placeholder where the byte range says.
    #[error("no empty signature placeholder at the recorded byte range: {0}")]
    PlaceholderMismatch(String),
    /// The CMS to embed could not be read or timestamped ([`embed_with_timestamp`]).
    #[error("the CMS cannot take a timestamp: {0}")]
    Timestamp(String),
    /// Building the CMS failed (only [`sign_with_key`]).
    #[error("CMS: {0}")]
    Cms(#[from] signet_crypto::cms::CmsError),
}

/// What the prepared revision's signature dictionary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RevisionKind {
    /// A PAdES signature: `/Type /Sig`, `/SubFilter /ETSI.CAdES.detached`, `/M`, and the
    /// optional `/Name` and `/Reason`. `/Contents` takes a CMS SignedData.
    #[default]
    Signature,
    /// A document timestamp (PAdES B-LTA): `/Type /DocTimeStamp`, `/SubFilter /ETSI.RFC3161`, no
    /// `/M` and no signer name. `/Contents` takes an RFC 3161 token whose message imprint is the
    /// SHA-256 of the byte ranges ([`Prepared::digest`]).
    DocumentTimestamp,
}

/// How to prepare a signature revision.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// A signature or a document timestamp.
    pub kind: RevisionKind,
    /// The signing time written as the signature dictionary's `/M` (PAdES keeps it there).
    pub signing_time: OffsetDateTime,
    /// DER bytes to reserve for the CMS; see [`DEFAULT_PLACEHOLDER_CAPACITY`].
    pub placeholder_capacity: usize,
    /// DER bytes reserved on top of `placeholder_capacity` for a signature timestamp token
    /// (PAdES B-T); [`TIMESTAMP_TOKEN_RESERVE`] fits any common TSA. Zero by default.
    pub reserve_timestamp_bytes: usize,
    /// Optional `/Name` of the signer shown by viewers.
    pub signer_name: Option<String>,
    /// Optional `/Reason` shown by viewers.
    pub reason: Option<String>,
    /// The changing half of the trailer's `/ID` for this update (ISO 32000-1 §14.4: an updated
    /// file gets a new second identifier). Two preparations of the same file at the same second
    /// would otherwise be byte-identical and share a digest, so a signature made for one could
    /// be posted for the other; a per-document value makes every digest unique. `None` keeps the
    /// original `/ID` as it is.
    pub update_id: Option<[u8; 16]>,
    /// Raised by the caller to stop the preparation (e.g. when the client hangs up).
    pub cancel: Cancel,
}

impl PrepareOptions {
    /// Options with the default placeholder and no name or reason.
    pub fn new(signing_time: OffsetDateTime) -> Self {
        Self {
            kind: RevisionKind::Signature,
            signing_time,
            placeholder_capacity: DEFAULT_PLACEHOLDER_CAPACITY,
            reserve_timestamp_bytes: 0,
            signer_name: None,
            reason: None,
            update_id: None,
            cancel: Cancel::new(),
        }
    }

    /// Options for a document timestamp revision at `time` (which only names the output's
    /// [`Prepared::signing_time`]; the token carries the real time).
    pub fn document_timestamp(time: OffsetDateTime) -> Self {
        Self {
            kind: RevisionKind::DocumentTimestamp,
            placeholder_capacity: DOCUMENT_TIMESTAMP_CAPACITY,
            ..Self::new(time)
        }
    }

    /// These options with [`TIMESTAMP_TOKEN_RESERVE`] bytes reserved for a signature timestamp.
    pub fn with_timestamp_reserve(mut self) -> Self {
        self.reserve_timestamp_bytes = TIMESTAMP_TOKEN_RESERVE;
        self
    }
}

/// The PDF `/ByteRange [a b c d]`: the signed bytes are `a..a+b` and `c..c+d`; the gap between
/// them is the `/Contents` hex string including its `<` and `>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange(pub [u64; 4]);

impl ByteRange {
    /// Offset of the placeholder's `<`.
    pub fn placeholder_offset(&self) -> u64 {
        self.0[0].saturating_add(self.0[1])
    }

    /// Length of the placeholder including `<` and `>`.
    pub fn placeholder_len(&self) -> u64 {
        self.0[2].saturating_sub(self.placeholder_offset())
    }

    /// DER bytes the placeholder can hold (two hex digits each).
    pub fn capacity(&self) -> usize {
        usize::try_from(self.placeholder_len().saturating_sub(2) / 2).unwrap_or(usize::MAX)
    }

    /// Total length of the file the byte range describes.
    pub fn file_len(&self) -> u64 {
        self.0[2].saturating_add(self.0[3])
    }
}

/// What [`prepare`] produced: everything needed to finish the signature later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// SHA-256 over the two byte ranges of the output: the CMS messageDigest.
    pub digest: [u8; 32],
    /// SHA-256 of the input as given (the output's prefix): hashed once, on the way to `digest`.
    pub input_sha256: [u8; 32],
    /// The byte range written into the signature dictionary.
    pub byte_range: ByteRange,
    /// The new signature field's name, e.g. `Signature1`.
    pub field_name: String,
    /// The time written as `/M`, to whole seconds.
    pub signing_time: OffsetDateTime,
    /// Length of the prepared output.
    pub output_len: u64,
}

/// Prepares a revision for a server-held P-256 key and embeds its signature at once: returns the
/// preparation's metadata; `output` then holds the signed PDF.
pub fn sign_with_key<R: Read + Seek, F: Read + Write + Seek>(
    input: R,
    output: &mut F,
    options: &PrepareOptions,
    private_key_pkcs8_der: &[u8],
    signer_certificate_der: &[u8],
    chain_der: &[&[u8]],
) -> Result<Prepared, PdfError> {
    let prepared = prepare(input, &mut *output, options)?;
    let cms = signet_crypto::cms::sign_with_key(
        &prepared.digest,
        private_key_pkcs8_der,
        signer_certificate_der,
        chain_der,
    )?;
    embed(output, &prepared.byte_range, &cms)?;
    Ok(prepared)
}

/// Why [`embed_with_timestamp`] or [`add_document_timestamp`] failed: the caller's timestamp
/// source, or the engine.
#[derive(Debug, thiserror::Error)]
pub enum TimestampedError<E> {
    /// The closure that asks the TSA failed; nothing was written.
    #[error("timestamp: {0}")]
    Timestamp(E),
    /// Reading, timestamping or embedding failed.
    #[error(transparent)]
    Pdf(#[from] PdfError),
}

/// PAdES B-T: adds a signature timestamp to `cms_der` (a verified SignedData from the device or
/// the server) and embeds the result in the placeholder that `byte_range` brackets.
///
/// `timestamp` gets the SignerInfo's signature value and returns an RFC 3161 token whose message
/// imprint covers it (the caller hashes, asks its TSA and verifies the token). It is called only
/// after the checks that need no TSA: a placeholder that could not take even the bare CMS fails
/// first. Returns the CMS as embedded.
pub fn embed_with_timestamp<F, T, E>(
    file: &mut F,
    byte_range: &ByteRange,
    cms_der: &[u8],
    timestamp: T,
) -> Result<Vec<u8>, TimestampedError<E>>
where
    F: Read + Write + Seek,
    T: FnOnce(&[u8]) -> Result<Vec<u8>, E>,
{
    let capacity = byte_range.capacity();
    if cms_der.len() > capacity {
        return Err(PdfError::PlaceholderTooSmall {
            needed: cms_der.len(),
            capacity,
        }
        .into());
    }
    if !placeholder_is_empty(file, byte_range)? {
        return Err(PdfError::PlaceholderMismatch(
            "the bytes there are not an empty `<00…>` placeholder (already signed?)".into(),
        )
        .into());
    }
    let signature = signet_crypto::cms::signature_value(cms_der)
        .map_err(|e| PdfError::Timestamp(e.to_string()))?;
    let token = timestamp(&signature).map_err(TimestampedError::Timestamp)?;
    let timestamped = signet_crypto::cms::add_signature_timestamp(cms_der, &token)
        .map_err(|e| PdfError::Timestamp(e.to_string()))?;
    embed(file, byte_range, &timestamped)?;
    Ok(timestamped)
}

/// PAdES B-LTA's document timestamp in one step: prepares a [`RevisionKind::DocumentTimestamp`]
/// revision of `input` into `output` (whatever `options.kind` says), asks `timestamp` for a token
/// over [`Prepared::digest`] (the SHA-256 of the byte ranges: the token's message imprint) and
/// embeds it. Follow with [`append_dss`] for the TSA's chain and revocation data.
pub fn add_document_timestamp<R, F, T, E>(
    input: R,
    output: &mut F,
    options: &PrepareOptions,
    timestamp: T,
) -> Result<Prepared, TimestampedError<E>>
where
    R: Read + Seek,
    F: Read + Write + Seek,
    T: FnOnce(&[u8; 32]) -> Result<Vec<u8>, E>,
{
    let options = PrepareOptions {
        kind: RevisionKind::DocumentTimestamp,
        ..options.clone()
    };
    let prepared = prepare(input, &mut *output, &options)?;
    let token = timestamp(&prepared.digest).map_err(TimestampedError::Timestamp)?;
    embed(output, &prepared.byte_range, &token)?;
    Ok(prepared)
}
