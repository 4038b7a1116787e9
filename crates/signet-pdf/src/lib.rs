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
//! Every parse runs under a resource budget set by the document's size ([`budget`]), and stops
//! when the caller's [`Cancel`] token is raised.

pub mod budget;
mod embed;
mod filters;
mod prepare;
mod source;
mod syntax;

pub use budget::{Cancel, CancelOnDrop};
pub use embed::{byte_range_digest, clear_placeholder, embed, placeholder_is_empty};
pub use prepare::{check, check_with, prepare, prepare_appending};

use std::io::{Read, Seek, Write};
use time::OffsetDateTime;

/// DER bytes reserved for the CMS by default: RSA-4096 with a two-certificate chain and a later
/// RFC 3161 timestamp token fit with room to spare. The placeholder holds twice as many hex digits.
pub const DEFAULT_PLACEHOLDER_CAPACITY: usize = 16_384;

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
    /// Building the CMS failed (only [`sign_with_key`]).
    #[error("CMS: {0}")]
    Cms(#[from] signet_crypto::cms::CmsError),
}

/// How to prepare a signature revision.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// The signing time written as the signature dictionary's `/M` (PAdES keeps it there).
    pub signing_time: OffsetDateTime,
    /// DER bytes to reserve for the CMS; see [`DEFAULT_PLACEHOLDER_CAPACITY`].
    pub placeholder_capacity: usize,
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
            signing_time,
            placeholder_capacity: DEFAULT_PLACEHOLDER_CAPACITY,
            signer_name: None,
            reason: None,
            update_id: None,
            cancel: Cancel::new(),
        }
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
