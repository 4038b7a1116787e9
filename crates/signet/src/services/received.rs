//! A file as the upload reader (`api/upload.rs`) received it: in memory when small, otherwise
//! in a temporary blob of this replica's, with its name, size and, when asked for, its SHA-256.
//! What the document and order services take from either API.

use crate::domain::Sha256Digest;
use crate::store::blobs::TempBlob;

/// A received file part.
pub struct ReceivedFile {
    pub content: Received,
    /// The name to record: the last path segment the client sent (see
    /// `api::upload::upload_file_name`).
    pub file_name: String,
    pub size: u64,
    /// The bytes' SHA-256, when the receiver was asked to hash them while they streamed.
    pub sha256: Option<Sha256Digest>,
}

/// Where a received file's bytes are.
pub enum Received {
    /// Small files stay in memory until the one blocking step that uses them.
    InMemory(Vec<u8>),
    /// Larger ones are written to a temporary blob as they arrive (removed on drop unless
    /// persisted); `file` is its handle, open for reading and writing.
    Spilled { temp: TempBlob, file: std::fs::File },
}
