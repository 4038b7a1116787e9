//! `signet migrate-blobs --to s3://bucket/prefix`: the operator's side of
//! [`signet::migrate_blobs`] — open the installation and the bucket, copy, report, and switch
//! the configuration (the `--config` file gets `blob_url`; without one, what to set is printed).

use anyhow::Context;
use clap::Args;

use signet::store::objects::ObjectBlobs;

use super::open;
use crate::StoreArgs;

#[derive(Args)]
pub struct MigrateBlobsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The object store to copy the documents into: s3://bucket/prefix, reached with the
    /// standard AWS_* variables (as `serve --blob-url`).
    #[arg(long, value_name = "URL")]
    pub to: String,
}

pub async fn migrate_blobs(args: MigrateBlobsArgs) -> anyhow::Result<()> {
    let (settings, store) = open(&args.store).await?;
    // A second run after the switch (to catch what the server wrote meanwhile) names the same
    // bucket; another one would copy the data directory's files over a live installation's.
    if let Some(current) = settings.blob_url.as_deref().filter(|url| {
        !url.starts_with("file://") && url.trim_end_matches('/') != args.to.trim_end_matches('/')
    }) {
        anyhow::bail!(
            "the documents are already in {current}: migrate-blobs copies a file-backed \
             installation's files (into that same bucket, or with blob_url unset)"
        );
    }
    let env = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
    let objects = ObjectBlobs::open(
        &args.to,
        env,
        &settings.data_dir,
        tokio::runtime::Handle::current(),
    )?;
    let report = signet::migrate_blobs::migrate(&settings.data_dir, store.as_ref(), &objects)
        .await
        .with_context(|| format!("copying the documents into {}", objects.url()))?;
    eprintln!(
        "{} document file(s) copied ({} bytes) and verified by SHA-256, {} already there",
        report.copied, report.bytes, report.already_there
    );
    if report.missing > 0 {
        anyhow::bail!(
            "{} file(s) the database names were not found (superseded while the copy ran): \
             stop the server and run migrate-blobs again; the configuration was not changed",
            report.missing
        );
    }
    match &args.store.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let updated = signet::migrate_blobs::with_blob_url(&text, objects.url());
            std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "{} now says blob_url = {:?}; restart Signet (with the same AWS_* variables) to \
                 use it. The files in the data directory are left as they were.",
                path.display(),
                objects.url()
            );
        }
        None => eprintln!(
            "Signet has no configuration file here (--config): to switch, start it with \
             --blob-url {url} (or SIGNET_BLOB_URL={url}, or blob_url = {url:?} in its TOML \
             file) and the same AWS_* variables. The files in the data directory are left as \
             they were.",
            url = objects.url()
        ),
    }
    Ok(())
}
