//! A signer's one-time code (signer authentication `email-otp`) as the store keeps it: only the
//! code's hash, its expiry and the attempts spent, behind the [`SignerAccessStore`] trait the
//! signer pages' authentication needs.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;
use crate::domain::OrderId;

/// One-time codes of order signers.
#[async_trait]
pub trait SignerAccessStore: Send + Sync {
    /// Stores a fresh one-time code for a task (its hash and expiry; attempts back to zero).
    /// False when there is no such task.
    async fn set_signer_otp(
        &self,
        order_id: &OrderId,
        position: i64,
        otp_hash: &str,
        expires_at: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Spends one attempt on the task's code and returns its hash, or `None` when there is no
    /// live code with attempts left (none sent, expired, or `max_attempts` spent).
    async fn spend_signer_otp_attempt(
        &self,
        order_id: &OrderId,
        position: i64,
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> StoreResult<Option<String>>;
    /// Forgets the task's code (it was used).
    async fn clear_signer_otp(&self, order_id: &OrderId, position: i64) -> StoreResult<()>;
}
