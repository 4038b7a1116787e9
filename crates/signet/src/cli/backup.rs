//! `signet backup DIR` and `signet restore DIR` (see [`signet::backup`] for how the copy stays
//! consistent while the server runs).

use clap::Args;
use std::path::PathBuf;

use signet::clock::Clock;
use signet::store::Dialect;
use signet::store::Store;

use super::{load_settings, open};
use crate::StoreArgs;

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where the backup goes: a directory that does not exist or is empty.
    pub dir: PathBuf,
}

#[derive(Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// A directory `signet backup` wrote.
    pub dir: PathBuf,
}

pub async fn backup(args: BackupArgs, clock: &dyn Clock) -> anyhow::Result<()> {
    let (settings, store) = open(&args.store).await?;
    if store.dialect() == Dialect::Postgres {
        eprintln!(
            "The database is PostgreSQL: it is not copied. Back it up with pg_dump (before this \
             command, so every document it names is in this copy); the documents and keys are \
             copied now."
        );
    }
    let with_blobs = settings
        .blob_url
        .as_deref()
        .is_none_or(|url| url.starts_with("file://"));
    if !with_blobs {
        eprintln!(
            "The documents are in the object store {}: they are not copied. The bucket is yours \
             to back up (versioning, replication or your provider's snapshots); the database and \
             the keys are copied now.",
            settings.blob_url.as_deref().unwrap_or_default()
        );
    }
    let manifest = signet::backup::backup(
        &settings.data_dir,
        store.as_ref(),
        &args.dir,
        clock.now(),
        with_blobs,
    )
    .await?;
    eprintln!(
        "backup written to {}: database {}, {} document file(s), {} other file(s)",
        args.dir.display(),
        manifest.database,
        manifest.blobs,
        manifest.files
    );
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    // Restoring creates the data directory: that is its purpose (no --init needed).
    let settings = load_settings(&args.store, &args.store)?;
    let manifest = signet::backup::restore(&args.dir, &settings.data_dir)?;
    if manifest.database == "sqlite" {
        signet::backup::integrity_check(&settings.data_dir.join("signet.db")).await?;
    } else {
        eprintln!("The backup has no database (PostgreSQL): restore it with pg_restore.");
    }
    eprintln!(
        "restored {} into {} (backup of {})",
        args.dir.display(),
        settings.data_dir.display(),
        super::show_time(manifest.created_at)
    );
    Ok(())
}
