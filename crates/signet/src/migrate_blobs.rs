//! `signet migrate-blobs --to s3://…`: copies every document of a file-backed installation into
//! an object store, so the same database can run with `blob_url = "s3://…"`.
//!
//! Only the blobs rows name are copied (what the orphan sweep would remove is left behind), each
//! under the same key, so no row changes. Resumable: an object already there with the same size
//! and SHA-256 is skipped, so a second run (after an interruption, or after the server was
//! stopped to catch what it wrote meanwhile) copies only what is new or different. Verifiable:
//! every object is read back after its upload and its SHA-256 compared with the file's; a
//! mismatch stops the run with the key named. The files are never touched: switching back is
//! removing `blob_url`.
use anyhow::Context;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io;
use std::path::Path;

use crate::store::blobs::{BlobKey, BlobStore};
use crate::store::objects::ObjectBlobs;
use crate::store::operator::OperatorStore;

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MigrationReport {
    /// Objects written (and verified) by this run.
    pub copied: usize,
    /// Objects already present with the same size and SHA-256.
    pub already_there: usize,
    /// Keys a row names whose file is not in the data directory (a version superseded while
    /// the copy ran; the next run, with the server stopped, settles it).
    pub missing: usize,
    /// Bytes uploaded.
    pub bytes: u64,
}

/// Copies the blobs `store`'s rows name from `data_dir/blobs` into `objects`.
pub async fn migrate(
    data_dir: &Path,
    store: &dyn OperatorStore,
    objects: &ObjectBlobs,
) -> anyhow::Result<MigrationReport> {
    let keys = store
        .all_blob_keys()
        .await
        .context("listing the documents the database names")?;
    let keys = keys
        .iter()
        .map(|raw| BlobKey::parse(raw).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let files = BlobStore::open(data_dir).context("opening the data directory's documents")?;
    let objects = objects.clone();
    tokio::task::spawn_blocking(move || {
        let mut report = MigrationReport::default();
        for key in keys {
            copy_one(&files, &objects, &key, &mut report)
                .with_context(|| format!("copying {}", key.as_str()))?;
        }
        Ok(report)
    })
    .await
    .context("the copy task failed")?
}

fn copy_one(
    files: &BlobStore,
    objects: &ObjectBlobs,
    key: &BlobKey,
    report: &mut MigrationReport,
) -> anyhow::Result<()> {
    let mut file = match files.open_read(key) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            tracing::warn!(
                blob = key.as_str(),
                "a row names a file that is not there; run again with the server stopped"
            );
            report.missing += 1;
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    let local = digest(&mut file)?;
    if objects.digest(key)? == Some(local) {
        report.already_there += 1;
        return Ok(());
    }
    objects.upload_file(&file, key)?;
    let stored = objects.digest(key)?;
    anyhow::ensure!(
        stored == Some(local),
        "the object written differs from the file ({} bytes, SHA-256 {}; the store holds {:?})",
        local.0,
        hex::encode(local.1),
        stored.map(|(size, sha)| (size, hex::encode(sha)))
    );
    report.copied += 1;
    report.bytes += local.0;
    Ok(())
}

/// Size and SHA-256 of a file, read from its start.
fn digest(file: &mut File) -> io::Result<(u64, [u8; 32])> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let size = io::copy(file, &mut crate::services::orders::HashWriter(&mut hasher))?;
    Ok((size, hasher.finalize().into()))
}

/// Sets `blob_url` in a TOML configuration file: the top-level line replaced, or added at the
/// top (before the first table, where a top-level key must be). Other lines are kept as they
/// are. Returns the new text.
pub fn with_blob_url(config: &str, url: &str) -> String {
    let line = format!("blob_url = {}", toml::Value::String(url.to_owned()));
    let mut out = Vec::new();
    let mut replaced = false;
    let mut in_table = false;
    for existing in config.lines() {
        let trimmed = existing.trim_start();
        if trimmed.starts_with('[') {
            in_table = true;
        }
        let is_key = trimmed
            .strip_prefix("blob_url")
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if !in_table && is_key {
            out.push(line.clone());
            replaced = true;
        } else {
            out.push(existing.to_owned());
        }
    }
    if !replaced {
        out.insert(0, line);
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_url_goes_at_the_top_level_of_a_config_file() {
        let config = "listen = \"0.0.0.0:8080\"\n\n[tsa]\nurl = \"http://tsa\"\n";
        let written = with_blob_url(config, "s3://docs/signet");
        assert!(written.starts_with("blob_url = \"s3://docs/signet\"\n"));
        let parsed: toml::Table = written.parse().unwrap();
        assert_eq!(parsed["blob_url"].as_str(), Some("s3://docs/signet"));
        assert_eq!(parsed["tsa"]["url"].as_str(), Some("http://tsa"));

        let again = with_blob_url(&written, "s3://other");
        let parsed: toml::Table = again.parse().unwrap();
        assert_eq!(parsed["blob_url"].as_str(), Some("s3://other"));
        assert_eq!(again.matches("blob_url").count(), 1);
    }
}
