//! Signer authentication `email-otp`: before a signer may sign or reject, a 6-digit code is
//! mailed to them; Signet keeps only a MAC of it (a key derived from the link key), valid ten
//! minutes and for five attempts, counted before each comparison. A right code opens a session
//! for the link: a signed cookie value, bound to the link's token, that expires. With `link`
//! (the default) the link alone is enough. An order's option `signerAuthentication` overrides
//! the server's setting.

use async_trait::async_trait;
use rand::Rng;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use super::orders::{OrderService, SignerAccess};
use super::signing_links::token_hash;
use crate::clock::Clock;
use crate::domain::order::SignerAuth;
use crate::domain::OrderOption;
use crate::store::orders::OrderRecord;
use crate::store::{SignerAccessStore, StoreError};

/// How long a mailed code is good for.
pub const CODE_LIFETIME: Duration = Duration::minutes(10);
/// Wrong codes allowed before the code is dead and a new one must be asked for.
pub const MAX_ATTEMPTS: u32 = 5;
/// How long a right code lets the signer act through their link.
pub const SESSION_LIFETIME: Duration = Duration::minutes(30);

/// Sends a signer their code. The pages call this; the SMTP implementation is below.
#[async_trait]
pub trait CodeSender: Send + Sync {
    async fn send_code(&self, to: &str, subject: &str, text: &str) -> Result<(), SendError>;
}

/// Why a code was not sent. No address or server text inside (they may name the recipient).
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the recipient is not a mail address")]
    Recipient,
    #[error("the message could not be built")]
    Build,
    #[error("the SMTP exchange failed")]
    Smtp,
}

/// Codes go out through Signet's one mailer: a message per code, the text in both parts.
#[async_trait]
impl CodeSender for crate::mail::Mailer {
    async fn send_code(&self, to: &str, subject: &str, text: &str) -> Result<(), SendError> {
        let html = format!(
            "<!DOCTYPE html><html><body><pre style=\"font-family:inherit\">{}</pre></body></html>",
            crate::mail::templates::escape(text)
        );
        let message = crate::mail::MailMessage {
            to: to.to_owned(),
            subject: subject.to_owned(),
            text: text.to_owned(),
            html,
        };
        self.send(message).await.map_err(|error| match error {
            crate::mail::MailError::Recipient => SendError::Recipient,
            crate::mail::MailError::Build(_) => SendError::Build,
            _ => SendError::Smtp,
        })
    }
}

/// Why a code could not be sent or checked.
#[derive(Debug, thiserror::Error)]
pub enum OtpError {
    #[error("no SMTP server is configured")]
    NoSender,
    #[error("the signer has no e-mail address")]
    NoAddress,
    #[error(transparent)]
    Send(#[from] SendError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What checking a code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    Accepted,
    /// Wrong; attempts remain.
    Wrong,
    /// No code to check: none sent, expired, or its attempts are spent.
    Dead,
}

/// The words of the code's mail in one language.
pub struct CodeMail<'a> {
    pub subject: &'a str,
    /// With `{code}` and `{title}` to fill in.
    pub text: &'a str,
}

pub struct SignerAuthService {
    store: Arc<dyn SignerAccessStore>,
    clock: Arc<dyn Clock>,
    orders: Arc<OrderService>,
    sender: Option<Arc<dyn CodeSender>>,
    default: SignerAuth,
}

impl SignerAuthService {
    pub fn new(
        store: Arc<dyn SignerAccessStore>,
        clock: Arc<dyn Clock>,
        orders: Arc<OrderService>,
        sender: Option<Arc<dyn CodeSender>>,
        default: SignerAuth,
    ) -> Self {
        Self {
            store,
            clock,
            orders,
            sender,
            default,
        }
    }

    /// The order's own choice, else the server's.
    pub fn mode_for(&self, order: &OrderRecord) -> SignerAuth {
        order
            .options
            .iter()
            .find_map(|o| match o {
                OrderOption::SignerAuthentication(auth) => Some(*auth),
                _ => None,
            })
            .unwrap_or(self.default)
    }

    fn code_mac(&self, token: &str, code: &str) -> String {
        let message = format!("{}/{code}", token_hash(token));
        hex::encode(self.orders.link_mac("otp", message.as_bytes()))
    }

    /// Makes a fresh code for the link's task, stores its MAC and mails it to the signer.
    pub async fn send_code(
        &self,
        access: &SignerAccess,
        token: &str,
        mail: CodeMail<'_>,
    ) -> Result<(), OtpError> {
        let sender = self.sender.as_ref().ok_or(OtpError::NoSender)?;
        let to = access
            .task()
            .person
            .attributes
            .mail
            .clone()
            .filter(|m| m.contains('@'))
            .ok_or(OtpError::NoAddress)?;
        let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000u32));
        let expires_at = self.clock.now() + CODE_LIFETIME;
        self.store
            .set_signer_otp(
                &access.order.order_id,
                access.position,
                &self.code_mac(token, &code),
                expires_at,
            )
            .await?;
        let text = mail
            .text
            .replace("{code}", &code)
            .replace("{title}", &access.order.title);
        sender.send_code(&to, mail.subject, &text).await?;
        tracing::info!(order.id = %access.order.order_id, "a signer's code was sent");
        Ok(())
    }

    /// Checks a code the signer typed. Every try spends an attempt first, right or wrong; a
    /// right code is then forgotten (good once).
    pub async fn check_code(
        &self,
        access: &SignerAccess,
        token: &str,
        code: &str,
    ) -> Result<CodeCheck, OtpError> {
        let order_id = &access.order.order_id;
        let Some(stored) = self
            .store
            .spend_signer_otp_attempt(order_id, access.position, self.clock.now(), MAX_ATTEMPTS)
            .await?
        else {
            return Ok(CodeCheck::Dead);
        };
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let presented = self.code_mac(token, &code);
        if constant_time_eq(stored.as_bytes(), presented.as_bytes()) {
            self.store
                .clear_signer_otp(order_id, access.position)
                .await?;
            Ok(CodeCheck::Accepted)
        } else {
            Ok(CodeCheck::Wrong)
        }
    }

    fn session_mac(&self, token: &str, expires: i64) -> String {
        let message = format!("{}/{expires}", token_hash(token));
        hex::encode(self.orders.link_mac("signer-session", message.as_bytes()))
    }

    /// The cookie value of a new session for the link: its expiry and a MAC binding it to the
    /// link.
    pub fn new_session(&self, token: &str) -> String {
        let expires = (self.clock.now() + SESSION_LIFETIME).unix_timestamp();
        format!("{expires}.{}", self.session_mac(token, expires))
    }

    /// Whether a cookie value is a live session of this link.
    pub fn session_holds(&self, token: &str, value: &str) -> bool {
        let Some((expires, mac)) = value.split_once('.') else {
            return false;
        };
        let Ok(expires) = expires.parse::<i64>() else {
            return false;
        };
        let live =
            OffsetDateTime::from_unix_timestamp(expires).is_ok_and(|at| at > self.clock.now());
        live && constant_time_eq(self.session_mac(token, expires).as_bytes(), mac.as_bytes())
    }
}

/// Equality whose time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
