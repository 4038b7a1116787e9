//! `signet signer list|show|revoke`: CloudSigner signers and their certificates. Revoking goes
//! through the same service as the API's `PUT /signers/{id}` with `REVOKED`, so the certificate
//! is revoked and a new CRL signed, and OCSP answers "revoked" at once.

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use signet_crypto::ca::RevocationReason;

use signet::clock::Clock;
use signet::domain::{SignerId, SignerStatus};
use signet::pki::{load_or_create_ca, Pki};
use signet::store::operator::OperatorStore;
use signet::store::{SignerStore, StatusChange, Store};

use super::{open, print_rows, print_table, show_time, OutputArgs};
use crate::StoreArgs;

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Most signers listed (oldest first).
    #[arg(long, default_value_t = 1000)]
    pub limit: i64,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    pub signer_id: String,
}

#[derive(Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    pub signer_id: String,
    /// RFC 5280 reason (keyCompromise, …) or the product's name (KEY_COMPROMISE, …).
    #[arg(long, default_value = "unspecified")]
    pub reason: String,
}

pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let (_, store) = open(&args.store).await?;
    let signers = store.list_signers(args.limit).await?;
    print_rows(
        args.output,
        &signers,
        &["SIGNER", "STATUS", "CERTIFICATE", "NOT AFTER", "CREATED"],
        |s| {
            vec![
                s.signer_id.clone(),
                s.status.clone(),
                s.current_serial.clone(),
                show_time(s.not_after),
                show_time(s.created_at),
            ]
        },
    )
}

#[derive(Serialize)]
struct Certificate {
    serial: String,
    #[serde(with = "time::serde::rfc3339")]
    not_before: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    not_after: time::OffsetDateTime,
    issued_for: &'static str,
    current: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<time::OffsetDateTime>,
    revocation_reason: Option<String>,
}

#[derive(Serialize)]
struct SignerShown {
    signer_id: String,
    status: &'static str,
    certificates: Vec<Certificate>,
}

fn parse_id(raw: &str) -> anyhow::Result<SignerId> {
    SignerId::parse(raw).map_err(|e| anyhow::anyhow!("signer id {raw:?}: {e}"))
}

pub async fn show(args: ShowArgs) -> anyhow::Result<()> {
    let (_, store) = open(&args.store).await?;
    let signer_id = parse_id(&args.signer_id)?;
    let signer = store
        .find_signer(&signer_id)
        .await?
        .with_context(|| format!("no signer {signer_id}"))?;
    let certificates: Vec<Certificate> = store
        .certificates_of(&signer_id)
        .await?
        .into_iter()
        .map(|c| Certificate {
            current: c.serial == signer.current_serial,
            serial: c.serial.to_string(),
            not_before: c.not_before,
            not_after: c.not_after,
            issued_for: c.issued_for.as_str(),
            revoked_at: c.revoked_at,
            revocation_reason: c.revocation_reason.map(|r| r.as_str().to_owned()),
        })
        .collect();
    let shown = SignerShown {
        signer_id: signer.signer_id.to_string(),
        status: signer.status.as_str(),
        certificates,
    };
    if args.output.json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    println!("signer  {}\nstatus  {}\n", shown.signer_id, shown.status);
    let rows: Vec<Vec<String>> = shown
        .certificates
        .iter()
        .map(|c| {
            vec![
                c.serial.clone(),
                if c.current { "yes" } else { "" }.to_owned(),
                c.issued_for.to_owned(),
                show_time(c.not_before),
                show_time(c.not_after),
                match (&c.revoked_at, &c.revocation_reason) {
                    (Some(at), reason) => format!(
                        "{} ({})",
                        show_time(*at),
                        reason.as_deref().unwrap_or("unspecified")
                    ),
                    (None, _) => "-".to_owned(),
                },
            ]
        })
        .collect();
    print_table(
        &[
            "CERTIFICATE",
            "CURRENT",
            "ISSUED FOR",
            "NOT BEFORE",
            "NOT AFTER",
            "REVOKED",
        ],
        &rows,
    );
    Ok(())
}

pub async fn revoke(args: RevokeArgs, clock: &dyn Clock) -> anyhow::Result<()> {
    let (settings, store) = open(&args.store).await?;
    let signer_id = parse_id(&args.signer_id)?;
    let reason: RevocationReason = args
        .reason
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--reason: {e}"))?;
    let now = clock.now();
    // The CRL is signed by the data directory's CA, with the URLs the server publishes.
    let ca = load_or_create_ca(&settings.data_dir, now)?;
    let validity = time::Duration::days(i64::from(settings.certificate_validity_days));
    let pki = Pki::new(ca, validity, &settings.public_url(settings.listen));
    let store: &dyn Store = store.as_ref();
    match signet::services::signer_status::change_signer_status(
        store,
        &pki,
        &signer_id,
        SignerStatus::Revoked,
        reason,
        now,
    )
    .await?
    {
        StatusChange::NotFound => anyhow::bail!("no signer {signer_id}"),
        StatusChange::Illegal(e) => anyhow::bail!("signer {signer_id} cannot be revoked: {e}"),
        StatusChange::Applied { from, revoked, .. } => {
            tracing::info!(signer.id = %signer_id, certificates = revoked.len(), reason = reason.as_str(), "audit: signer revoked");
            eprintln!(
                "signer {signer_id} revoked (was {}); {} certificate(s) revoked, CRL refreshed",
                from.as_str(),
                revoked.len()
            );
            Ok(())
        }
    }
}
