//! The data directory holds personal data (`signet.db`: names, e-mail addresses, phone and
//! personal numbers), every uploaded document and the CA key, so nothing in it is for other
//! local users: Signet creates its directories 0700 and its files 0600 with explicit modes,
//! whatever the process umask (a umask only ever removes bits, so it cannot loosen these), and at
//! start-up warns about any known path of an existing installation that is looser.
//!
//! Existing paths are reported, never changed: an operator may have opened the directory to a
//! backup group on purpose, or a volume may reach the process through its group (a Kubernetes
//! `fsGroup`), where a `chmod` would lock the server out of its own data.

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Mode of every directory Signet creates.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of every file Signet creates.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `path` and any missing parents, each new one owner-only. An existing directory is
/// left as it is (the start-up check reports it when it is looser).
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(PRIVATE_DIR_MODE);
    }
    builder.create(path)
}

/// Options that create a file owner-only (`read`, `write`, `create…` are the caller's to add).
pub fn private_file_options() -> OpenOptions {
    #[cfg_attr(not(unix), expect(unused_mut, reason = "modes are a unix notion"))]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(PRIVATE_FILE_MODE);
    }
    options
}

/// The paths of a data directory that Signet itself creates (and, when they exist, checks):
/// everything but the documents themselves, which live inside `blobs/` and are as closed as
/// their directory.
pub const KNOWN_PATHS: &[&str] = &[
    "",
    "signet.db",
    "signet.db-wal",
    "signet.db-shm",
    "signet.db-journal",
    "ca",
    "ca/ca.key",
    "ca/ca.pem",
    "link.key",
    crate::webhooks::SECRET_FILE,
    crate::startup::INITIAL_API_KEY_FILE,
    "blobs",
    "blobs/tmp",
    "blobs/documents",
    "blobs/orders",
];

/// A path of the data directory that other users may read, write or enter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoosePath {
    pub path: PathBuf,
    /// The permission bits (`0o755`, …).
    pub mode: u32,
}

/// The known paths of `data_dir` that exist and grant anything to group or others.
pub fn loose_paths(data_dir: &Path) -> Vec<LoosePath> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        KNOWN_PATHS
            .iter()
            .map(|relative| {
                if relative.is_empty() {
                    data_dir.to_path_buf()
                } else {
                    data_dir.join(relative)
                }
            })
            .filter_map(|path| {
                // Following links: what protects the data is the mode of what they point to.
                let mode = std::fs::metadata(&path).ok()?.permissions().mode() & 0o7777;
                (mode & 0o077 != 0).then_some(LoosePath { path, mode })
            })
            .collect()
    }
    #[cfg(not(unix))]
    {
        let _ = data_dir;
        Vec::new()
    }
}

/// Logs a warning for every known path of `data_dir` that is looser than owner-only; returns them.
pub fn warn_about_loose_paths(data_dir: &Path) -> Vec<LoosePath> {
    let loose = loose_paths(data_dir);
    for LoosePath { path, mode } in &loose {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:04o}"),
            "a path in the data directory is open to other local users (it holds personal data, \
             documents and the CA key); unless that is intended, restrict it to Signet's own \
             user: chmod -R go-rwx <data-dir>"
        );
    }
    loose
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn created_directories_and_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_private_dir_all(&nested).unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        let file = nested.join("f");
        private_file_options()
            .write(true)
            .create_new(true)
            .open(&file)
            .unwrap();
        assert_eq!(mode(&file), 0o600);
    }

    #[test]
    fn only_existing_paths_open_to_others_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        create_private_dir_all(&data.join("ca")).unwrap();
        std::fs::write(data.join("ca/ca.key"), b"k").unwrap();
        std::fs::set_permissions(
            data.join("ca/ca.key"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        std::fs::write(data.join("link.key"), b"k").unwrap();
        std::fs::set_permissions(
            data.join("link.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        assert_eq!(
            loose_paths(&data),
            vec![LoosePath {
                path: data.join("ca/ca.key"),
                mode: 0o640
            }]
        );
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(loose_paths(&data)[0].path, data);
    }
}
