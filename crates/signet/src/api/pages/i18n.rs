//! The signer pages' two languages: English and Swedish, chosen by `?lang=` when given, else by
//! the browser's `Accept-Language` (with q-values), else English. Every visible word lives here.

use crate::domain::{OrderState, TaskStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Sv,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Sv => "sv",
        }
    }

    fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split('-').next().unwrap_or("").trim();
        if primary.eq_ignore_ascii_case("sv") {
            Some(Lang::Sv)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// `?lang=` first (the switch on the page, kept through the forms), then `Accept-Language`.
    pub fn choose(explicit: Option<&str>, accept_language: Option<&str>) -> Lang {
        explicit
            .and_then(Lang::from_tag)
            .or_else(|| accept_language.and_then(from_accept_language))
            .unwrap_or(Lang::En)
    }

    pub fn text(self) -> &'static Text {
        match self {
            Lang::En => &EN,
            Lang::Sv => &SV,
        }
    }
}

/// The language the browser prefers most among those Signet speaks (highest q; the first listed
/// on a tie; `q=0` means "not this one").
pub fn from_accept_language(header: &str) -> Option<Lang> {
    let mut best: Option<(Lang, u16)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let Some(lang) = parts.next().and_then(|tag| Lang::from_tag(tag.trim())) else {
            continue;
        };
        let quality = parts
            .find_map(|p| p.trim().strip_prefix("q=").map(parse_quality))
            .unwrap_or(Some(1000));
        let Some(quality) = quality.filter(|q| *q > 0) else {
            continue;
        };
        if best.is_none_or(|(_, q)| quality > q) {
            best = Some((lang, quality));
        }
    }
    best.map(|(lang, _)| lang)
}

/// A q-value in thousandths (`0.8` → 800); `None` when malformed.
fn parse_quality(raw: &str) -> Option<u16> {
    let value: f32 = raw.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&value)
        .then(|| (value * 1000.0).round() as u16)
}

/// Every phrase of the pages in one language.
pub struct Text {
    pub other_language: &'static str,
    pub other_language_name: &'static str,
    pub due: &'static str,
    pub solicitor: &'static str,
    pub signers: &'static str,
    pub order_state: &'static str,
    pub document: &'static str,
    pub download: &'static str,
    pub download_signed: &'static str,
    pub sign: &'static str,
    pub reject: &'static str,
    pub reject_reason: &'static str,
    pub confirm_heading: &'static str,
    pub confirm_text: &'static str,
    pub confirm: &'static str,
    pub back: &'static str,
    pub done_signed: &'static str,
    pub done_rejected: &'static str,
    pub not_your_turn: &'static str,
    pub order_ended: &'static str,
    pub not_found_title: &'static str,
    pub not_found_text: &'static str,
    pub forbidden_title: &'static str,
    pub forbidden_text: &'static str,
    pub conflict_title: &'static str,
    pub unavailable_title: &'static str,
    pub unavailable_text: &'static str,
    pub bad_request_title: &'static str,
    pub bad_request_text: &'static str,
    pub you: &'static str,
    pub no_viewer: &'static str,
    pub otp_heading: &'static str,
    pub otp_explain: &'static str,
    pub send_code: &'static str,
    pub code_label: &'static str,
    pub verify: &'static str,
    pub code_sent: &'static str,
    pub code_wrong: &'static str,
    pub code_dead: &'static str,
    pub code_required: &'static str,
    pub cannot_send_title: &'static str,
    pub cannot_send_text: &'static str,
    pub code_mail_subject: &'static str,
    pub code_mail_text: &'static str,
}

impl Text {
    pub fn order_state(&self, state: OrderState) -> &'static str {
        match (std::ptr::eq(self, &SV), state) {
            (false, OrderState::Pending) => "Waiting for signatures",
            (false, OrderState::Accepted) => "Signed by everyone",
            (false, OrderState::Rejected) => "Rejected",
            (false, OrderState::Cancelled) => "Cancelled",
            (false, OrderState::Expired) => "Expired",
            (true, OrderState::Pending) => "Väntar på underskrifter",
            (true, OrderState::Accepted) => "Signerat av alla",
            (true, OrderState::Rejected) => "Avvisat",
            (true, OrderState::Cancelled) => "Avbrutet",
            (true, OrderState::Expired) => "Förfallet",
        }
    }

    pub fn task_status(&self, status: TaskStatus) -> &'static str {
        match (std::ptr::eq(self, &SV), status) {
            (false, TaskStatus::Pending) => "To sign",
            (false, TaskStatus::Queued) => "Waiting for an earlier signer",
            (false, TaskStatus::Signed) => "Signed",
            (false, TaskStatus::Rejected) => "Rejected",
            (true, TaskStatus::Pending) => "Ska signera",
            (true, TaskStatus::Queued) => "Väntar på en tidigare undertecknare",
            (true, TaskStatus::Signed) => "Signerat",
            (true, TaskStatus::Rejected) => "Avvisat",
        }
    }
}

pub static EN: Text = Text {
    other_language: "sv",
    other_language_name: "Svenska",
    due: "Due",
    solicitor: "Sent by",
    signers: "Signers",
    order_state: "Status",
    document: "Document",
    download: "Download the document (PDF)",
    download_signed: "Download the signed document (PDF)",
    sign: "Sign",
    reject: "Reject",
    reject_reason: "Reason for rejecting (optional)",
    confirm_heading: "Confirm your signature",
    confirm_text:
        "By confirming you sign the document below with a signature made for you by this service.",
    confirm: "Confirm",
    back: "Back to the order",
    done_signed: "Done: you have signed the document.",
    done_rejected: "Done: you have rejected the document.",
    not_your_turn:
        "Not your turn yet: an earlier signer has to sign first. Open this link again later.",
    order_ended: "This order has ended; nothing more can be signed.",
    not_found_title: "Link not valid",
    not_found_text: "This signing link is not valid, or it can no longer be used.",
    forbidden_title: "Request refused",
    forbidden_text: "The form was not sent from this signing page. Open your link again and retry.",
    conflict_title: "Could not complete",
    unavailable_title: "Try again later",
    unavailable_text:
        "The signature could not be made right now. Nothing was lost; please try again in a moment.",
    bad_request_title: "Bad request",
    bad_request_text: "The form could not be read. Open your link again and retry.",
    you: "you",
    no_viewer: "The document viewer needs JavaScript; use the download link instead.",
    otp_heading: "Confirm it is you",
    otp_explain: "Before you sign or reject, enter a code that is sent to your e-mail.",
    send_code: "Send a code to my e-mail",
    code_label: "Code from the e-mail",
    verify: "Continue",
    code_sent: "A code was sent to your e-mail. It is valid for 10 minutes.",
    code_wrong: "Wrong code. Try again.",
    code_dead: "The code can no longer be used. Ask for a new one.",
    code_required: "Enter the code from your e-mail first.",
    cannot_send_title: "The code cannot be sent",
    cannot_send_text: "This service cannot send e-mail to you right now, so no code can be sent. Please contact the sender of the order.",
    code_mail_subject: "Your signing code",
    code_mail_text: "Your code for signing \"{title}\" is {code}.\n\nIt is valid for 10 minutes. If you did not ask for it, ignore this message.\n",
};

pub static SV: Text = Text {
    other_language: "en",
    other_language_name: "English",
    due: "Sista dag",
    solicitor: "Skickat av",
    signers: "Undertecknare",
    order_state: "Status",
    document: "Dokument",
    download: "Ladda ner dokumentet (PDF)",
    download_signed: "Ladda ner det signerade dokumentet (PDF)",
    sign: "Signera",
    reject: "Avvisa",
    reject_reason: "Anledning till avvisning (frivillig)",
    confirm_heading: "Bekräfta din underskrift",
    confirm_text: "När du bekräftar signerar du dokumentet nedan med en underskrift som tjänsten skapar åt dig.",
    confirm: "Bekräfta",
    back: "Tillbaka till ordern",
    done_signed: "Klart: du har signerat dokumentet.",
    done_rejected: "Klart: du har avvisat dokumentet.",
    not_your_turn: "Inte din tur än: en tidigare undertecknare måste signera först. Öppna länken igen senare.",
    order_ended: "Ordern är avslutad; inget mer kan signeras.",
    not_found_title: "Ogiltig länk",
    not_found_text: "Signeringslänken är ogiltig eller kan inte längre användas.",
    forbidden_title: "Begäran nekad",
    forbidden_text: "Formuläret skickades inte från den här signeringssidan. Öppna länken igen och försök på nytt.",
    conflict_title: "Kunde inte slutföras",
    unavailable_title: "Försök igen senare",
    unavailable_text: "Underskriften kunde inte skapas just nu. Inget har gått förlorat; försök igen om en stund.",
    bad_request_title: "Felaktig begäran",
    bad_request_text: "Formuläret kunde inte läsas. Öppna länken igen och försök på nytt.",
    you: "du",
    no_viewer: "Dokumentvisaren behöver JavaScript; använd nedladdningslänken i stället.",
    otp_heading: "Bekräfta att det är du",
    otp_explain: "Innan du signerar eller avvisar anger du en kod som skickas till din e-post.",
    send_code: "Skicka en kod till min e-post",
    code_label: "Kod från e-postmeddelandet",
    verify: "Fortsätt",
    code_sent: "En kod har skickats till din e-post. Den gäller i 10 minuter.",
    code_wrong: "Fel kod. Försök igen.",
    code_dead: "Koden kan inte längre användas. Begär en ny.",
    code_required: "Ange koden från din e-post först.",
    cannot_send_title: "Koden kan inte skickas",
    cannot_send_text: "Tjänsten kan inte skicka e-post till dig just nu, så ingen kod kan skickas. Kontakta den som skickade ordern.",
    code_mail_subject: "Din signeringskod",
    code_mail_text: "Din kod för att signera \"{title}\" är {code}.\n\nDen gäller i 10 minuter. Om du inte har bett om den kan du bortse från meddelandet.\n",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_highest_quality_known_language() {
        assert_eq!(
            from_accept_language("sv-SE,sv;q=0.9,en;q=0.8"),
            Some(Lang::Sv)
        );
        assert_eq!(from_accept_language("en;q=0.5, sv;q=0.9"), Some(Lang::Sv));
        assert_eq!(from_accept_language("de, en-GB;q=0.7"), Some(Lang::En));
        assert_eq!(from_accept_language("sv;q=0, en;q=0.1"), Some(Lang::En));
        assert_eq!(from_accept_language("fr, de"), None);
        assert_eq!(from_accept_language("sv;q=bogus"), None);
    }

    #[test]
    fn the_switch_beats_the_header() {
        assert_eq!(Lang::choose(Some("en"), Some("sv")), Lang::En);
        assert_eq!(Lang::choose(Some("xx"), Some("sv")), Lang::Sv);
        assert_eq!(Lang::choose(None, None), Lang::En);
    }
}
