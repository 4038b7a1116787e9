//! E-mail: the SMTP [`Mailer`] (lettre over rustls), the message [`templates`] in English and
//! Swedish, and the outbox's mail channel ([`deliver::MailDeliver`]), which renders each message
//! from the order as it is when it is sent.

pub mod deliver;
pub mod templates;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::config::SmtpSettings;

/// Connections kept open to the SMTP server (reused across messages): one per message the
/// outbox sends at once.
const POOL_SIZE: u32 = crate::jobs::outbox::CONCURRENCY as u32;

/// The language mail is written in (`--mail-language`, `mail_language`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Sv,
}

impl std::str::FromStr for Language {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.to_ascii_lowercase().as_str() {
            "en" => Ok(Language::En),
            "sv" => Ok(Language::Sv),
            other => Err(format!(
                "unknown mail language {other:?}: expected en or sv"
            )),
        }
    }
}

/// One message to send: plain text and HTML alternatives of the same content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailMessage {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Why the SMTP settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("the SMTP URL is not usable (expected smtp://host:port, smtp://host:port?tls=required or smtps://host:port): {0}")]
    Url(#[source] lettre::transport::smtp::Error),
    #[error("the sender address {0:?} is not a mail address")]
    From(String),
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the recipient address is not a mail address")]
    Recipient,
    #[error("building the message failed: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("the SMTP exchange failed: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

impl MailError {
    /// What went wrong, without the server's text (which may quote the recipient's address):
    /// safe for logs and the delivery log.
    pub fn summary(&self) -> String {
        match self {
            MailError::Recipient => "the recipient address is not a mail address".to_owned(),
            MailError::Build(_) => "the message could not be built".to_owned(),
            MailError::Smtp(error) => {
                let kind = if error.is_permanent() {
                    "permanent SMTP error"
                } else if error.is_transient() {
                    "transient SMTP error"
                } else if error.is_timeout() {
                    "SMTP timeout"
                } else {
                    "SMTP connection or protocol error"
                };
                match error.status() {
                    Some(code) => format!("{kind} ({code})"),
                    None => kind.to_owned(),
                }
            }
        }
    }

    /// Whether sending again later may succeed: a refused address or a permanent (5xx) answer
    /// will not change; a server that is down, slow or answering 4xx may.
    pub fn is_retryable(&self) -> bool {
        match self {
            MailError::Recipient | MailError::Build(_) => false,
            MailError::Smtp(error) => !error.is_permanent(),
        }
    }
}

/// Sends mail through one SMTP server, over a pool of reused connections.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// The mailer for `settings`, or `None` when no SMTP server is configured. Credentials come
    /// from the URL (`smtp://user:password@host`) unless `smtp.username`/`smtp.password`
    /// (`SIGNET_SMTP_USERNAME`/`SIGNET_SMTP_PASSWORD`) are set, which win.
    pub fn from_settings(
        settings: &SmtpSettings,
        from: &str,
    ) -> Result<Option<Self>, MailConfigError> {
        let Some(url) = settings.url.as_deref() else {
            return Ok(None);
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(MailConfigError::Url)?
            .timeout(Some(Duration::from_secs(settings.timeout_seconds)))
            .pool_config(PoolConfig::new().max_size(POOL_SIZE));
        if let Some(username) = &settings.username {
            let password = settings.password.clone().unwrap_or_default();
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        let from = from
            .parse()
            .map_err(|_| MailConfigError::From(from.to_owned()))?;
        Ok(Some(Self {
            transport: builder.build(),
            from,
        }))
    }

    /// Sends `message` with a generated Message-ID.
    pub async fn send(&self, message: MailMessage) -> Result<(), MailError> {
        self.send_with_id(message, None).await
    }

    /// Sends `message` with the given Message-ID (`<…@…>`): a resend of the same outbox row
    /// carries the same one, so receivers can drop the duplicate.
    pub async fn send_with_id(
        &self,
        message: MailMessage,
        message_id: Option<String>,
    ) -> Result<(), MailError> {
        let to: Mailbox = message.to.parse().map_err(|_| MailError::Recipient)?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject)
            .message_id(message_id)
            .multipart(MultiPart::alternative_plain_html(
                message.text,
                message.html,
            ))?;
        self.transport.send(email).await?;
        Ok(())
    }
}
