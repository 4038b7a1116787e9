//! Signing orders in SQL: create, read, change, sign, expire, anonymize. Every change runs in
//! one write transaction together with the events it causes, so the audit trail never misses
//! or invents an action.

use async_trait::async_trait;
use sqlx::AnyConnection;
use time::OffsetDateTime;

use super::{corrupt, from_count, from_unix, outbox, parse_blob, to_count, to_unix, SqlStore};
use crate::directory::PersonAttributes;
use crate::domain::order::{
    check_signature, plan_rejection, plan_signers, plan_update, settle, CurrentTask, PersonKey,
    PlanOutcome, RequestedSigner, SignatureCheck, Task, UpdateRequest,
};
use crate::domain::person::PersonSource;
use crate::domain::{LinkType, OrderId, OrderOption, OrderState, PriorityGroup, TaskStatus};
use crate::store::orders::{
    AnonymizeOutcome, AnonymizeTarget, LoginRecord, NewOrder, NewOrderSigner, OrderChange,
    OrderDocument, OrderPerson, OrderRecord, OrderSignerRecord, OrderStore, OrderUpdate,
    RecordedSignature, ResolvedPerson, SignatureOutcome,
};
use crate::store::{Dialect, StoreError, StoreResult};

const INSERT_EVENT: &str =
    "INSERT INTO events (event, at, actor, order_id, details) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id";
const INSERT_LOGIN: &str =
    "INSERT INTO logins (id, internal_id, source, user_id, first_name, last_name, mail, mobile, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
         ON CONFLICT (source, user_id) DO NOTHING";
const SELECT_LOGIN_OF_PERSON: &str =
    "SELECT id, internal_id FROM logins WHERE source = $1 AND user_id = $2";
const REFRESH_LOGIN: &str =
    "UPDATE logins SET first_name = COALESCE($1, first_name), last_name = COALESCE($2, last_name), \
         mail = COALESCE($3, mail), mobile = COALESCE($4, mobile), updated_at = $5 WHERE id = $6";
const INSERT_ORDER_SIGNER: &str =
    "INSERT INTO order_signers (order_id, position, login_id, source, identifier, first_name, \
         last_name, mail, mobile, priority_group, status, link_nonce, token_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
const SAVE_TASK_STATUS: &str =
    "UPDATE order_signers SET status = $1 WHERE order_id = $2 AND position = $3 AND status <> $1";
const FINISH_ORDER: &str =
    "UPDATE orders SET state = $1, finished_at = $2, updated_at = $2 WHERE order_id = $3 AND state = 'PENDING'";
const INSERT_ORDER: &str =
    "INSERT INTO orders (order_id, title, description, state, link_type, tags, options, \
                     solicitor_login, solicitor_identifier, solicitor_first_name, solicitor_last_name, \
                     solicitor_mail, solicitor_mobile, document_name, document_blob, document_size, \
                     document_sha256, signatures, revision, due_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, 'PENDING', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, 0, 0, $17, $18, $18)";
const DELETE_ORDER_SIGNERS: &str = "DELETE FROM order_signers WHERE order_id = $1";
const DELETE_ORDER: &str = "DELETE FROM orders WHERE order_id = $1";
const REPLACE_ORDER_DOCUMENT: &str =
    "UPDATE orders SET document_name = $1, document_blob = $2, document_size = $3, \
                         document_sha256 = $4, revision = revision + 1, updated_at = $5 WHERE order_id = $6";
const SET_ORDER_TITLE: &str = "UPDATE orders SET title = $1, updated_at = $2 WHERE order_id = $3";
const SET_ORDER_DESCRIPTION: &str =
    "UPDATE orders SET description = $1, updated_at = $2 WHERE order_id = $3";
const SET_ORDER_DUE_AT: &str = "UPDATE orders SET due_at = $1, updated_at = $2 WHERE order_id = $3";
const SELECT_TASK_PERSONS: &str = "SELECT s.position, l.source, l.user_id FROM order_signers s \
                     JOIN logins l ON l.id = s.login_id WHERE s.order_id = $1";
const DELETE_ORDER_SIGNER: &str = "DELETE FROM order_signers WHERE order_id = $1 AND position = $2";
const SET_TASK_GROUP: &str =
    "UPDATE order_signers SET priority_group = $1 WHERE order_id = $2 AND position = $3";
const SET_ORDER_OPTIONS: &str = "UPDATE orders SET options = $1 WHERE order_id = $2";
const RECORD_ORDER_SIGNATURE: &str =
    "UPDATE orders SET document_blob = $1, document_size = $2, document_sha256 = $3, \
                     signatures = signatures + 1, revision = revision + 1, updated_at = $4, \
                     archive_expires_at = $7 WHERE order_id = $5 AND revision = $6";
const MARK_TASK_SIGNED: &str =
    "UPDATE order_signers SET status = 'SIGNED', action_at = $1 WHERE order_id = $2 AND position = $3";
const MARK_TASK_REJECTED: &str =
    "UPDATE order_signers SET status = 'REJECTED', action_at = $1, reject_reason = $2 \
                     WHERE order_id = $3 AND position = $4";
const SELECT_DUE_ORDERS: &str =
    "SELECT order_id FROM orders WHERE state = 'PENDING' AND due_at <= $1 ORDER BY due_at LIMIT $2";
const SELECT_DUE_ORDERS_SKIP_LOCKED: &str =
    "SELECT order_id FROM orders WHERE state = 'PENDING' AND due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED";
const SELECT_PENDING_ORDER_OF_LOGIN: &str =
    "SELECT 1 AS found FROM orders o WHERE o.state = 'PENDING' AND (o.solicitor_login = $1 \
                     OR EXISTS (SELECT 1 FROM order_signers s WHERE s.order_id = o.order_id AND s.login_id = $1 \
                     AND s.status IN ('PENDING', 'QUEUED'))) LIMIT 1";
const ANONYMIZE_LOGIN: &str =
    "UPDATE logins SET internal_id = $1, user_id = $2, first_name = NULL, last_name = NULL, \
                     mail = NULL, mobile = NULL, anonymized_at = $3, updated_at = $3 WHERE id = $4";
const ANONYMIZE_SOLICITOR: &str =
    "UPDATE orders SET solicitor_identifier = 'ANONYMIZED', solicitor_first_name = NULL, \
                     solicitor_last_name = NULL, solicitor_mail = NULL, solicitor_mobile = NULL \
                     WHERE solicitor_login = $1";
const ANONYMIZE_SIGNERS: &str =
    "UPDATE order_signers SET identifier = 'ANONYMIZED', first_name = NULL, last_name = NULL, \
                     mail = NULL, mobile = NULL WHERE login_id = $1";
const SELECT_TASKS: &str =
    "SELECT position, priority_group, status FROM order_signers WHERE order_id = $1 ORDER BY position";

/// The reference's event names.
pub mod event {
    pub const ORDER_CREATED: &str = "ORDER_CREATED";
    pub const ORDER_SIGNED: &str = "ORDER_SIGNED";
    pub const ORDER_ACCEPTED: &str = "ORDER_ACCEPTED";
    pub const ORDER_REJECTED: &str = "ORDER_REJECTED";
    pub const ORDER_CANCELED: &str = "ORDER_CANCELED";
    pub const ORDER_EXPIRED: &str = "ORDER_EXPIRED";
    pub const ORDER_DELETED: &str = "ORDER_DELETED";
    pub const ORDER_DUE_DATE_UPDATED: &str = "ORDER_DUE_DATE_UPDATED";
    pub const ORDER_DESCRIPTION_UPDATED: &str = "ORDER_DESCRIPTION_UPDATED";
    /// Not among the reference's names (it has no title change); additive.
    pub const ORDER_TITLE_UPDATED: &str = "ORDER_TITLE_UPDATED";
    pub const ORDER_DOCUMENT_UPDATED: &str = "ORDER_DOCUMENT_UPDATED";
    pub const ORDER_SIGNERS_UPDATED: &str = "ORDER_SIGNERS_UPDATED";
    pub const DOCUMENT_CREATED: &str = "DOCUMENT_CREATED";
    pub const DOCUMENT_DELETED: &str = "DOCUMENT_DELETED";
    pub const LOGIN_CREATED: &str = "LOGIN_CREATED";
    pub const USER_ANONYMIZED: &str = "USER_ANONYMIZED";
    /// A mail left for the SMTP server (written when the outbox marks it delivered).
    pub const SENDING_EMAIL: &str = "SENDING_EMAIL";
}

fn parse_source(raw: &str) -> StoreResult<PersonSource> {
    raw.parse()
        .map_err(|e| StoreError::Corrupt(format!("person source {raw:?}: {e}")))
}

fn parse_group(raw: i64) -> StoreResult<PriorityGroup> {
    PriorityGroup::new(raw).map_err(StoreError::Corrupt)
}

fn json_list(raw: &str, what: &str) -> StoreResult<Vec<serde_json::Value>> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn options_text(options: &[OrderOption]) -> String {
    serde_json::Value::Array(options.iter().map(OrderOption::to_json).collect()).to_string()
}

/// Appends one event; `actor` is the acting login's internal id when a person acted. An event
/// of an order also queues its webhooks (same transaction). Returns the event's id.
pub(crate) async fn insert_event(
    tx: &mut AnyConnection,
    name: &str,
    at: OffsetDateTime,
    actor: Option<&str>,
    order_id: Option<&OrderId>,
    details: serde_json::Value,
) -> StoreResult<i64> {
    let id: i64 = sqlx::query_scalar(INSERT_EVENT)
        .bind(name)
        .bind(to_unix(at))
        .bind(actor.map(str::to_owned))
        .bind(order_id.map(ToString::to_string))
        .bind(details.to_string())
        .fetch_one(&mut *tx)
        .await?;
    if let Some(order_id) = order_id {
        outbox::enqueue_webhooks(tx, id, name, at, actor, order_id, &details).await?;
    }
    Ok(id)
}

/// Finds or creates the login of a person; refreshes its attributes from the latest lookup.
/// Returns the login's row id and internal id.
async fn upsert_login(
    tx: &mut AnyConnection,
    person: &ResolvedPerson,
    now: OffsetDateTime,
    order_id: &OrderId,
) -> StoreResult<(String, String)> {
    let id = uuid::Uuid::new_v4().to_string();
    let internal_id = uuid::Uuid::new_v4().to_string();
    let a = &person.attributes;
    // ON CONFLICT DO NOTHING: two orders naming one new person at once both end with one login.
    let inserted = sqlx::query(INSERT_LOGIN)
        .bind(&id)
        .bind(&internal_id)
        .bind(person.source.as_str())
        .bind(&person.user_id)
        .bind(a.first_name.clone())
        .bind(a.last_name.clone())
        .bind(a.mail.clone())
        .bind(a.mobile.clone())
        .bind(to_unix(now))
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if inserted {
        insert_event(
            tx,
            event::LOGIN_CREATED,
            now,
            Some(&internal_id),
            Some(order_id),
            serde_json::json!({"source": person.source.as_str()}),
        )
        .await?;
        return Ok((id, internal_id));
    }
    let (id, internal_id): (String, String) = sqlx::query_as(SELECT_LOGIN_OF_PERSON)
        .bind(person.source.as_str())
        .bind(&person.user_id)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(REFRESH_LOGIN)
        .bind(a.first_name.clone())
        .bind(a.last_name.clone())
        .bind(a.mail.clone())
        .bind(a.mobile.clone())
        .bind(to_unix(now))
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    Ok((id, internal_id))
}

async fn insert_signer(
    tx: &mut AnyConnection,
    order_id: &OrderId,
    position: i64,
    signer: &NewOrderSigner,
    status: TaskStatus,
    now: OffsetDateTime,
) -> StoreResult<()> {
    let (login_id, _) = upsert_login(&mut *tx, &signer.person, now, order_id).await?;
    let a = &signer.person.attributes;
    sqlx::query(INSERT_ORDER_SIGNER)
        .bind(order_id.to_string())
        .bind(position)
        .bind(login_id)
        .bind(signer.person.source.as_str())
        .bind(&signer.person.identifier)
        .bind(a.first_name.clone())
        .bind(a.last_name.clone())
        .bind(a.mail.clone())
        .bind(a.mobile.clone())
        .bind(i64::from(signer.group.get()))
        .bind(status.as_str())
        .bind(&signer.link_nonce)
        .bind(&signer.token_hash)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// An order with its solicitor's current internal id (a macro so the locking variant below
/// stays a `const` literal).
macro_rules! select_order {
    () => {
        "SELECT o.order_id, o.title, o.description, o.state, o.link_type, o.tags, \
         o.options, o.solicitor_identifier, o.solicitor_first_name, o.solicitor_last_name, \
         o.solicitor_mail, o.solicitor_mobile, o.document_name, o.document_blob, o.document_size, \
         o.document_sha256, o.signatures, o.revision, o.due_at, o.created_at, o.updated_at, \
         l.internal_id AS solicitor_internal_id, l.source AS solicitor_source \
         FROM orders o JOIN logins l ON l.id = o.solicitor_login WHERE o.order_id = $1"
    };
}
const SELECT_ORDER: &str = select_order!();
/// [`SELECT_ORDER`] locking the order's row (PostgreSQL; SQLite's writer is alone already).
const SELECT_ORDER_FOR_UPDATE: &str = concat!(select_order!(), " FOR UPDATE OF o");

const SELECT_SIGNERS: &str =
    "SELECT s.position, s.source, s.identifier, s.first_name, s.last_name, \
     s.mail, s.mobile, s.priority_group, s.status, s.action_at, s.reject_reason, s.link_nonce, \
     l.internal_id FROM order_signers s JOIN logins l ON l.id = s.login_id \
     WHERE s.order_id = $1 ORDER BY s.position";

/// An order and all its signers in one statement, found through one signer's token hash; each
/// row carries the order's columns and one signer's, and `link_holder` marks the token's own.
const SELECT_ORDER_BY_TOKEN_HASH: &str =
    "SELECT o.order_id, o.title, o.description, o.state, o.link_type, o.tags, \
     o.options, o.solicitor_identifier, o.solicitor_first_name, o.solicitor_last_name, \
     o.solicitor_mail, o.solicitor_mobile, o.document_name, o.document_blob, o.document_size, \
     o.document_sha256, o.signatures, o.revision, o.due_at, o.created_at, o.updated_at, \
     l.internal_id AS solicitor_internal_id, l.source AS solicitor_source, \
     s.position, s.source, s.identifier, s.first_name, s.last_name, \
     s.mail, s.mobile, s.priority_group, s.status, s.action_at, s.reject_reason, s.link_nonce, \
     sl.internal_id, CAST(CASE WHEN s.token_hash = $1 THEN 1 ELSE 0 END AS BIGINT) AS link_holder \
     FROM orders o JOIN logins l ON l.id = o.solicitor_login \
     JOIN order_signers s ON s.order_id = o.order_id JOIN logins sl ON sl.id = s.login_id \
     WHERE o.order_id = (SELECT t.order_id FROM order_signers t WHERE t.token_hash = $1) \
     ORDER BY s.position";

/// The login to anonymize, by internal id or by person; the `FOR UPDATE` variants lock it
/// on PostgreSQL (SQLite's writer is alone already).
const SELECT_LOGIN_BY_INTERNAL_ID: &str =
    "SELECT id, internal_id, source FROM logins WHERE LOWER(internal_id) = LOWER($1)";
const SELECT_LOGIN_BY_INTERNAL_ID_FOR_UPDATE: &str =
    "SELECT id, internal_id, source FROM logins WHERE LOWER(internal_id) = LOWER($1) FOR UPDATE";
const SELECT_LOGIN_BY_PERSON: &str =
    "SELECT id, internal_id, source FROM logins WHERE source = $1 AND user_id = $2";
const SELECT_LOGIN_BY_PERSON_FOR_UPDATE: &str =
    "SELECT id, internal_id, source FROM logins WHERE source = $1 AND user_id = $2 FOR UPDATE";

const SELECT_ORDER_STATE: &str = "SELECT state FROM orders WHERE order_id = $1";

const SELECT_LOGIN: &str = "SELECT internal_id, source, user_id, first_name, last_name, mail, \
     mobile, anonymized_at FROM logins WHERE LOWER(internal_id) = LOWER($1)";

/// An `orders` row with its solicitor's login ([`SELECT_ORDER`]).
#[derive(sqlx::FromRow)]
struct OrderRow {
    order_id: String,
    title: String,
    description: Option<String>,
    state: String,
    link_type: i64,
    tags: String,
    options: String,
    solicitor_identifier: String,
    solicitor_first_name: Option<String>,
    solicitor_last_name: Option<String>,
    solicitor_mail: Option<String>,
    solicitor_mobile: Option<String>,
    document_name: String,
    document_blob: String,
    document_size: i64,
    document_sha256: String,
    signatures: i64,
    revision: i64,
    due_at: i64,
    created_at: i64,
    updated_at: i64,
    solicitor_internal_id: String,
    solicitor_source: String,
}

/// An `order_signers` row with its login's internal id ([`SELECT_SIGNERS`]).
#[derive(sqlx::FromRow)]
struct OrderSignerRow {
    position: i64,
    source: String,
    identifier: String,
    first_name: Option<String>,
    last_name: Option<String>,
    mail: Option<String>,
    mobile: Option<String>,
    priority_group: i64,
    status: String,
    action_at: Option<i64>,
    reject_reason: Option<String>,
    link_nonce: String,
    internal_id: String,
}

impl TryFrom<OrderSignerRow> for OrderSignerRecord {
    type Error = StoreError;

    fn try_from(row: OrderSignerRow) -> StoreResult<Self> {
        Ok(OrderSignerRecord {
            position: row.position,
            person: OrderPerson {
                internal_id: row.internal_id,
                source: parse_source(&row.source)?,
                identifier: row.identifier,
                attributes: PersonAttributes {
                    first_name: row.first_name,
                    last_name: row.last_name,
                    mail: row.mail,
                    mobile: row.mobile,
                },
            },
            group: parse_group(row.priority_group)?,
            status: row.status.parse().map_err(corrupt("signer status"))?,
            action_at: row.action_at.map(from_unix).transpose()?,
            reject_reason: row.reject_reason,
            link_nonce: row.link_nonce,
        })
    }
}

impl OrderRow {
    /// The order record, with its signers' rows.
    fn into_record(self, signers: Vec<OrderSignerRow>) -> StoreResult<OrderRecord> {
        let options = json_list(&self.options, "order options")?
            .iter()
            .map(OrderOption::from_json)
            .collect::<Result<Vec<_>, _>>()
            .map_err(corrupt("order option"))?;
        Ok(OrderRecord {
            order_id: OrderId::parse(&self.order_id).map_err(corrupt("order id"))?,
            title: self.title,
            description: self.description,
            state: self.state.parse().map_err(corrupt("order state"))?,
            link_type: LinkType::from_i64(self.link_type).map_err(corrupt("link type"))?,
            tags: json_list(&self.tags, "order tags")?,
            options,
            solicitor: OrderPerson {
                internal_id: self.solicitor_internal_id,
                source: parse_source(&self.solicitor_source)?,
                identifier: self.solicitor_identifier,
                attributes: PersonAttributes {
                    first_name: self.solicitor_first_name,
                    last_name: self.solicitor_last_name,
                    mail: self.solicitor_mail,
                    mobile: self.solicitor_mobile,
                },
            },
            document: OrderDocument {
                file_name: self.document_name,
                blob: parse_blob(Some(self.document_blob))?
                    .ok_or_else(|| StoreError::Corrupt("no document".into()))?,
                size: from_count(self.document_size)?,
                sha256: self
                    .document_sha256
                    .parse()
                    .map_err(corrupt("document sha256"))?,
            },
            signatures: u32::try_from(self.signatures)
                .map_err(|_| StoreError::Corrupt("signatures".into()))?,
            revision: self.revision,
            due_at: from_unix(self.due_at)?,
            created_at: from_unix(self.created_at)?,
            updated_at: from_unix(self.updated_at)?,
            signers: signers
                .into_iter()
                .map(OrderSignerRecord::try_from)
                .collect::<StoreResult<Vec<_>>>()?,
        })
    }
}

/// One row of [`SELECT_ORDER_BY_TOKEN_HASH`]: the order's columns and one signer's.
#[derive(sqlx::FromRow)]
struct OrderWithSignerRow {
    #[sqlx(flatten)]
    order: OrderRow,
    #[sqlx(flatten)]
    signer: OrderSignerRow,
    link_holder: i64,
}

/// A `logins` row ([`SELECT_LOGIN`]).
#[derive(sqlx::FromRow)]
struct LoginRow {
    internal_id: String,
    source: String,
    user_id: String,
    first_name: Option<String>,
    last_name: Option<String>,
    mail: Option<String>,
    mobile: Option<String>,
    anonymized_at: Option<i64>,
}

impl TryFrom<LoginRow> for LoginRecord {
    type Error = StoreError;

    fn try_from(row: LoginRow) -> StoreResult<Self> {
        Ok(LoginRecord {
            internal_id: row.internal_id,
            source: parse_source(&row.source)?,
            user_id: row.user_id,
            attributes: PersonAttributes {
                first_name: row.first_name,
                last_name: row.last_name,
                mail: row.mail,
                mobile: row.mobile,
            },
            anonymized: row.anonymized_at.is_some(),
        })
    }
}

/// Reads an order inside a transaction, locking its row where the database can (so concurrent
/// changes to one order queue up instead of deciding on stale state).
async fn order_for_update(
    dialect: Dialect,
    tx: &mut AnyConnection,
    order_id: &OrderId,
) -> StoreResult<Option<OrderRecord>> {
    let sql = match dialect {
        Dialect::Sqlite => SELECT_ORDER,
        Dialect::Postgres => SELECT_ORDER_FOR_UPDATE,
    };
    let Some(row) = sqlx::query_as::<_, OrderRow>(sql)
        .bind(order_id.to_string())
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(None);
    };
    let signers = sqlx::query_as::<_, OrderSignerRow>(SELECT_SIGNERS)
        .bind(order_id.to_string())
        .fetch_all(&mut *tx)
        .await?;
    row.into_record(signers).map(Some)
}

/// Writes each task's (possibly changed) waiting status back; a task that became PENDING (its
/// priority group opened) gets its invitation queued.
async fn save_task_statuses(
    tx: &mut AnyConnection,
    order_id: &OrderId,
    positions: &[i64],
    tasks: &[Task],
    now: OffsetDateTime,
) -> StoreResult<()> {
    for (position, task) in positions.iter().zip(tasks) {
        let changed = sqlx::query(SAVE_TASK_STATUS)
            .bind(task.status.as_str())
            .bind(order_id.to_string())
            .bind(*position)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if changed && task.status == TaskStatus::Pending {
            outbox::enqueue_invitation(tx, order_id, *position, false, now).await?;
        }
    }
    Ok(())
}

/// Moves a PENDING order to a final state, with its event.
async fn finish_order(
    tx: &mut AnyConnection,
    order_id: &OrderId,
    to: OrderState,
    now: OffsetDateTime,
    actor: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(FINISH_ORDER)
        .bind(to.as_str())
        .bind(to_unix(now))
        .bind(order_id.to_string())
        .execute(&mut *tx)
        .await?;
    let name = match to {
        OrderState::Accepted => event::ORDER_ACCEPTED,
        OrderState::Rejected => event::ORDER_REJECTED,
        OrderState::Cancelled => event::ORDER_CANCELED,
        OrderState::Expired => event::ORDER_EXPIRED,
        OrderState::Pending => return Err(StoreError::Corrupt("finishing into PENDING".into())),
    };
    let event_id =
        insert_event(tx, name, now, actor, Some(order_id), serde_json::json!({})).await?;
    outbox::enqueue_outcome(tx, order_id, event_id, to, now).await
}

#[async_trait]
impl OrderStore for SqlStore {
    async fn create_order(&self, order: &NewOrder, now: OffsetDateTime) -> StoreResult<()> {
        let order = order.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let id = order.order_id;
                let (solicitor_login, solicitor_internal) =
                    upsert_login(&mut *tx, &order.solicitor, now, &id).await?;
                let a = &order.solicitor.attributes;
                sqlx::query(
                    INSERT_ORDER,
                )
                .bind(id.to_string())
                .bind(&order.title)
                .bind(order.description.clone())
                .bind(order.link_type.as_i64())
                .bind(serde_json::Value::Array(order.tags.clone()).to_string())
                .bind(options_text(&order.options))
                .bind(solicitor_login)
                .bind(&order.solicitor.identifier)
                .bind(a.first_name.clone())
                .bind(a.last_name.clone())
                .bind(a.mail.clone())
                .bind(a.mobile.clone())
                .bind(&order.document.file_name)
                .bind(order.document.blob.as_str())
                .bind(to_count(order.document.size)?)
                .bind(order.document.sha256.to_string())
                .bind(to_unix(order.due_at))
                .bind(to_unix(now))
                .execute(&mut *tx)
                .await?;
                let mut tasks: Vec<Task> = order
                    .signers
                    .iter()
                    .map(|s| Task { group: s.group, status: TaskStatus::Queued })
                    .collect();
                settle(&mut tasks);
                let notify_all = order.options.iter().any(|o| matches!(o, OrderOption::NotifyAllSigners(true)));
                for (position, (signer, task)) in order.signers.iter().zip(&tasks).enumerate() {
                    let position = i64::try_from(position).map_err(|_| StoreError::Corrupt("position".into()))?;
                    insert_signer(&mut *tx, &id, position, signer, task.status, now).await?;
                    let pending = task.status == TaskStatus::Pending;
                    if pending || notify_all {
                        outbox::enqueue_invitation(&mut *tx, &id, position, !pending, now).await?;
                    }
                }
                insert_event(
                    &mut *tx,
                    event::ORDER_CREATED,
                    now,
                    Some(&solicitor_internal),
                    Some(&id),
                    serde_json::json!({"title": order.title, "signers": order.signers.len()}),
                )
                .await?;
                insert_event(
                    &mut *tx,
                    event::DOCUMENT_CREATED,
                    now,
                    Some(&solicitor_internal),
                    Some(&id),
                    serde_json::json!({"fileName": order.document.file_name, "sha256": order.document.sha256.to_string()}),
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn find_order(&self, order_id: &OrderId) -> StoreResult<Option<OrderRecord>> {
        let Some(row) = sqlx::query_as::<_, OrderRow>(SELECT_ORDER)
            .bind(order_id.to_string())
            .fetch_optional(&self.reader)
            .await?
        else {
            return Ok(None);
        };
        let signers = sqlx::query_as::<_, OrderSignerRow>(SELECT_SIGNERS)
            .bind(order_id.to_string())
            .fetch_all(&self.reader)
            .await?;
        row.into_record(signers).map(Some)
    }

    async fn order_state(&self, order_id: &OrderId) -> StoreResult<Option<OrderState>> {
        let state: Option<String> = sqlx::query_scalar(SELECT_ORDER_STATE)
            .bind(order_id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        state
            .map(|state| state.parse().map_err(corrupt("order state")))
            .transpose()
    }

    async fn delete_order(
        &self,
        order_id: &OrderId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<OrderDocument>> {
        let (dialect, order_id) = (self.dialect, *order_id);
        self.write(move |tx| {
            Box::pin(async move {
                let Some(order) = order_for_update(dialect, &mut *tx, &order_id).await? else {
                    return Ok(None);
                };
                sqlx::query(DELETE_ORDER_SIGNERS)
                    .bind(order_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(DELETE_ORDER)
                    .bind(order_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                let details = serde_json::json!({"state": order.state.as_str()});
                insert_event(
                    &mut *tx,
                    event::DOCUMENT_DELETED,
                    now,
                    None,
                    Some(&order_id),
                    details.clone(),
                )
                .await?;
                insert_event(
                    &mut *tx,
                    event::ORDER_DELETED,
                    now,
                    None,
                    Some(&order_id),
                    details,
                )
                .await?;
                Ok(Some(order.document))
            })
        })
        .await
    }

    async fn update_order(
        &self,
        order_id: &OrderId,
        update: &OrderUpdate,
        now: OffsetDateTime,
    ) -> StoreResult<OrderChange> {
        let (dialect, order_id, update) = (self.dialect, *order_id, update.clone());
        self.write(move |tx| {
            Box::pin(async move {
                let Some(order) = order_for_update(dialect, &mut *tx, &order_id).await? else {
                    return Ok(OrderChange::NotFound);
                };
                let request = UpdateRequest {
                    new_document: update.document.is_some(),
                    cancel: update.cancel,
                };
                let plan = match plan_update(order.state, order.signatures, request) {
                    Ok(plan) => plan,
                    Err(refusal) => return Ok(OrderChange::Illegal(refusal)),
                };
                let mut superseded = Vec::new();
                if let Some(document) = update.document.as_ref().filter(|_| plan.replace_document) {
                    sqlx::query(
                        REPLACE_ORDER_DOCUMENT,
                    )
                    .bind(&document.file_name)
                    .bind(document.blob.as_str())
                    .bind(to_count(document.size)?)
                    .bind(document.sha256.to_string())
                    .bind(to_unix(now))
                    .bind(order_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                    superseded.push(order.document.blob.clone());
                    insert_event(&mut *tx, event::ORDER_DOCUMENT_UPDATED, now, None, Some(&order_id),
                        serde_json::json!({"fileName": document.file_name, "sha256": document.sha256.to_string()})).await?;
                }
                if let Some(title) = &update.title {
                    sqlx::query(SET_ORDER_TITLE)
                        .bind(title)
                        .bind(to_unix(now))
                        .bind(order_id.to_string())
                        .execute(&mut *tx)
                        .await?;
                    insert_event(&mut *tx, event::ORDER_TITLE_UPDATED, now, None, Some(&order_id), serde_json::json!({})).await?;
                }
                if let Some(description) = &update.description {
                    sqlx::query(SET_ORDER_DESCRIPTION)
                        .bind(description)
                        .bind(to_unix(now))
                        .bind(order_id.to_string())
                        .execute(&mut *tx)
                        .await?;
                    insert_event(&mut *tx, event::ORDER_DESCRIPTION_UPDATED, now, None, Some(&order_id), serde_json::json!({})).await?;
                }
                if let Some(due_at) = update.due_at {
                    sqlx::query(SET_ORDER_DUE_AT)
                        .bind(to_unix(due_at))
                        .bind(to_unix(now))
                        .bind(order_id.to_string())
                        .execute(&mut *tx)
                        .await?;
                    insert_event(&mut *tx, event::ORDER_DUE_DATE_UPDATED, now, None, Some(&order_id),
                        serde_json::json!({"dueDate": to_unix(due_at)})).await?;
                }
                if let Some(to) = plan.finish {
                    finish_order(&mut *tx, &order_id, to, now, Some(&order.solicitor.internal_id)).await?;
                }
                Ok(OrderChange::Applied { superseded })
            })
        })
        .await
    }

    async fn replace_order_signers(
        &self,
        order_id: &OrderId,
        signers: &[NewOrderSigner],
        options: Option<&[OrderOption]>,
        now: OffsetDateTime,
    ) -> StoreResult<OrderChange> {
        let (dialect, order_id, signers) = (self.dialect, *order_id, signers.to_vec());
        let options = options.map(options_text);
        self.write(move |tx| {
            Box::pin(async move {
                let Some(order) = order_for_update(dialect, &mut *tx, &order_id).await? else {
                    return Ok(OrderChange::NotFound);
                };
                // Match the new list to the present tasks by person (source + login).
                let logins = sqlx::query_as::<_, (i64, String, String)>(SELECT_TASK_PERSONS)
                    .bind(order_id.to_string())
                    .fetch_all(&mut *tx)
                    .await?;
                let mut current = Vec::with_capacity(logins.len());
                for (position, source, user_id) in logins {
                    let task = order
                        .signers
                        .iter()
                        .find(|s| s.position == position)
                        .ok_or_else(|| {
                            StoreError::Corrupt("a task without its order row".into())
                        })?;
                    current.push(CurrentTask {
                        position,
                        person: PersonKey {
                            source: parse_source(&source)?,
                            user_id,
                        },
                        identifier: task.person.identifier.clone(),
                        task: Task {
                            group: task.group,
                            status: task.status,
                        },
                    });
                }
                let requested: Vec<RequestedSigner> = signers
                    .iter()
                    .map(|s| RequestedSigner {
                        person: PersonKey {
                            source: s.person.source,
                            user_id: s.person.user_id.clone(),
                        },
                        group: s.group,
                    })
                    .collect();
                let plan = match plan_signers(order.state, &current, &requested) {
                    Ok(plan) => plan,
                    Err(refusal) => return Ok(OrderChange::Illegal(refusal)),
                };
                for position in &plan.remove {
                    sqlx::query(DELETE_ORDER_SIGNER)
                        .bind(order_id.to_string())
                        .bind(*position)
                        .execute(&mut *tx)
                        .await?;
                }
                for (position, group) in &plan.regroup {
                    sqlx::query(SET_TASK_GROUP)
                        .bind(i64::from(group.get()))
                        .bind(order_id.to_string())
                        .bind(*position)
                        .execute(&mut *tx)
                        .await?;
                }
                for (position, index) in &plan.add {
                    insert_signer(
                        &mut *tx,
                        &order_id,
                        *position,
                        &signers[*index],
                        TaskStatus::Queued,
                        now,
                    )
                    .await?;
                }
                if let Some(options) = &options {
                    sqlx::query(SET_ORDER_OPTIONS)
                        .bind(options)
                        .bind(order_id.to_string())
                        .execute(&mut *tx)
                        .await?;
                }
                let outcome = resettle(&mut *tx, &order_id, now).await?;
                insert_event(
                    &mut *tx,
                    event::ORDER_SIGNERS_UPDATED,
                    now,
                    None,
                    Some(&order_id),
                    serde_json::json!({"added": plan.add.len(), "removed": plan.remove.len()}),
                )
                .await?;
                if let Some(to) = outcome.final_state() {
                    finish_order(&mut *tx, &order_id, to, now, None).await?;
                }
                Ok(OrderChange::Applied {
                    superseded: Vec::new(),
                })
            })
        })
        .await
    }

    async fn record_order_signature(
        &self,
        order_id: &OrderId,
        signature: &RecordedSignature,
        now: OffsetDateTime,
    ) -> StoreResult<SignatureOutcome> {
        let (dialect, order_id, signature) = (self.dialect, *order_id, signature.clone());
        self.write(move |tx| {
            Box::pin(async move {
                let Some(order) = order_for_update(dialect, &mut *tx, &order_id).await? else {
                    return Ok(SignatureOutcome::NotFound);
                };
                let Some(task) = order.signers.iter().find(|s| s.position == signature.position) else {
                    return Ok(SignatureOutcome::NotFound);
                };
                match check_signature(order.state, task.status, order.revision, signature.based_on_revision) {
                    Ok(SignatureCheck::Apply) => {}
                    Ok(SignatureCheck::Stale) => return Ok(SignatureOutcome::Stale),
                    Err(refusal) => return Ok(SignatureOutcome::Illegal(refusal)),
                }
                let d = &signature.document;
                sqlx::query(
                    RECORD_ORDER_SIGNATURE,
                )
                .bind(d.blob.as_str())
                .bind(to_count(d.size)?)
                .bind(d.sha256.to_string())
                .bind(to_unix(now))
                .bind(order_id.to_string())
                .bind(signature.based_on_revision)
                .bind(signature.archive_expires_at.map(to_unix))
                .execute(&mut *tx)
                .await?;
                sqlx::query(MARK_TASK_SIGNED)
                    .bind(to_unix(now))
                    .bind(order_id.to_string())
                    .bind(signature.position)
                    .execute(&mut *tx)
                    .await?;
                insert_event(&mut *tx, event::ORDER_SIGNED, now, Some(&task.person.internal_id), Some(&order_id),
                    serde_json::json!({"signatures": order.signatures + 1, "sha256": d.sha256.to_string()})).await?;
                let outcome = resettle(&mut *tx, &order_id, now).await?;
                let state = match outcome.final_state() {
                    Some(to) => {
                        finish_order(&mut *tx, &order_id, to, now, None).await?;
                        to
                    }
                    None => OrderState::Pending,
                };
                Ok(SignatureOutcome::Recorded { state, superseded: vec![order.document.blob] })
            })
        })
        .await
    }

    async fn reject_order(
        &self,
        order_id: &OrderId,
        position: i64,
        reason: Option<&str>,
        now: OffsetDateTime,
    ) -> StoreResult<SignatureOutcome> {
        let (dialect, order_id, reason) = (self.dialect, *order_id, reason.map(str::to_owned));
        self.write(move |tx| {
            Box::pin(async move {
                let Some(order) = order_for_update(dialect, &mut *tx, &order_id).await? else {
                    return Ok(SignatureOutcome::NotFound);
                };
                let Some(task) = order.signers.iter().find(|s| s.position == position) else {
                    return Ok(SignatureOutcome::NotFound);
                };
                let to = match plan_rejection(order.state, task.status) {
                    Ok(to) => to,
                    Err(refusal) => return Ok(SignatureOutcome::Illegal(refusal)),
                };
                sqlx::query(MARK_TASK_REJECTED)
                    .bind(to_unix(now))
                    .bind(reason.clone())
                    .bind(order_id.to_string())
                    .bind(position)
                    .execute(&mut *tx)
                    .await?;
                finish_order(&mut *tx, &order_id, to, now, Some(&task.person.internal_id)).await?;
                Ok(SignatureOutcome::Recorded {
                    state: to,
                    superseded: Vec::new(),
                })
            })
        })
        .await
    }

    async fn expire_due_orders(
        &self,
        now: OffsetDateTime,
        limit: i64,
    ) -> StoreResult<Vec<OrderId>> {
        let dialect = self.dialect;
        self.write(move |tx| {
            Box::pin(async move {
                // PostgreSQL: orders another replica is expiring are skipped, not waited for;
                // once it commits they are no longer PENDING, so each expires exactly once.
                let sql = match dialect {
                    Dialect::Sqlite => SELECT_DUE_ORDERS,
                    Dialect::Postgres => SELECT_DUE_ORDERS_SKIP_LOCKED,
                };
                let ids: Vec<String> = sqlx::query_scalar(sql)
                    .bind(to_unix(now))
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut expired = Vec::with_capacity(ids.len());
                for id in ids {
                    let id = OrderId::parse(&id).map_err(corrupt("order id"))?;
                    finish_order(&mut *tx, &id, OrderState::Expired, now, None).await?;
                    expired.push(id);
                }
                Ok(expired)
            })
        })
        .await
    }

    async fn anonymize(
        &self,
        target: &AnonymizeTarget,
        now: OffsetDateTime,
    ) -> StoreResult<AnonymizeOutcome> {
        let (dialect, target) = (self.dialect, target.clone());
        self.write(move |tx| {
            Box::pin(async move {
                let (by_internal_id, by_person) = match dialect {
                    Dialect::Sqlite => (SELECT_LOGIN_BY_INTERNAL_ID, SELECT_LOGIN_BY_PERSON),
                    Dialect::Postgres => (
                        SELECT_LOGIN_BY_INTERNAL_ID_FOR_UPDATE,
                        SELECT_LOGIN_BY_PERSON_FOR_UPDATE,
                    ),
                };
                let row = match &target {
                    AnonymizeTarget::InternalId(internal) => {
                        sqlx::query_as::<_, (String, String, String)>(by_internal_id)
                            .bind(internal.clone())
                            .fetch_optional(&mut *tx)
                            .await?
                    }
                    AnonymizeTarget::Person { source, user_id } => {
                        sqlx::query_as::<_, (String, String, String)>(by_person)
                            .bind(source.as_str())
                            .bind(user_id.clone())
                            .fetch_optional(&mut *tx)
                            .await?
                    }
                };
                let Some(row) = row else {
                    return Ok(AnonymizeOutcome::NotFound);
                };
                let (login, old_internal, _source) = row;
                let pending = sqlx::query(SELECT_PENDING_ORDER_OF_LOGIN)
                    .bind(&login)
                    .fetch_optional(&mut *tx)
                    .await?;
                if pending.is_some() {
                    return Ok(AnonymizeOutcome::HasPendingOrders);
                }
                let new_internal = uuid::Uuid::new_v4().to_string();
                // The person's id in its source (a personal number, a user name) is personal data
                // too: it goes with the rest, so the same person later gets a fresh login.
                sqlx::query(ANONYMIZE_LOGIN)
                    .bind(&new_internal)
                    .bind(format!("anonymized:{}", uuid::Uuid::new_v4().simple()))
                    .bind(to_unix(now))
                    .bind(&login)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(ANONYMIZE_SOLICITOR)
                    .bind(&login)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(ANONYMIZE_SIGNERS)
                    .bind(&login)
                    .execute(&mut *tx)
                    .await?;
                insert_event(
                    &mut *tx,
                    event::USER_ANONYMIZED,
                    now,
                    Some(&new_internal),
                    None,
                    serde_json::json!({"previousInternalId": old_internal}),
                )
                .await?;
                Ok(AnonymizeOutcome::Done {
                    internal_id: new_internal,
                })
            })
        })
        .await
    }

    /// The order whose signer holds this link, with that signer's position, in one query: the
    /// order's columns and every signer's, joined (their column names do not overlap), so a
    /// signer page costs one read, and an unknown token costs the same read as a known one.
    async fn find_order_by_token_hash(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(OrderRecord, i64)>> {
        let rows = sqlx::query_as::<_, OrderWithSignerRow>(SELECT_ORDER_BY_TOKEN_HASH)
            .bind(token_hash)
            .fetch_all(&self.reader)
            .await?;
        let Some(position) = rows
            .iter()
            .rfind(|row| row.link_holder != 0)
            .map(|row| row.signer.position)
        else {
            return Ok(None);
        };
        let mut order = None;
        let mut signers = Vec::with_capacity(rows.len());
        for row in rows {
            order.get_or_insert(row.order);
            signers.push(row.signer);
        }
        let Some(order) = order else {
            return Ok(None);
        };
        Ok(Some((order.into_record(signers)?, position)))
    }

    async fn find_login(&self, internal_id: &str) -> StoreResult<Option<LoginRecord>> {
        sqlx::query_as::<_, LoginRow>(SELECT_LOGIN)
            .bind(internal_id)
            .fetch_optional(&self.reader)
            .await?
            .map(LoginRecord::try_from)
            .transpose()
    }
}

/// Re-reads the order's tasks, settles the plan and writes the waiting statuses back.
async fn resettle(
    tx: &mut AnyConnection,
    order_id: &OrderId,
    now: OffsetDateTime,
) -> StoreResult<PlanOutcome> {
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(SELECT_TASKS)
        .bind(order_id.to_string())
        .fetch_all(&mut *tx)
        .await?;
    let mut positions = Vec::with_capacity(rows.len());
    let mut tasks = Vec::with_capacity(rows.len());
    for (position, group, status) in rows {
        positions.push(position);
        tasks.push(Task {
            group: parse_group(group)?,
            status: status.parse().map_err(corrupt("signer status"))?,
        });
    }
    let outcome = settle(&mut tasks);
    save_task_statuses(&mut *tx, order_id, &positions, &tasks, now).await?;
    Ok(outcome)
}
