//! A signer's one-time code (signer authentication `email-otp`) in SQL: only the code's hash is
//! kept, with its expiry and the number of attempts spent. Each statement is atomic on its own;
//! an attempt is counted before the code is compared, so parallel guesses cannot outrun the
//! limit.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{to_unix, SqlStore};
use crate::domain::OrderId;
use crate::store::signer_access::SignerAccessStore;
use crate::store::StoreResult;

const SET_OTP: &str =
    "UPDATE order_signers SET otp_hash = $3, otp_expires_at = $4, otp_attempts = 0 \
     WHERE order_id = $1 AND position = $2";

/// Counts one attempt on a live code that has attempts left, and hands back its hash.
const SPEND_ATTEMPT: &str = "UPDATE order_signers SET otp_attempts = otp_attempts + 1 \
     WHERE order_id = $1 AND position = $2 AND otp_hash IS NOT NULL \
       AND otp_expires_at > $3 AND otp_attempts < $4 \
     RETURNING otp_hash";

const CLEAR_OTP: &str = "UPDATE order_signers SET otp_hash = NULL, otp_expires_at = NULL \
     WHERE order_id = $1 AND position = $2";

#[async_trait]
impl SignerAccessStore for SqlStore {
    async fn set_signer_otp(
        &self,
        order_id: &OrderId,
        position: i64,
        otp_hash: &str,
        expires_at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let (order_id, otp_hash) = (order_id.to_string(), otp_hash.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                let result = sqlx::query(SET_OTP)
                    .bind(order_id)
                    .bind(position)
                    .bind(otp_hash)
                    .bind(to_unix(expires_at))
                    .execute(&mut *tx)
                    .await?;
                Ok(result.rows_affected() == 1)
            })
        })
        .await
    }

    async fn spend_signer_otp_attempt(
        &self,
        order_id: &OrderId,
        position: i64,
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> StoreResult<Option<String>> {
        let order_id = order_id.to_string();
        // The attempt is committed before the code is compared (the answer waits for it).
        self.write(move |tx| {
            Box::pin(async move {
                let hash: Option<String> = sqlx::query_scalar(SPEND_ATTEMPT)
                    .bind(order_id)
                    .bind(position)
                    .bind(to_unix(now))
                    .bind(i64::from(max_attempts))
                    .fetch_optional(&mut *tx)
                    .await?;
                Ok(hash)
            })
        })
        .await
    }

    async fn clear_signer_otp(&self, order_id: &OrderId, position: i64) -> StoreResult<()> {
        let order_id = order_id.to_string();
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(CLEAR_OTP)
                    .bind(order_id)
                    .bind(position)
                    .execute(&mut *tx)
                    .await?;
                Ok(())
            })
        })
        .await
    }
}
