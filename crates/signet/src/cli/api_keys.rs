//! `signet api-key list|revoke`: the keys are never shown (only their hashes are stored); a
//! revoked key's hash is forgotten, and the store's change signal tells running servers to drop
//! their cached keys (see `signet::store::changes`), so the next request with it gets 401.

use clap::Args;

use signet::clock::Clock;
use signet::store::operator::OperatorStore;

use super::{open, print_rows, show_time, OutputArgs};
use crate::StoreArgs;

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The key's id, as `signet api-key list` shows it.
    pub id: String,
}

pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let (_, store) = open(&args.store).await?;
    let keys = store.list_api_keys().await?;
    print_rows(args.output, &keys, &["ID", "CREATED", "REVOKED"], |key| {
        vec![
            key.id.clone(),
            show_time(key.created_at),
            key.revoked_at.map_or_else(|| "-".to_owned(), show_time),
        ]
    })
}

pub async fn revoke(args: RevokeArgs, clock: &dyn Clock) -> anyhow::Result<()> {
    let (_, store) = open(&args.store).await?;
    if !store.revoke_api_key(&args.id, clock.now()).await? {
        anyhow::bail!(
            "no API key {} that is not revoked already (see signet api-key list)",
            args.id
        );
    }
    signet::telemetry::audit::api_key_revoked(&args.id);
    eprintln!("API key {} revoked", args.id);
    Ok(())
}
