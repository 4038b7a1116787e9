//! The order service: every operation on a signing order — create (with the upload check and
//! the first document version), read, state, the document to download, update, replace signers,
//! delete, events, anonymize, and what happens when a signer signs or rejects — plus each
//! signer's link. The Automation API, the signer pages and the jobs all call these; the rules
//! live in `domain::order`, the atomic bookkeeping in the store. It takes its own dependencies
//! (store, blobs, CA, clock, directory, link key), never `AppState`.

use anyhow::Context;
use sha2::{Digest, Sha256};
use signet_crypto::csr::{PublicKey, Subject};
use signet_pdf::PrepareOptions;
use std::future::Future;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use super::levels::{prepare_options_for, LevelError, LevelFinisher};
use super::signing_links::{new_link_nonce, token_hash, LinkKey};
use crate::clock::Clock;
use crate::directory::{Directory, DirectoryError, PersonAttributes};
use crate::domain::order::OrderRefusal;
use crate::domain::person::PersonSource;
use crate::domain::{
    LinkType, OrderId, OrderOption, OrderState, PriorityGroup, Sha256Digest, SignatureLevel,
};
use crate::pki::Pki;
use crate::store::blob_backend::Blobs;
use crate::store::blobs::{BlobKey, TempBlob};
use crate::store::orders::{
    AnonymizeOutcome, AnonymizeTarget, EventRecord, NewOrder, NewOrderSigner, OrderChange,
    OrderDocument, OrderRecord, OrderSignerRecord, OrderUpdate, RecordedSignature, ResolvedPerson,
    SignatureOutcome,
};
use crate::store::{SignatureCertificateRecord, Store};

/// How long the certificate made for one order signature is valid. Short: it certifies a key
/// that signs once and is then thrown away; validators check it at the signing time (`/M`).
pub const SIGNATURE_CERTIFICATE_VALIDITY: Duration = Duration::days(1);

/// How often signing is retried when another process signed the same order first.
const MAX_SIGNING_ATTEMPTS: usize = 8;

/// How often a download reads the order again when a signature replaced the version it was
/// about to open.
const MAX_DOCUMENT_READS: usize = 3;

/// What an order operation could not find.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    #[error("no order {0}")]
    Order(OrderId),
    #[error("order {order_id} has no signer {internal_id}")]
    Signer {
        order_id: OrderId,
        internal_id: String,
    },
    #[error("no events for order {0}")]
    Events(OrderId),
    #[error("no such user")]
    User,
}

/// Why an uploaded document is not taken as an order's document.
#[derive(Debug, thiserror::Error)]
pub enum UploadRefusal {
    #[error("the uploaded file is empty")]
    Empty,
    #[error("the upload is not a PDF: it does not start with %PDF-")]
    NotPdf,
    /// What the engine cannot prepare now it could not sign later.
    #[error(transparent)]
    Pdf(signet_pdf::PdfError),
}

/// Why the people a request names cannot be put on an order.
#[derive(Debug, thiserror::Error)]
pub enum PersonRefusal {
    /// The detail (server address, bind error) goes to the operator's log, not the client.
    #[error("the user directory is unreachable, nothing was created; try again later")]
    DirectoryUnavailable,
    #[error("{0}")]
    BadIdentifier(String),
    #[error("no INTERNAL user {0:?} in the directory")]
    UnknownInternal(String),
    #[error("signers {0:?} and {1:?} are the same person; name each signer once")]
    SamePerson(String, String),
}

/// Why an order operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    NotFound(#[from] Missing),
    /// The order's rules refuse it (order finished, signer already acted, not their turn, ...).
    #[error(transparent)]
    Rule(#[from] OrderRefusal),
    #[error(transparent)]
    Upload(#[from] UploadRefusal),
    #[error(transparent)]
    People(#[from] PersonRefusal),
    /// The signature's level needs a timestamp or validation data that cannot be had now: the
    /// signature was not recorded and the order is unchanged (503 TIMESTAMP_UNAVAILABLE).
    #[error("{0}")]
    TimestampUnavailable(LevelError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<LevelError> for OrderError {
    fn from(error: LevelError) -> Self {
        if error.is_unavailable() {
            OrderError::TimestampUnavailable(error)
        } else {
            OrderError::Internal(anyhow::Error::new(error).context("signing the PDF"))
        }
    }
}

impl From<crate::store::StoreError> for OrderError {
    fn from(error: crate::store::StoreError) -> Self {
        OrderError::Internal(error.into())
    }
}

/// A person as a request names them, parsed but not yet looked up.
#[derive(Debug, Clone)]
pub struct PersonRequest {
    pub source: PersonSource,
    /// INTERNAL: as given; EXTERNAL: the normalised personal number.
    pub identifier: String,
    pub attributes: PersonAttributes,
    pub priority_group: PriorityGroup,
}

/// The uploaded PDF, on disk under the blob store's `tmp/` (removed on drop unless persisted).
pub struct UploadedFile {
    pub temp: TempBlob,
    pub file: std::fs::File,
    pub file_name: String,
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// A new order as the request describes it; the service looks the people up, makes the links
/// and stores the document.
#[derive(Debug, Clone)]
pub struct OrderDraft {
    pub title: String,
    pub description: Option<String>,
    pub due_at: OffsetDateTime,
    pub link_type: LinkType,
    pub tags: Vec<serde_json::Value>,
    pub options: Vec<OrderOption>,
    pub solicitor: PersonRequest,
    pub signers: Vec<PersonRequest>,
}

/// A change to an order's metadata or state (`PUT /orders/{id}`); a new document comes beside it.
#[derive(Debug, Clone, Default)]
pub struct OrderEdit {
    pub title: Option<String>,
    pub description: Option<String>,
    pub due_at: Option<OffsetDateTime>,
    pub cancel: bool,
}

/// Where the order's current document lies, to be served.
#[derive(Debug, Clone)]
pub struct DocumentSource {
    pub document: OrderDocument,
}

/// Who to anonymize, as a request names them.
#[derive(Debug, Clone)]
pub enum AnonymizeRequest {
    InternalId(uuid::Uuid),
    /// By source and identifier; an INTERNAL `attr=value` identifier names them through the
    /// directory.
    Person {
        source: PersonSource,
        identifier: String,
    },
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
    blobs: Arc<Blobs>,
    pki: Arc<Pki>,
    clock: Arc<dyn Clock>,
    directory: Arc<dyn Directory>,
    locks: OrderLocks,
    links: LinkKey,
    /// Base URL for signing links, without a trailing slash.
    public_url: Arc<str>,
    /// The level every signer's revision is made at, and what raises it there; `None` signs at
    /// B-B ([`OrderService::with_signature_level`] sets it at start-up).
    levels: Option<(Arc<LevelFinisher>, SignatureLevel)>,
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
        blobs: Arc<Blobs>,
        pki: Arc<Pki>,
        clock: Arc<dyn Clock>,
        directory: Arc<dyn Directory>,
        links: LinkKey,
        public_url: Arc<str>,
    ) -> Self {
        Self {
            store,
            blobs,
            pki,
            clock,
            directory,
            locks: OrderLocks::default(),
            links,
            public_url,
            levels: None,
        }
    }

    /// Signs every signer's revision at `level` (the server's `--signature-level`).
    pub fn with_signature_level(
        mut self,
        finisher: Arc<LevelFinisher>,
        level: SignatureLevel,
    ) -> Self {
        self.levels = Some((finisher, level));
        self
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
        let found = self
            .store
            .find_order_by_token_hash(&token_hash(token))
            .await?;
        Ok(found.map(|(order, position)| SignerAccess { order, position }))
    }

    /// A MAC under a key derived from the link key for `purpose` (the signer pages' CSRF
    /// tokens and sessions).
    pub fn link_mac(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        self.links.mac(purpose, message)
    }

    pub async fn find_order(&self, order_id: &OrderId) -> Result<Option<OrderRecord>, OrderError> {
        Ok(self.store.find_order(order_id).await?)
    }

    /// The order, or `NotFound`.
    pub async fn order(&self, order_id: OrderId) -> Result<OrderRecord, OrderError> {
        Ok(self
            .store
            .find_order(&order_id)
            .await?
            .ok_or(Missing::Order(order_id))?)
    }

    /// Only the order's state (the cheap poll).
    pub async fn state(&self, order_id: OrderId) -> Result<OrderState, OrderError> {
        Ok(self
            .store
            .order_state(&order_id)
            .await?
            .ok_or(Missing::Order(order_id))?)
    }

    /// The order's audit trail, oldest first; `NotFound` when there is none (the events outlive
    /// a deleted order, so an id with events is known even after deletion).
    pub async fn events(&self, order_id: OrderId) -> Result<Vec<EventRecord>, OrderError> {
        let events = self.store.order_events(&order_id).await?;
        if events.is_empty() {
            return Err(Missing::Events(order_id).into());
        }
        Ok(events)
    }

    /// Hands the order's current document to `serve`. A signature landing between reading the
    /// row and opening the file removes the version the row named (`serve` then fails with
    /// `NotFound`): the row is read again and the new version served.
    pub async fn serve_document<T, F, Fut>(
        &self,
        order_id: OrderId,
        mut serve: F,
    ) -> Result<T, OrderError>
    where
        F: FnMut(DocumentSource) -> Fut,
        Fut: Future<Output = std::io::Result<T>>,
    {
        for _ in 0..MAX_DOCUMENT_READS {
            let order = self.order(order_id).await?;
            let source = DocumentSource {
                document: order.document,
            };
            match serve(source).await {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                other => {
                    return other.map_err(|e| {
                        OrderError::Internal(anyhow::Error::new(e).context("serving the document"))
                    })
                }
            }
        }
        Err(OrderError::Internal(anyhow::anyhow!(
            "the order's document kept changing while it was being served"
        )))
    }

    /// Creates an order: the people are looked up first (a directory that is down must not leave
    /// a stored document behind), then the upload is checked and stored as the first version,
    /// then the order and its events are written in one transaction.
    #[tracing::instrument(skip_all, fields(order.id))]
    pub async fn create(
        &self,
        draft: OrderDraft,
        upload: UploadedFile,
    ) -> Result<OrderId, OrderError> {
        let now = self.clock.now();
        let order_id = OrderId::new_random();
        tracing::Span::current().record("order.id", tracing::field::display(&order_id));
        let solicitor = self.resolve(&draft.solicitor).await?;
        let signers = self.resolve_signers(order_id, &draft.signers).await?;
        let document = self.store_upload(order_id, upload).await?;
        let order = NewOrder {
            order_id,
            title: draft.title,
            description: draft.description,
            due_at: draft.due_at,
            link_type: draft.link_type,
            tags: draft.tags,
            options: draft.options,
            solicitor,
            signers,
            document,
        };
        if let Err(error) = self.store.create_order(&order, now).await {
            let _ = self.blobs.remove_order(order_id);
            return Err(error.into());
        }
        tracing::info!(signers = order.signers.len(), "order created");
        Ok(order_id)
    }

    /// Changes title, description, due date, the document (while nobody has signed) or cancels.
    /// Answers the order afterwards.
    #[tracing::instrument(skip_all, fields(order.id = %order_id))]
    pub async fn update(
        &self,
        order_id: OrderId,
        edit: OrderEdit,
        upload: Option<UploadedFile>,
    ) -> Result<OrderRecord, OrderError> {
        let now = self.clock.now();
        let document = match upload {
            Some(upload) => {
                // Refuse before storing anything when the order cannot take a new document.
                let order = self.order(order_id).await?;
                order
                    .state
                    .require_pending("changed")
                    .map_err(OrderRefusal::from)?;
                Some(self.store_upload(order_id, upload).await?)
            }
            None => None,
        };
        let new_blob = document.as_ref().map(|d| d.blob.clone());
        let change = OrderUpdate {
            title: edit.title,
            description: edit.description,
            due_at: edit.due_at,
            document,
            cancel: edit.cancel,
        };
        let outcome = self.store.update_order(&order_id, &change, now).await;
        if !matches!(outcome, Ok(OrderChange::Applied { .. })) {
            if let Some(blob) = &new_blob {
                let _ = self.blobs.remove(blob);
            }
        }
        self.applied(outcome?, order_id)?;
        self.order(order_id).await
    }

    /// Replaces the signer list (and, when given, the options). Answers the order afterwards.
    #[tracing::instrument(skip_all, fields(order.id = %order_id))]
    pub async fn replace_signers(
        &self,
        order_id: OrderId,
        signers: &[PersonRequest],
        options: Option<Vec<OrderOption>>,
    ) -> Result<OrderRecord, OrderError> {
        let resolved = self.resolve_signers(order_id, signers).await?;
        let change = self
            .store
            .replace_order_signers(&order_id, &resolved, options.as_deref(), self.clock.now())
            .await?;
        self.applied(change, order_id)?;
        self.order(order_id).await
    }

    /// Deletes the order, its tasks and its document bytes; the events stay.
    #[tracing::instrument(skip(self), fields(order.id = %order_id))]
    pub async fn delete(&self, order_id: OrderId) -> Result<(), OrderError> {
        self.store
            .delete_order(&order_id, self.clock.now())
            .await?
            .ok_or(Missing::Order(order_id))?;
        if let Err(error) = self.blobs.remove_order(order_id) {
            tracing::warn!(%error, "the deleted order's document could not be removed");
        }
        Ok(())
    }

    /// Removes a person's name, phone number and e-mail address from Signet's records and gives
    /// them a new internal id, once they have no PENDING order. Answers the new internal id.
    #[tracing::instrument(skip_all)]
    pub async fn anonymize(&self, request: AnonymizeRequest) -> Result<String, OrderError> {
        let target = match request {
            AnonymizeRequest::InternalId(id) => AnonymizeTarget::InternalId(id.to_string()),
            AnonymizeRequest::Person { source, identifier } => {
                self.person_target(source, &identifier).await
            }
        };
        match self.store.anonymize(&target, self.clock.now()).await? {
            AnonymizeOutcome::NotFound => Err(Missing::User.into()),
            AnonymizeOutcome::HasPendingOrders => Err(OrderRefusal::PersonHasPendingOrders.into()),
            AnonymizeOutcome::Done { internal_id } => {
                tracing::info!("user anonymized");
                Ok(internal_id)
            }
        }
    }

    /// The login key of a person named by source and identifier: EXTERNAL people are their
    /// personal number; INTERNAL ones are looked up (an `attr=value` identifier names the person
    /// through the directory), falling back to the identifier itself when the directory no longer
    /// has them.
    async fn person_target(&self, source: PersonSource, identifier: &str) -> AnonymizeTarget {
        let user_id = match source {
            PersonSource::External => identifier.to_owned(),
            PersonSource::Internal => match self.directory.lookup(source, identifier).await {
                Ok(Some(found)) => found.user_id,
                Ok(None) | Err(_) => identifier
                    .split_once('=')
                    .map_or(identifier, |(_, value)| value)
                    .to_owned(),
            },
        };
        AnonymizeTarget::Person { source, user_id }
    }

    /// What a store change did, as a result; superseded blobs are removed once it committed.
    fn applied(&self, change: OrderChange, order_id: OrderId) -> Result<(), OrderError> {
        match change {
            OrderChange::NotFound => Err(Missing::Order(order_id).into()),
            OrderChange::Illegal(refusal) => Err(refusal.into()),
            OrderChange::Applied { superseded } => {
                for blob in superseded {
                    if let Err(error) = self.blobs.remove(&blob) {
                        tracing::warn!(%error, "a superseded document could not be removed");
                    }
                }
                Ok(())
            }
        }
    }

    /// Looks the person up and merges: directory attributes first, the request's for the rest.
    /// An INTERNAL person the directory does not know is refused; an EXTERNAL one is taken as
    /// the request describes them.
    async fn resolve(&self, person: &PersonRequest) -> Result<ResolvedPerson, OrderError> {
        let found = self
            .directory
            .lookup(person.source, &person.identifier)
            .await
            .map_err(|error| match error {
                DirectoryError::Unavailable(why) => {
                    tracing::error!(error = %why, "the user directory is unreachable");
                    PersonRefusal::DirectoryUnavailable
                }
                DirectoryError::BadIdentifier(why) => PersonRefusal::BadIdentifier(why),
            })?;
        let (user_id, mut attributes) = match (found, person.source) {
            (Some(found), _) => (found.user_id, found.attributes),
            (None, PersonSource::Internal) => {
                return Err(PersonRefusal::UnknownInternal(person.identifier.clone()).into())
            }
            (None, PersonSource::External) => {
                (person.identifier.clone(), PersonAttributes::default())
            }
        };
        attributes.fill_missing_from(&person.attributes);
        Ok(ResolvedPerson {
            source: person.source,
            identifier: person.identifier.clone(),
            user_id,
            attributes,
        })
    }

    /// Resolves every signer of a request against the directory, concurrently, and gives each
    /// a fresh link.
    async fn resolve_signers(
        &self,
        order_id: OrderId,
        requests: &[PersonRequest],
    ) -> Result<Vec<NewOrderSigner>, OrderError> {
        let resolved =
            futures::future::try_join_all(requests.iter().map(|r| self.resolve(r))).await?;
        // One person, one task: two spellings of one person (`uid=x` and `x`) would give them
        // two signatures to make, and the second could never be told apart from the first.
        for (index, person) in resolved.iter().enumerate() {
            if let Some(twin) = resolved[..index].iter().find(|earlier| {
                earlier.source == person.source && earlier.user_id == person.user_id
            }) {
                return Err(PersonRefusal::SamePerson(
                    twin.identifier.clone(),
                    person.identifier.clone(),
                )
                .into());
            }
        }
        Ok(resolved
            .into_iter()
            .zip(requests)
            .map(|(person, request)| {
                let link = self.new_link(&order_id);
                NewOrderSigner {
                    person,
                    group: request.priority_group,
                    link_nonce: link.nonce,
                    token_hash: link.token_hash,
                }
            })
            .collect())
    }

    /// Checks the upload is a PDF the engine can sign later, then makes it durable as a version
    /// of the order's document. Blocking work runs off the executor.
    async fn store_upload(
        &self,
        order_id: OrderId,
        upload: UploadedFile,
    ) -> Result<OrderDocument, OrderError> {
        if upload.size == 0 {
            return Err(UploadRefusal::Empty.into());
        }
        let blobs = self.blobs.clone();
        let span = tracing::Span::current();
        // Dropped with this future when the client hangs up: the check stops too.
        let cancel = signet_pdf::Cancel::new();
        let _cancel_on_hang_up = cancel.cancel_on_drop();
        tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                use std::io::{BufReader, Read, Seek, SeekFrom};
                let UploadedFile {
                    temp,
                    mut file,
                    file_name,
                    size,
                    sha256,
                } = upload;
                let io = |e: std::io::Error| {
                    OrderError::Internal(anyhow::Error::new(e).context("reading the upload"))
                };
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                let mut magic = [0u8; 5];
                let read = file.read(&mut magic).map_err(io)?;
                if &magic[..read] != b"%PDF-" {
                    return Err(UploadRefusal::NotPdf.into());
                }
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                signet_pdf::check_with(BufReader::new(&mut file), &cancel)
                    .map_err(UploadRefusal::Pdf)?;
                let key = BlobKey::order_version(order_id, uuid::Uuid::new_v4());
                blobs.persist(temp, &file, &key).map_err(io)?;
                Ok(OrderDocument {
                    file_name,
                    blob: key,
                    size,
                    sha256,
                })
            })
        })
        .await
        .map_err(|e| OrderError::Internal(e.into()))?
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
            OrderError::NotFound(Missing::Signer {
                order_id: order.order_id,
                internal_id: signer_internal_id.to_owned(),
            })
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
                .ok_or(Missing::Order(order_id))?;
            let position = position_of(&order, signer_internal_id)?;
            let task = order
                .signers
                .iter()
                .find(|s| s.position == position)
                .context("the task vanished")?;
            crate::domain::order::may_act(order.state, task.status).map_err(OrderRefusal::from)?;

            let now = self.clock.now();
            let person = task.person.clone();
            let signing = Signing {
                pki: self.pki.clone(),
                blobs: self.blobs.clone(),
                store: self.store.clone(),
                levels: self.levels.clone(),
                runtime: tokio::runtime::Handle::current(),
            };
            let input = order.document.blob.clone();
            let file_name = order.document.file_name.clone();
            let span = tracing::Span::current();
            let Some((document, archive_expires_at)) = tokio::task::spawn_blocking(move || {
                span.in_scope(|| {
                    signing.sign_document(&input, order_id, position, &person, file_name, now)
                })
            })
            .await
            .context("the signing task failed")??
            else {
                // The version we read was superseded (and removed) by a signature from another
                // process between our read and our open: read the order again.
                continue;
            };
            let recorded = RecordedSignature {
                position,
                based_on_revision: order.revision,
                document: document.clone(),
                archive_expires_at,
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
                    let level = self
                        .levels
                        .as_ref()
                        .map_or(SignatureLevel::PadesBB, |(_, level)| *level);
                    crate::telemetry::metrics::signature_made("orders", level);
                    return Ok(order_state);
                }
                // Another process signed first: our revision is built on an old one. Try again.
                SignatureOutcome::Stale => remove_blobs(&self.blobs, &[document.blob]),
                SignatureOutcome::Illegal(refusal) => {
                    remove_blobs(&self.blobs, &[document.blob]);
                    return Err(refusal.into());
                }
                SignatureOutcome::NotFound => {
                    remove_blobs(&self.blobs, &[document.blob]);
                    return Err(Missing::Order(order_id).into());
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
            .ok_or(Missing::Order(order_id))?;
        let position = position_of(&order, signer_internal_id)?;
        match self
            .store
            .reject_order(&order_id, position, reason, self.clock.now())
            .await?
        {
            SignatureOutcome::Recorded { state, .. } => Ok(state),
            SignatureOutcome::Illegal(refusal) => Err(refusal.into()),
            SignatureOutcome::NotFound | SignatureOutcome::Stale => {
                Err(Missing::Order(order_id).into())
            }
        }
    }
}

fn remove_blobs(blobs: &Blobs, keys: &[BlobKey]) {
    for key in keys {
        if let Err(error) = blobs.remove(key) {
            tracing::warn!(blob = key.as_str(), %error, "could not remove a superseded blob");
        }
    }
}

/// What signing one revision needs, moved onto a blocking thread.
struct Signing {
    pki: Arc<Pki>,
    blobs: Arc<Blobs>,
    store: Arc<dyn Store>,
    levels: Option<(Arc<LevelFinisher>, SignatureLevel)>,
    /// For the store and the timestamp authority, asked from the blocking thread.
    runtime: tokio::runtime::Handle,
}

impl Signing {
    /// Certifies a fresh key for this signer (recorded first, so the OCSP responder can vouch for
    /// it) and appends their signature revision, at the server's level, to a copy of the order's
    /// document, as a new blob, with when its document timestamp must be renewed by (B-LTA).
    /// Blocking. `None` when the version read was superseded meanwhile.
    fn sign_document(
        &self,
        input: &BlobKey,
        order_id: OrderId,
        position: i64,
        person: &crate::store::orders::OrderPerson,
        file_name: String,
        now: time::OffsetDateTime,
    ) -> Result<Option<(OrderDocument, Option<time::OffsetDateTime>)>, OrderError> {
        let (pki, blobs) = (&self.pki, &self.blobs);
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
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
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
        let issued = pki
            .issue_for_signature(
                &subject.build(),
                &public_key,
                email,
                now,
                SIGNATURE_CERTIFICATE_VALIDITY,
            )
            .context("issuing the signature certificate")?;
        crate::telemetry::audit::signature_certificate_issued(&order_id, &issued.serial);
        self.runtime
            .block_on(
                self.store
                    .insert_signature_certificate(&SignatureCertificateRecord {
                        serial: issued.serial,
                        order_id,
                        signer_position: Some(position),
                        not_before: issued.not_before,
                        not_after: issued.not_after,
                        issued_at: now,
                        revoked_at: None,
                        revocation_reason: None,
                    }),
            )
            .context("recording the signature certificate")?;
        let certificate = issued.der;

        let mut source = match blobs.open_read(input) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            other => other.context("opening the order's document")?,
        };
        let (temp, mut output) = blobs.create_temp().context("a temporary file")?;
        let level = self
            .levels
            .as_ref()
            .map_or(SignatureLevel::PadesBB, |(_, level)| *level);
        let mut options = prepare_options_for(level, PrepareOptions::new(now));
        options.signer_name = Some(common_name);
        options.update_id = Some(rand::random());
        let prepared =
            signet_pdf::prepare(&mut source, &mut output, &options).context("preparing the PDF")?;
        let cms = signet_crypto::cms::sign_with_key(
            &prepared.digest,
            pkcs8.as_ref(),
            &certificate,
            &[pki.ca().certificate_der()],
        )
        .context("signing the PDF")?;
        let archive_expires_at = match &self.levels {
            Some((finisher, level)) => {
                finisher
                    .finish(
                        &self.runtime,
                        &mut output,
                        &prepared.byte_range,
                        &cms,
                        *level,
                    )?
                    .archive_expires_at
            }
            None => {
                signet_pdf::embed(&mut output, &prepared.byte_range, &cms)
                    .context("embedding the signature")?;
                None
            }
        };
        output
            .seek(SeekFrom::Start(0))
            .context("reading the signed PDF")?;
        let mut hasher = Sha256::new();
        let size = std::io::copy(&mut output, &mut HashWriter(&mut hasher))
            .context("hashing the signed PDF")?;
        let key = BlobKey::order_version(order_id, uuid::Uuid::new_v4());
        blobs
            .persist(temp, &output, &key)
            .context("storing the signed PDF")?;
        Ok(Some((
            OrderDocument {
                file_name,
                blob: key,
                size,
                sha256: crate::domain::Sha256Digest::from_bytes(hasher.finalize().into()),
            },
            archive_expires_at,
        )))
    }
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
