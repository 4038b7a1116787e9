//! Which blob keys rows still name, for the orphan sweep. Each key carries its document's or
//! order's id, so the question is a primary-key lookup per batch, not a scan of every row.

use sqlx::Row;
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
        for (ids, statement, columns) in [
            (
                documents,
                SELECT_DOCUMENT_BLOBS_IN,
                &["prepared_blob", "signed_blob"][..],
            ),
            (orders, SELECT_ORDER_BLOBS_IN, &["document_blob"][..]),
        ] {
            let mut ids = ids;
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() {
                continue;
            }
            let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
            let sql = format!("{statement}({})", placeholders.join(", "));
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in ids {
                query = query.bind(id);
            }
            for row in query.fetch_all(&self.reader).await? {
                for column in columns {
                    if let Some(key) = row.try_get::<Option<String>, _>(*column)? {
                        named.insert(key);
                    }
                }
            }
        }
        referenced.extend(keys.iter().filter(|k| named.contains(k.as_str())).cloned());
        Ok(referenced)
    }
}
