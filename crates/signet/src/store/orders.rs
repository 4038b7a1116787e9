//! What the store keeps of signing orders: the records it reads and writes, and the outcomes of
//! the changes it makes atomically (each change writes its events in the same transaction).

use time::OffsetDateTime;

use super::blobs::BlobKey;
use super::StoreResult;
use crate::directory::PersonAttributes;
use crate::domain::order::OrderRefusal;
use crate::domain::person::PersonSource;
use crate::domain::{
    LinkType, OrderId, OrderOption, OrderState, PriorityGroup, Sha256Digest, TaskStatus,
};

/// A person as resolved for an order: who they are in their source and what the lookup (or,
/// failing that, the request) said about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPerson {
    pub source: PersonSource,
    /// The identifier as the order shows it (EXTERNAL: the normalised personal number).
    pub identifier: String,
    /// The person's id in the source; with `source` it names the login.
    pub user_id: String,
    pub attributes: PersonAttributes,
}

/// A person on a stored order: the snapshot plus their login's current internal id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPerson {
    pub internal_id: String,
    pub source: PersonSource,
    pub identifier: String,
    pub attributes: PersonAttributes,
}

/// The order's current PDF in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDocument {
    pub file_name: String,
    pub blob: BlobKey,
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// A signer to put on an order.
#[derive(Debug, Clone)]
pub struct NewOrderSigner {
    pub person: ResolvedPerson,
    pub group: PriorityGroup,
    /// Random, not secret: derives the signing link's token with the server's link key.
    pub link_nonce: String,
    /// SHA-256 (hex) of the signing link's token.
    pub token_hash: String,
}

/// Everything a new order is made of; the store adds the logins and events.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub order_id: OrderId,
    pub title: String,
    pub description: Option<String>,
    pub due_at: OffsetDateTime,
    pub link_type: LinkType,
    pub tags: Vec<serde_json::Value>,
    pub options: Vec<OrderOption>,
    pub solicitor: ResolvedPerson,
    pub signers: Vec<NewOrderSigner>,
    pub document: OrderDocument,
}

/// A signer's task as stored.
#[derive(Debug, Clone)]
pub struct OrderSignerRecord {
    pub position: i64,
    pub person: OrderPerson,
    pub group: PriorityGroup,
    pub status: TaskStatus,
    pub action_at: Option<OffsetDateTime>,
    pub reject_reason: Option<String>,
    pub link_nonce: String,
}

/// An order as stored.
#[derive(Debug, Clone)]
pub struct OrderRecord {
    pub order_id: OrderId,
    pub title: String,
    pub description: Option<String>,
    pub state: OrderState,
    pub link_type: LinkType,
    pub tags: Vec<serde_json::Value>,
    pub options: Vec<OrderOption>,
    pub solicitor: OrderPerson,
    pub document: OrderDocument,
    pub signatures: u32,
    /// Bumped on every change of the document; signing compares and sets it.
    pub revision: i64,
    pub due_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub signers: Vec<OrderSignerRecord>,
}

impl OrderRecord {
    /// Whether a given option is set.
    pub fn notify_all_signers(&self) -> bool {
        self.options
            .iter()
            .any(|o| matches!(o, OrderOption::NotifyAllSigners(true)))
    }
}

/// A change to an order's metadata, document or state (`PUT /orders/{id}`).
#[derive(Debug, Clone, Default)]
pub struct OrderUpdate {
    pub title: Option<String>,
    pub description: Option<String>,
    pub due_at: Option<OffsetDateTime>,
    pub document: Option<OrderDocument>,
    pub cancel: bool,
}

/// What a change to an order did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderChange {
    NotFound,
    /// Refused by the order's rules (`domain::order`).
    Illegal(OrderRefusal),
    /// Applied; `superseded` names blobs no longer referenced (to remove once committed).
    Applied {
        superseded: Vec<BlobKey>,
    },
}

/// A signer's signature, ready to be recorded.
#[derive(Debug, Clone)]
pub struct RecordedSignature {
    pub position: i64,
    /// The order's revision the new document was built on.
    pub based_on_revision: i64,
    pub document: OrderDocument,
    /// When the new document's last document timestamp must be renewed by (B-LTA only).
    pub archive_expires_at: Option<time::OffsetDateTime>,
}

/// What recording a signature did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureOutcome {
    NotFound,
    /// Refused by the order's rules (`domain::order`).
    Illegal(OrderRefusal),
    /// Another signature landed first: sign again on the new revision.
    Stale,
    Recorded {
        state: OrderState,
        superseded: Vec<BlobKey>,
    },
}

/// Who to anonymize (`POST /anonymize`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnonymizeTarget {
    InternalId(String),
    Person {
        source: PersonSource,
        user_id: String,
    },
}

/// What anonymizing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnonymizeOutcome {
    NotFound,
    /// The person is on a PENDING order (as solicitor, or as a signer yet to act).
    HasPendingOrders,
    Done {
        internal_id: String,
    },
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: i64,
    pub event: String,
    pub at: OffsetDateTime,
    pub actor: Option<String>,
    pub order_id: Option<String>,
    pub details: serde_json::Value,
}

/// A login as stored (for tests and the anonymization check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRecord {
    pub internal_id: String,
    pub source: PersonSource,
    pub user_id: String,
    pub attributes: PersonAttributes,
    pub anonymized: bool,
}

/// Signing orders (the Automation API) and the logins of the people on them. Each change
/// writes its events in its transaction.
#[async_trait::async_trait]
pub trait OrderStore: Send + Sync {
    /// Stores a new order with its signers' tasks (the first priority group PENDING, the rest
    /// QUEUED), creating logins for people met for the first time.
    async fn create_order(&self, order: &NewOrder, now: OffsetDateTime) -> StoreResult<()>;
    async fn find_order(&self, order_id: &OrderId) -> StoreResult<Option<OrderRecord>>;
    /// Just the state: the application's polling question, answered with one indexed read.
    async fn order_state(&self, order_id: &OrderId) -> StoreResult<Option<OrderState>>;
    /// Deletes the order and its tasks (events stay); returns its document for the blob store.
    async fn delete_order(
        &self,
        order_id: &OrderId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<OrderDocument>>;
    /// Changes metadata, replaces the unsigned document, or cancels a PENDING order.
    async fn update_order(
        &self,
        order_id: &OrderId,
        update: &OrderUpdate,
        now: OffsetDateTime,
    ) -> StoreResult<OrderChange>;
    /// Replaces the signer list: signers who acted must stay, new ones may not precede the
    /// group signing now. `options`, when given, replace the order's options.
    async fn replace_order_signers(
        &self,
        order_id: &OrderId,
        signers: &[NewOrderSigner],
        options: Option<&[OrderOption]>,
        now: OffsetDateTime,
    ) -> StoreResult<OrderChange>;
    /// Records a signer's signature if the order is still at the revision it was built on.
    async fn record_order_signature(
        &self,
        order_id: &OrderId,
        signature: &RecordedSignature,
        now: OffsetDateTime,
    ) -> StoreResult<SignatureOutcome>;
    /// A signer rejects: the order ends REJECTED.
    async fn reject_order(
        &self,
        order_id: &OrderId,
        position: i64,
        reason: Option<&str>,
        now: OffsetDateTime,
    ) -> StoreResult<SignatureOutcome>;
    /// Claims up to `limit` PENDING orders whose due date has passed and expires them.
    async fn expire_due_orders(&self, now: OffsetDateTime, limit: i64)
        -> StoreResult<Vec<OrderId>>;
    async fn anonymize(
        &self,
        target: &AnonymizeTarget,
        now: OffsetDateTime,
    ) -> StoreResult<AnonymizeOutcome>;
    async fn find_login(&self, internal_id: &str) -> StoreResult<Option<LoginRecord>>;
    /// The order whose signer's link has this token hash, and that signer's position, in one
    /// read (the signer pages' lookup).
    async fn find_order_by_token_hash(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(OrderRecord, i64)>>;
}
