//! API keys: random bearer secrets handed to client applications; only their SHA-256 is stored.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::store::{ApiKeyStore, StoreResult};

/// Prefix that makes a leaked key recognisable to secret scanners.
const KEY_PREFIX: &str = "sgn_";

/// The hash under which a key is stored and looked up.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Creates a new key, stores its hash and returns the key itself (shown once, never again).
pub async fn create_api_key(store: &dyn ApiKeyStore, now: OffsetDateTime) -> StoreResult<String> {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let id = uuid::Uuid::new_v4().to_string();
    store.insert_api_key(&id, &hash_api_key(&key), now).await?;
    crate::telemetry::audit::api_key_created(&id);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_hex_sha256() {
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
