//! Signing orders as operations over the store, the blob store, the CA and the PDF engine: what
//! happens when a signer signs or rejects, and the signing links. The HTTP surfaces (the
//! Automation API now, the signer pages next) call these; the rules themselves live in
//! `domain::order` and the atomic bookkeeping in the store.

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use signet_crypto::csr::{PublicKey, Subject};
use signet_pdf::PrepareOptions;
use std::path::Path;
use std::sync::Arc;
use time::Duration;

use crate::domain::person::PersonSource;
use crate::domain::{OrderId, OrderState};
use crate::state::AppState;
use crate::store::blobs::{BlobKey, BlobStore};
use crate::store::orders::{OrderDocument, OrderRecord, RecordedSignature, SignatureOutcome};

/// How long the certificate made for one order signature is valid. Short: it certifies a key
/// that signs once and is then thrown away; validators check it at the signing time (`/M`).
pub const SIGNATURE_CERTIFICATE_VALIDITY: Duration = Duration::days(1);

/// How often signing is retried when another process signed the same order first.
const MAX_SIGNING_ATTEMPTS: usize = 8;

/// Why a signer's action on an order did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("{0}")]
    NotFound(String),
    /// The order's rules refuse it (order finished, signer already acted, not their turn).
    #[error("{0}")]
    Illegal(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for WorkflowError {
    fn from(error: crate::store::StoreError) -> Self {
        WorkflowError::Internal(error.into())
    }
}

/// Serialises signing per order inside this process, so concurrent signers do not each build a
/// revision only to find that another one landed first. Striped: a fixed set of locks, chosen by
/// the order id's hash, bounds memory whatever the number of orders. Across processes the
/// store's compare-and-set on the order's revision keeps the guarantee.
pub struct OrderLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl Default for OrderLocks {
    fn default() -> Self {
        Self {
            stripes: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }
}

impl OrderLocks {
    async fn lock(&self, order_id: &OrderId) -> tokio::sync::MutexGuard<'_, ()> {
        let digest = Sha256::digest(order_id.to_string().as_bytes());
        let index = usize::from(digest[0]) % self.stripes.len();
        self.stripes[index].lock().await
    }
}

/// The server's key for signing links: a link's token is HMAC(key, order id / nonce), so only
/// the token's hash needs storing and the order can still show its link.
pub struct LinkKey([u8; 32]);

impl LinkKey {
    /// Loads the key from the data directory, creating it (mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("link.key");
        if path.exists() {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let key: [u8; 32] = hex::decode(bytes.trim_ascii())
                .ok()
                .and_then(|k| k.try_into().ok())
                .with_context(|| format!("{} is not 32 bytes of hex", path.display()))?;
            return Ok(LinkKey(key));
        }
        let key: [u8; 32] = rand::random();
        crate::pki::write_private(&path, hex::encode(key).as_bytes())?;
        Ok(LinkKey(key))
    }

    /// The token of a signer's link.
    pub fn token(&self, order_id: &OrderId, nonce: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(format!("{order_id}/{nonce}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// SHA-256 (hex) of a link token: what the store keeps.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random nonce for a signer's link.
pub fn new_link_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Finds the task of the signer with this internal id.
fn position_of(order: &OrderRecord, signer_internal_id: &str) -> Result<i64, WorkflowError> {
    order
        .signers
        .iter()
        .find(|s| {
            s.person
                .internal_id
                .eq_ignore_ascii_case(signer_internal_id)
        })
        .map(|s| s.position)
        .ok_or_else(|| {
            WorkflowError::NotFound(format!(
                "order {} has no signer {signer_internal_id}",
                order.order_id
            ))
        })
}

/// Signs the order as one of its signers: Signet's CA certifies a fresh key for this one
/// signature (subject: the signer's name, serialNumber: their identifier, e-mail), and the engine
/// appends the signer's PAdES revision. Earlier signatures stay valid. Returns the order's state
/// afterwards (ACCEPTED once the last signer has signed).
#[tracing::instrument(skip(state), fields(order.id = %order_id))]
pub async fn sign_order_as(
    state: &AppState,
    order_id: OrderId,
    signer_internal_id: &str,
) -> Result<OrderState, WorkflowError> {
    let _serialised = state.order_locks.lock(&order_id).await;
    // Each stale attempt means another process signed this order meanwhile; there are only so
    // many signers, so a handful of attempts always suffices in practice.
    for _attempt in 0..MAX_SIGNING_ATTEMPTS {
        let order = state
            .store
            .find_order(&order_id)
            .await?
            .ok_or_else(|| WorkflowError::NotFound(format!("no order {order_id}")))?;
        let position = position_of(&order, signer_internal_id)?;
        let task = order
            .signers
            .iter()
            .find(|s| s.position == position)
            .context("the task vanished")?;
        crate::domain::order::may_act(order.state, task.status)
            .map_err(|e| WorkflowError::Illegal(e.to_string()))?;

        let now = state.clock.now();
        let person = task.person.clone();
        let pki = state.pki.clone();
        let blobs = state.blobs.clone();
        let input = order.document.blob.clone();
        let file_name = order.document.file_name.clone();
        let Some(document) = blocking(move || {
            sign_document(&pki, &blobs, &input, order_id, &person, file_name, now)
        })
        .await?
        else {
            // The version we read was superseded (and removed) by a signature from another
            // process between our read and our open: read the order again.
            continue;
        };
        let recorded = RecordedSignature {
            position,
            based_on_revision: order.revision,
            document: document.clone(),
        };
        match state
            .store
            .record_order_signature(&order_id, &recorded, now)
            .await?
        {
            SignatureOutcome::Recorded {
                state: order_state,
                superseded,
            } => {
                remove_blobs(&state.blobs, &superseded);
                return Ok(order_state);
            }
            // Another process signed first: our revision is built on an old one. Try again.
            SignatureOutcome::Stale => remove_blobs(&state.blobs, &[document.blob]),
            SignatureOutcome::Illegal(why) => {
                remove_blobs(&state.blobs, &[document.blob]);
                return Err(WorkflowError::Illegal(why));
            }
            SignatureOutcome::NotFound => {
                remove_blobs(&state.blobs, &[document.blob]);
                return Err(WorkflowError::NotFound(format!("no order {order_id}")));
            }
        }
    }
    Err(WorkflowError::Internal(anyhow::anyhow!(
        "order {order_id} kept changing under {MAX_SIGNING_ATTEMPTS} signing attempts"
    )))
}

/// A signer declines: the order ends REJECTED and nobody can sign it any more.
#[tracing::instrument(skip(state, reason), fields(order.id = %order_id))]
pub async fn reject_order_as(
    state: &AppState,
    order_id: OrderId,
    signer_internal_id: &str,
    reason: Option<&str>,
) -> Result<OrderState, WorkflowError> {
    let _serialised = state.order_locks.lock(&order_id).await;
    let order = state
        .store
        .find_order(&order_id)
        .await?
        .ok_or_else(|| WorkflowError::NotFound(format!("no order {order_id}")))?;
    let position = position_of(&order, signer_internal_id)?;
    match state
        .store
        .reject_order(&order_id, position, reason, state.clock.now())
        .await?
    {
        SignatureOutcome::Recorded { state, .. } => Ok(state),
        SignatureOutcome::Illegal(why) => Err(WorkflowError::Illegal(why)),
        SignatureOutcome::NotFound | SignatureOutcome::Stale => {
            Err(WorkflowError::NotFound(format!("no order {order_id}")))
        }
    }
}

fn remove_blobs(blobs: &BlobStore, keys: &[BlobKey]) {
    for key in keys {
        if let Err(error) = blobs.remove(key) {
            tracing::warn!(blob = key.as_str(), %error, "could not remove a superseded blob");
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .context("the signing task failed")?
}

/// Certifies a fresh key for this signer and appends their signature revision to a copy of the
/// order's document, as a new blob. Blocking.
fn sign_document(
    pki: &crate::pki::Pki,
    blobs: &Arc<BlobStore>,
    input: &BlobKey,
    order_id: OrderId,
    person: &crate::store::orders::OrderPerson,
    file_name: String,
    now: time::OffsetDateTime,
) -> anyhow::Result<Option<OrderDocument>> {
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    use std::io::{Seek, SeekFrom};

    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|e| anyhow::anyhow!("generating a signing key: {e}"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|e| anyhow::anyhow!("reading the signing key: {e}"))?;
    // SubjectPublicKeyInfo for an uncompressed P-256 point: the fixed algorithm header
    // (id-ecPublicKey, prime256v1) and the point as the BIT STRING.
    const P256_SPKI_PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let spki = [&P256_SPKI_PREFIX[..], key.public_key().as_ref()].concat();
    let public_key = PublicKey::from_spki_der(&spki).context("the new key's public key")?;

    let a = &person.attributes;
    let name = [a.first_name.as_deref(), a.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let common_name = if name.is_empty() {
        person.identifier.clone()
    } else {
        name
    };
    let mut subject = Subject::builder().common_name(&common_name);
    subject = subject.serial_number(&match person.source {
        PersonSource::External => format!("PNOSE-{}", person.identifier),
        PersonSource::Internal => person.identifier.clone(),
    });
    let email = a
        .mail
        .as_deref()
        .filter(|m| m.contains('@') && m.is_ascii());
    let certificate = pki
        .issue_for_signature(
            &subject.build(),
            &public_key,
            email,
            now,
            SIGNATURE_CERTIFICATE_VALIDITY,
        )
        .context("issuing the signature certificate")?;

    let mut source = match blobs.open_read(input) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        other => other.context("opening the order's document")?,
    };
    let (temp, mut output) = blobs.create_temp().context("a temporary file")?;
    let mut options = PrepareOptions::new(now);
    options.signer_name = Some(common_name);
    options.update_id = Some(rand::random());
    signet_pdf::sign_with_key(
        &mut source,
        &mut output,
        &options,
        pkcs8.as_ref(),
        &certificate,
        &[pki.ca().certificate_der()],
    )
    .context("signing the PDF")?;
    output.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut output, &mut HashWriter(&mut hasher))?;
    let key = BlobKey::order_version(order_id, uuid::Uuid::new_v4());
    blobs
        .persist(temp, &output, &key)
        .context("storing the signed PDF")?;
    Ok(Some(OrderDocument {
        file_name,
        blob: key,
        size,
        sha256: crate::domain::Sha256Digest::from_bytes(hasher.finalize().into()),
    }))
}

/// Feeds what is written into a hasher.
pub(crate) struct HashWriter<'a>(pub &'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
