//! The mail Signet sends, in English and Swedish, as plain text and HTML. Everything
//! interpolated into the HTML (titles, names, reasons, links) is escaped: order fields come from
//! the calling application and people's names from directories.

use time::OffsetDateTime;

use super::Language;
use crate::domain::OrderState;

/// What a rendered message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The facts a message is rendered from.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub title: &'a str,
    pub description: Option<&'a str>,
    /// The addressee's name, when known.
    pub recipient_name: Option<String>,
    /// The solicitor's name, when known.
    pub solicitor_name: Option<String>,
    pub due_at: OffsetDateTime,
}

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn date(at: OffsetDateTime) -> String {
    at.date().to_string()
}

fn greeting(language: Language, name: Option<&str>) -> String {
    match (language, name) {
        (Language::En, Some(name)) => format!("Hello {name},"),
        (Language::En, None) => "Hello,".to_owned(),
        (Language::Sv, Some(name)) => format!("Hej {name}!"),
        (Language::Sv, None) => "Hej!".to_owned(),
    }
}

/// Paragraphs of a message; a link, when given, goes after them as a button-like anchor.
struct Body {
    subject: String,
    greeting: String,
    paragraphs: Vec<String>,
    link: Option<(String, String)>,
    after_link: Vec<String>,
}

impl Body {
    fn render(self, language: Language) -> Rendered {
        let signature = match language {
            Language::En => "Signet, on behalf of the sender",
            Language::Sv => "Signet, för avsändarens räkning",
        };
        let mut text = format!("{}\n\n", self.greeting);
        let lang = match language {
            Language::En => "en",
            Language::Sv => "sv",
        };
        let mut html = format!(
            "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{}</title></head>\
             <body style=\"font-family:sans-serif;line-height:1.5\">\n<p>{}</p>\n",
            escape(&self.subject),
            escape(&self.greeting)
        );
        for paragraph in &self.paragraphs {
            text.push_str(paragraph);
            text.push_str("\n\n");
            html.push_str(&format!("<p>{}</p>\n", escape(paragraph)));
        }
        if let Some((label, url)) = &self.link {
            text.push_str(&format!("{label}:\n{url}\n\n"));
            html.push_str(&format!(
                "<p><a href=\"{}\">{}</a></p>\n<p style=\"font-size:small\">{}</p>\n",
                escape(url),
                escape(label),
                escape(url)
            ));
        }
        for paragraph in &self.after_link {
            text.push_str(paragraph);
            text.push_str("\n\n");
            html.push_str(&format!("<p>{}</p>\n", escape(paragraph)));
        }
        text.push_str(&format!("-- \n{signature}\n"));
        html.push_str(&format!("<p>— {}</p>\n</body></html>\n", escape(signature)));
        Rendered {
            subject: self.subject,
            text,
            html,
        }
    }
}

fn asker(language: Language, facts: &Facts<'_>) -> String {
    match (language, facts.solicitor_name.as_deref()) {
        (Language::En, Some(name)) => format!("{name} asks you to sign “{}”.", facts.title),
        (Language::En, None) => format!("You are asked to sign “{}”.", facts.title),
        (Language::Sv, Some(name)) => format!("{name} ber dig skriva under ”{}”.", facts.title),
        (Language::Sv, None) => format!("Du ombeds skriva under ”{}”.", facts.title),
    }
}

/// The invitation to sign; `waiting`: sent early (notifyAllSigners) while earlier signers have
/// yet to sign. Carries the signer's link verbatim.
pub fn invitation(language: Language, facts: &Facts<'_>, url: &str, waiting: bool) -> Rendered {
    let due = date(facts.due_at);
    let mut paragraphs = vec![asker(language, facts)];
    paragraphs.extend(facts.description.map(str::to_owned));
    if waiting {
        paragraphs.push(match language {
            Language::En => "Others sign before you: the link shows the document now, and you can sign once it is your turn (we will write again then).".to_owned(),
            Language::Sv => "Andra skriver under före dig: länken visar dokumentet redan nu, och du kan skriva under när det är din tur (vi skriver igen då).".to_owned(),
        });
    }
    let (subject, label, deadline) = match language {
        Language::En => (
            format!("Please sign: {}", facts.title),
            "Read, sign or reject the document here".to_owned(),
            format!("Please respond by {due}. The link is personal: do not forward it."),
        ),
        Language::Sv => (
            format!("Underskrift begärs: {}", facts.title),
            "Läs, skriv under eller avböj dokumentet här".to_owned(),
            format!("Svara senast {due}. Länken är personlig: vidarebefordra den inte."),
        ),
    };
    Body {
        subject,
        greeting: greeting(language, facts.recipient_name.as_deref()),
        paragraphs,
        link: Some((label, url.to_owned())),
        after_link: vec![deadline],
    }
    .render(language)
}

/// The reminder to a signer who has not acted as the due date nears.
pub fn reminder(language: Language, facts: &Facts<'_>, url: &str) -> Rendered {
    let due = date(facts.due_at);
    let (subject, paragraph, label) = match language {
        Language::En => (
            format!("Reminder: please sign {} by {due}", facts.title),
            format!(
                "“{}” is still waiting for your signature. It is due on {due}; after that it can no longer be signed.",
                facts.title
            ),
            "Read, sign or reject the document here".to_owned(),
        ),
        Language::Sv => (
            format!("Påminnelse: skriv under {} senast {due}", facts.title),
            format!(
                "”{}” väntar fortfarande på din underskrift. Sista dag är {due}; därefter kan det inte längre skrivas under.",
                facts.title
            ),
            "Läs, skriv under eller avböj dokumentet här".to_owned(),
        ),
    };
    Body {
        subject,
        greeting: greeting(language, facts.recipient_name.as_deref()),
        paragraphs: vec![paragraph],
        link: Some((label, url.to_owned())),
        after_link: Vec::new(),
    }
    .render(language)
}

/// How an order ended, for its solicitor.
#[derive(Debug, Clone)]
pub enum Outcome<'a> {
    /// Everyone signed; `document_url` opens a page that offers the signed document.
    Accepted {
        document_url: Option<&'a str>,
    },
    Rejected {
        by: Option<String>,
        reason: Option<&'a str>,
    },
    Expired,
    Cancelled,
}

impl Outcome<'_> {
    pub fn state(&self) -> OrderState {
        match self {
            Outcome::Accepted { .. } => OrderState::Accepted,
            Outcome::Rejected { .. } => OrderState::Rejected,
            Outcome::Expired => OrderState::Expired,
            Outcome::Cancelled => OrderState::Cancelled,
        }
    }
}

/// The outcome mail to the solicitor.
pub fn outcome(language: Language, facts: &Facts<'_>, outcome: &Outcome<'_>) -> Rendered {
    let title = facts.title;
    let due = date(facts.due_at);
    let (subject, paragraphs, link) = match (language, outcome) {
        (Language::En, Outcome::Accepted { document_url }) => (
            format!("Signed by everyone: {title}"),
            vec![format!("“{title}” has been signed by every signer.")],
            document_url.map(|u| ("Open the order and download the signed document".to_owned(), u.to_owned())),
        ),
        (Language::Sv, Outcome::Accepted { document_url }) => (
            format!("Underskrivet av alla: {title}"),
            vec![format!("”{title}” har skrivits under av alla undertecknare.")],
            document_url.map(|u| ("Öppna ordern och ladda ner det underskrivna dokumentet".to_owned(), u.to_owned())),
        ),
        (Language::En, Outcome::Rejected { by, reason }) => (
            format!("Rejected: {title}"),
            vec![
                match by {
                    Some(name) => format!("{name} rejected “{title}”; the order has ended."),
                    None => format!("A signer rejected “{title}”; the order has ended."),
                },
                match reason {
                    Some(reason) => format!("Reason given: {reason}"),
                    None => "No reason was given.".to_owned(),
                },
            ],
            None,
        ),
        (Language::Sv, Outcome::Rejected { by, reason }) => (
            format!("Avböjt: {title}"),
            vec![
                match by {
                    Some(name) => format!("{name} avböjde att skriva under ”{title}”; ordern är avslutad."),
                    None => format!("En undertecknare avböjde att skriva under ”{title}”; ordern är avslutad."),
                },
                match reason {
                    Some(reason) => format!("Angivet skäl: {reason}"),
                    None => "Inget skäl angavs.".to_owned(),
                },
            ],
            None,
        ),
        (Language::En, Outcome::Expired) => (
            format!("Expired: {title}"),
            vec![format!("“{title}” reached its due date ({due}) before everyone had signed; it can no longer be signed.")],
            None,
        ),
        (Language::Sv, Outcome::Expired) => (
            format!("Utgånget: {title}"),
            vec![format!("”{title}” nådde sista dagen ({due}) innan alla hade skrivit under; det kan inte längre skrivas under.")],
            None,
        ),
        (Language::En, Outcome::Cancelled) => (
            format!("Cancelled: {title}"),
            vec![format!("“{title}” was cancelled; it can no longer be signed.")],
            None,
        ),
        (Language::Sv, Outcome::Cancelled) => (
            format!("Makulerat: {title}"),
            vec![format!("”{title}” har makulerats; det kan inte längre skrivas under.")],
            None,
        ),
    };
    Body {
        subject,
        greeting: greeting(language, facts.recipient_name.as_deref()),
        paragraphs,
        link,
        after_link: Vec::new(),
    }
    .render(language)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(title: &str) -> Facts<'_> {
        Facts {
            title,
            description: Some("<b>bold</b>"),
            recipient_name: Some("Jane & Co".into()),
            solicitor_name: None,
            due_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_invitation_carries_the_link_verbatim_and_escapes_the_html() {
        let url = "https://signet.example/sign/abc?x=1&y=2";
        let mail = invitation(
            Language::En,
            &facts("<script>alert(1)</script>"),
            url,
            false,
        );
        assert!(mail.text.contains(url));
        assert!(mail
            .html
            .contains("https://signet.example/sign/abc?x=1&amp;y=2"));
        assert!(!mail.html.contains("<script>"));
        assert!(!mail.html.contains("<b>bold"));
        assert!(mail.html.contains("Jane &amp; Co"));
    }

    #[test]
    fn swedish_mail_is_swedish() {
        let mail = outcome(
            Language::Sv,
            &facts("Avtal"),
            &Outcome::Rejected {
                by: None,
                reason: Some("Fel belopp"),
            },
        );
        assert_eq!(mail.subject, "Avböjt: Avtal");
        assert!(mail.text.contains("Angivet skäl: Fel belopp"));
    }
}
