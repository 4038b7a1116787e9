//! Which blob keys rows still name, for the orphan sweep. Each key carries its document's or
//! order's id, so the question is a primary-key lookup per batch, not a scan of every row.

use std::collections::HashSet;

use super::SqlStore;
use crate::store::blobs::{BlobKey, BlobOwner};
use crate::store::StoreResult;

/// The blob columns of the documents whose ids follow, as `($1, $2, …)` (one placeholder per id,
/// appended where the batch is known).
const SELECT_DOCUMENT_BLOBS_IN: &str =
    "SELECT prepared_blob, signed_blob FROM documents WHERE document_id IN ";
/// The blob column of the orders whose ids follow, as [`SELECT_DOCUMENT_BLOBS_IN`].
const SELECT_ORDER_BLOBS_IN: &str = "SELECT document_blob FROM orders WHERE order_id IN ";

impl SqlStore {
    pub(crate) async fn referenced_blobs_sql(
        &self,
        keys: &[BlobKey],
    ) -> StoreResult<HashSet<BlobKey>> {
        let mut documents = Vec::new();
        let mut orders = Vec::new();
        // Keys whose owner cannot be told are reported as named: never removed.
        let mut referenced = HashSet::new();
        for key in keys {
            match key.owner() {
                Some(BlobOwner::Document(id)) => documents.push(id.to_string()),
                Some(BlobOwner::Order(id)) => orders.push(id.to_string()),
                None => {
                    referenced.insert(key.clone());
                }
            }
        }
        let mut named: HashSet<String> = HashSet::new();
        if let Some(statement) = with_placeholders(SELECT_DOCUMENT_BLOBS_IN, &mut documents) {
            let mut query = sqlx::query_as::<_, (Option<String>, Option<String>)>(
                sqlx::AssertSqlSafe(statement),
            );
            for id in documents {
                query = query.bind(id);
            }
            for (prepared, signed) in query.fetch_all(&self.reader).await? {
                named.extend(prepared);
                named.extend(signed);
            }
        }
        if let Some(statement) = with_placeholders(SELECT_ORDER_BLOBS_IN, &mut orders) {
            let mut query = sqlx::query_scalar::<_, Option<String>>(sqlx::AssertSqlSafe(statement));
            for id in orders {
                query = query.bind(id);
            }
            named.extend(query.fetch_all(&self.reader).await?.into_iter().flatten());
        }
        referenced.extend(keys.iter().filter(|k| named.contains(k.as_str())).cloned());
        Ok(referenced)
    }
}

/// `statement` followed by `($1, $2, …)`, one placeholder per distinct id (sorted and
/// de-duplicated in place); `None` when there is no id.
fn with_placeholders(statement: &str, ids: &mut Vec<String>) -> Option<String> {
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return None;
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
    Some(format!("{statement}({})", placeholders.join(", ")))
}
