//! The outbox's mail channel: turns a MAIL row (kind + `signer:<n>`/`solicitor`, no address, no
//! text) into a message rendered from the order as it is now, and sends it with a Message-ID
//! derived from the row id, so an at-least-once resend can be recognised by the receiver.

use async_trait::async_trait;
use std::sync::Arc;

use super::templates::{self, Facts, Outcome, Rendered};
use super::{Language, MailMessage, Mailer};
use crate::domain::{OrderState, TaskStatus};
use crate::jobs::outbox::{Deliver, DeliveryError};
use crate::services::orders::OrderService;
use crate::store::orders::{OrderPerson, OrderRecord};
use crate::store::outbox::{mail_kind, Channel, OutboxMessage, SOLICITOR_RECIPIENT};
use crate::store::OrderStore;

/// A mail server that stays down this long loses nothing sooner: invitations outlive most
/// orders' due dates, and an outage is fixed long before.
const GIVE_UP_AFTER: time::Duration = time::Duration::days(30);

/// Sends the outbox's mail.
pub struct MailDeliver {
    store: Arc<dyn OrderStore>,
    /// Signing links (`link_url`); only pure link derivation is used.
    orders: Arc<OrderService>,
    mailer: Mailer,
    language: Language,
    /// Right-hand side of Message-IDs (the public URL's host).
    id_domain: String,
}

impl MailDeliver {
    pub fn new(
        store: Arc<dyn OrderStore>,
        orders: Arc<OrderService>,
        mailer: Mailer,
        language: Language,
        public_url: &str,
    ) -> Self {
        let host = public_url
            .split_once("://")
            .map_or(public_url, |(_, rest)| rest)
            .split(['/', ':'])
            .next()
            .filter(|h| !h.is_empty())
            .unwrap_or("signet.invalid");
        Self {
            store,
            orders,
            mailer,
            language,
            id_domain: host.to_owned(),
        }
    }

    /// The Message-ID of an outbox row: the same on every attempt.
    pub fn message_id(&self, outbox_id: i64) -> String {
        format!("<outbox-{outbox_id}@{}>", self.id_domain)
    }

    /// Renders the row's message and says to whom, or why it cannot be sent.
    fn render(
        &self,
        message: &OutboxMessage,
        order: &OrderRecord,
    ) -> Result<(String, Rendered), DeliveryError> {
        let solicitor_name = display_name(&order.solicitor);
        let facts = |recipient: &OrderPerson| Facts {
            title: &order.title,
            description: order.description.as_deref(),
            recipient_name: display_name(recipient),
            solicitor_name: solicitor_name.clone(),
            due_at: order.due_at,
        };
        if message.recipient == SOLICITOR_RECIPIENT {
            if message.kind != mail_kind::OUTCOME {
                return Err(DeliveryError::give_up(format!(
                    "no {} mail goes to a solicitor",
                    message.kind
                )));
            }
            let address = address_of(&order.solicitor)?;
            let outcome = match order.state {
                OrderState::Accepted => Outcome::Accepted { document_url: None },
                OrderState::Rejected => {
                    let rejecter = order
                        .signers
                        .iter()
                        .find(|s| s.status == TaskStatus::Rejected);
                    Outcome::Rejected {
                        by: rejecter.and_then(|s| display_name(&s.person)),
                        reason: rejecter.and_then(|s| s.reject_reason.as_deref()),
                    }
                }
                OrderState::Expired => Outcome::Expired,
                OrderState::Cancelled => Outcome::Cancelled,
                OrderState::Pending => {
                    return Err(DeliveryError::give_up("the order has not ended"));
                }
            };
            // The solicitor has no page of their own: the accepted order's document is offered
            // on a signer's page, which shows the outcome once the order has ended.
            let document_url = match outcome {
                Outcome::Accepted { .. } => order
                    .signers
                    .first()
                    .map(|signer| self.orders.link_url(order, signer)),
                _ => None,
            };
            let outcome = match outcome {
                Outcome::Accepted { .. } => Outcome::Accepted {
                    document_url: document_url.as_deref(),
                },
                other => other,
            };
            let rendered = templates::outcome(self.language, &facts(&order.solicitor), &outcome);
            return Ok((address, rendered));
        }
        let position: i64 = message
            .recipient
            .strip_prefix("signer:")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| {
                DeliveryError::give_up(format!("unknown mail recipient {:?}", message.recipient))
            })?;
        let signer = order
            .signers
            .iter()
            .find(|s| s.position == position)
            .ok_or_else(|| DeliveryError::give_up("the signer is no longer on the order"))?;
        if order.state.is_final() || signer.status.has_acted() {
            return Err(DeliveryError::give_up(
                "no longer relevant: the order has ended or the signer has acted",
            ));
        }
        let address = address_of(&signer.person)?;
        let url = self.orders.link_url(order, signer);
        let facts = facts(&signer.person);
        let rendered = match message.kind.as_str() {
            mail_kind::INVITATION => {
                let waiting = message.payload["waiting"].as_bool().unwrap_or(false)
                    && signer.status == TaskStatus::Queued;
                templates::invitation(self.language, &facts, &url, waiting)
            }
            mail_kind::REMINDER => templates::reminder(self.language, &facts, &url),
            other => {
                return Err(DeliveryError::give_up(format!(
                    "no {other} mail goes to a signer"
                )));
            }
        };
        Ok((address, rendered))
    }
}

/// "First Last", when the order knows either.
fn display_name(person: &OrderPerson) -> Option<String> {
    let a = &person.attributes;
    let name = [a.first_name.as_deref(), a.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then_some(name)
}

/// The person's address; an anonymized person, or one without an address, gets no mail (the
/// row is given up with this reason rather than retried).
fn address_of(person: &OrderPerson) -> Result<String, DeliveryError> {
    person
        .attributes
        .mail
        .clone()
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| DeliveryError::give_up("the recipient has no e-mail address"))
}

#[async_trait]
impl Deliver for MailDeliver {
    fn channel(&self) -> Channel {
        Channel::Mail
    }

    fn give_up_after(&self) -> time::Duration {
        GIVE_UP_AFTER
    }

    async fn deliver(&self, message: &OutboxMessage) -> Result<(), DeliveryError> {
        let order_id = message
            .order_id
            .ok_or_else(|| DeliveryError::give_up("a mail row without an order"))?;
        let order = self
            .store
            .find_order(&order_id)
            .await
            .map_err(|e| DeliveryError::retry(format!("reading the order: {e}")))?
            .ok_or_else(|| DeliveryError::give_up("the order no longer exists"))?;
        let (to, rendered) = self.render(message, &order)?;
        let mail = MailMessage {
            to,
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
        };
        self.mailer
            .send_with_id(mail, Some(self.message_id(message.id)))
            .await
            .map_err(|error| DeliveryError {
                retryable: error.is_retryable(),
                reason: error.summary(),
            })
    }
}
