//! The order service: signing orders as operations over the store, the blob store, the CA and
//! the PDF engine — what happens when a signer signs or rejects, and each signer's link. The
//! Automation API, the signer pages and the jobs all call these; the rules live in
//! `domain::order` and the atomic bookkeeping in the store. It takes its own dependencies, never
//! `AppState`.

use anyhow::Context;
use sha2::{Digest, Sha256};
use signet_crypto::csr::{PublicKey, Subject};
use signet_pdf::PrepareOptions;
use std::sync::Arc;
use time::Duration;

use super::signing_links::{new_link_nonce, token_hash, LinkKey};
use crate::clock::Clock;
use crate::domain::person::PersonSource;
use crate::domain::{OrderId, OrderState};
use crate::pki::Pki;
use crate::store::blobs::{BlobKey, BlobStore};
use crate::store::orders::{
    OrderDocument, OrderRecord, OrderSignerRecord, RecordedSignature, SignatureOutcome,
};
use crate::store::Store;

/// How long the certificate made for one order signature is valid. Short: it certifies a key
/// that signs once and is then thrown away; validators check it at the signing time (`/M`).
pub const SIGNATURE_CERTIFICATE_VALIDITY: Duration = Duration::days(1);

/// How often signing is retried when another process signed the same order first.
const MAX_SIGNING_ATTEMPTS: usize = 8;

/// Why a signer's action on an order did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("{0}")]
    NotFound(String),
    /// The order's rules refuse it (order finished, signer already acted, not their turn).
    #[error("{0}")]
    Illegal(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for OrderError {
    fn from(error: crate::store::StoreError) -> Self {
        OrderError::Internal(error.into())
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
    pub async fn lock(&self, order_id: &OrderId) -> tokio::sync::MutexGuard<'_, ()> {
        let digest = Sha256::digest(order_id.to_string().as_bytes());
        let index = usize::from(digest[0]) % self.stripes.len();
        self.stripes[index].lock().await
    }
}

/// Everything the order operations need, shared by every caller.
pub struct OrderService {
    store: Arc<dyn Store>,
    blobs: Arc<BlobStore>,
    pki: Arc<Pki>,
    clock: Arc<dyn Clock>,
    locks: OrderLocks,
    links: LinkKey,
    /// Base URL for signing links, without a trailing slash.
    public_url: Arc<str>,
}

/// A signer's view through their link: the order and which of its tasks is theirs.
#[derive(Debug, Clone)]
pub struct SignerAccess {
    pub order: OrderRecord,
    pub position: i64,
}

impl SignerAccess {
    /// The task of the link's holder.
    pub fn task(&self) -> &OrderSignerRecord {
        self.order
            .signers
            .iter()
            .find(|s| s.position == self.position)
            .expect("a signer access names a task of its order")
    }
}

/// A new signer's link: the nonce and token hash to store, and the token to hand out.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub nonce: String,
    pub token_hash: String,
}

impl OrderService {
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<BlobStore>,
        pki: Arc<Pki>,
        clock: Arc<dyn Clock>,
        links: LinkKey,
        public_url: Arc<str>,
    ) -> Self {
        Self {
            store,
            blobs,
            pki,
            clock,
            locks: OrderLocks::default(),
            links,
            public_url,
        }
    }

    /// A fresh link for a signer about to be put on `order_id`.
    pub fn new_link(&self, order_id: &OrderId) -> NewLink {
        let nonce = new_link_nonce();
        let token = self.links.token(order_id, &nonce);
        NewLink {
            nonce,
            token_hash: token_hash(&token),
        }
    }

    /// The signer's link as handed out: `<public URL>/sign/<token>`, while it can still be
    /// acted on (the order is PENDING and the signer has not acted); `None` afterwards.
    pub fn signing_url(&self, order: &OrderRecord, signer: &OrderSignerRecord) -> Option<String> {
        let alive = !order.state.is_final() && !signer.status.has_acted();
        alive.then(|| self.link_url(order, signer))
    }

    /// The link's URL regardless of whether it can still be acted on (mail, the pages).
    pub fn link_url(&self, order: &OrderRecord, signer: &OrderSignerRecord) -> String {
        let token = self.links.token(&order.order_id, &signer.link_nonce);
        format!("{}/sign/{token}", self.public_url)
    }

    /// The order and task a link's token opens, or `None` for a token no signer holds. The
    /// lookup is by the token's hash, so its time does not depend on how much of a guess is
    /// right.
    pub async fn access_by_token(&self, token: &str) -> Result<Option<SignerAccess>, OrderError> {
        let Some((order_id, position)) = self
            .store
            .find_task_by_token_hash(&token_hash(token))
            .await?
        else {
            return Ok(None);
        };
        let Some(order) = self.store.find_order(&order_id).await? else {
            return Ok(None);
        };
        if !order.signers.iter().any(|s| s.position == position) {
            return Ok(None);
        }
        Ok(Some(SignerAccess { order, position }))
    }

    /// A MAC under a key derived from the link key for `purpose` (the signer pages' CSRF
    /// tokens and sessions).
    pub fn link_mac(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        self.links.mac(purpose, message)
    }

    pub async fn find_order(&self, order_id: &OrderId) -> Result<Option<OrderRecord>, OrderError> {
        Ok(self.store.find_order(order_id).await?)
    }
}

/// Finds the task of the signer with this internal id.
fn position_of(order: &OrderRecord, signer_internal_id: &str) -> Result<i64, OrderError> {
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
            OrderError::NotFound(format!(
                "order {} has no signer {signer_internal_id}",
                order.order_id
            ))
        })
}

impl OrderService {
    /// Signs the order as one of its signers: Signet's CA certifies a fresh key for this one
    /// signature (subject: the signer's name, serialNumber: their identifier, e-mail), and the engine
    /// appends the signer's PAdES revision. Earlier signatures stay valid. Returns the order's state
    /// afterwards (ACCEPTED once the last signer has signed).
    #[tracing::instrument(skip(self), fields(order.id = %order_id))]
    pub async fn sign_as(
        &self,
        order_id: OrderId,
        signer_internal_id: &str,
    ) -> Result<OrderState, OrderError> {
        let _serialised = self.locks.lock(&order_id).await;
        // Each stale attempt means another process signed this order meanwhile; there are only so
        // many signers, so a handful of attempts always suffices in practice.
        for _attempt in 0..MAX_SIGNING_ATTEMPTS {
            let order = self
                .store
                .find_order(&order_id)
                .await?
                .ok_or_else(|| OrderError::NotFound(format!("no order {order_id}")))?;
            let position = position_of(&order, signer_internal_id)?;
            let task = order
                .signers
                .iter()
                .find(|s| s.position == position)
                .context("the task vanished")?;
            crate::domain::order::may_act(order.state, task.status)
                .map_err(|e| OrderError::Illegal(e.to_string()))?;

            let now = self.clock.now();
            let person = task.person.clone();
            let pki = self.pki.clone();
            let blobs = self.blobs.clone();
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
            match self
                .store
                .record_order_signature(&order_id, &recorded, now)
                .await?
            {
                SignatureOutcome::Recorded {
                    state: order_state,
                    superseded,
                } => {
                    remove_blobs(&self.blobs, &superseded);
                    return Ok(order_state);
                }
                // Another process signed first: our revision is built on an old one. Try again.
                SignatureOutcome::Stale => remove_blobs(&self.blobs, &[document.blob]),
                SignatureOutcome::Illegal(why) => {
                    remove_blobs(&self.blobs, &[document.blob]);
                    return Err(OrderError::Illegal(why));
                }
                SignatureOutcome::NotFound => {
                    remove_blobs(&self.blobs, &[document.blob]);
                    return Err(OrderError::NotFound(format!("no order {order_id}")));
                }
            }
        }
        Err(OrderError::Internal(anyhow::anyhow!(
            "order {order_id} kept changing under {MAX_SIGNING_ATTEMPTS} signing attempts"
        )))
    }

    /// A signer declines: the order ends REJECTED and nobody can sign it any more.
    #[tracing::instrument(skip(self, reason), fields(order.id = %order_id))]
    pub async fn reject_as(
        &self,
        order_id: OrderId,
        signer_internal_id: &str,
        reason: Option<&str>,
    ) -> Result<OrderState, OrderError> {
        let _serialised = self.locks.lock(&order_id).await;
        let order = self
            .store
            .find_order(&order_id)
            .await?
            .ok_or_else(|| OrderError::NotFound(format!("no order {order_id}")))?;
        let position = position_of(&order, signer_internal_id)?;
        match self
            .store
            .reject_order(&order_id, position, reason, self.clock.now())
            .await?
        {
            SignatureOutcome::Recorded { state, .. } => Ok(state),
            SignatureOutcome::Illegal(why) => Err(OrderError::Illegal(why)),
            SignatureOutcome::NotFound | SignatureOutcome::Stale => {
                Err(OrderError::NotFound(format!("no order {order_id}")))
            }
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
