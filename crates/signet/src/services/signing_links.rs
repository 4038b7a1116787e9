//! Signing links: each signer's link carries a token derived from a server key (HMAC of the
//! order id and a random nonce), so the store keeps only the token's SHA-256 and the order can
//! still show the link. Tokens are 256 bits.

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::path::Path;

use crate::domain::OrderId;

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

impl LinkKey {
    /// A MAC of `message` under a key derived for `purpose` (CSRF tokens, signer sessions):
    /// one secret on disk, a separate key per use, so a value minted for one use never passes
    /// for another.
    pub fn mac(&self, purpose: &str, message: &[u8]) -> [u8; 32] {
        let mut derive =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        derive.update(b"signet derived key/");
        derive.update(purpose.as_bytes());
        let subkey = derive.finalize().into_bytes();
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&subkey).expect("HMAC takes any key length");
        mac.update(message);
        mac.finalize().into_bytes().into()
    }
}
