//! The signer pages' HTML, written by hand into one `String` with every dynamic value escaped:
//! a page costs a few string appends, no template engine at run time, and no value from an
//! order (title, names, reasons) can become markup.

use std::fmt::Write;

use time::OffsetDateTime;

use super::i18n::{Lang, Text};
use crate::domain::{OrderState, TaskStatus};
use crate::store::orders::{OrderPerson, OrderRecord};

/// Where the pages' static files are served; the version makes long caching safe.
pub const ASSETS: &str = concat!("/assets/", env!("CARGO_PKG_VERSION"));

/// Appends `raw` with the five HTML-significant characters escaped (safe in text and in quoted
/// attribute values).
pub fn escape_into(out: &mut String, raw: &str) {
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
}

/// A page under construction.
pub struct Page {
    out: String,
}

impl Page {
    /// Opens the document: `<html lang>`, viewport, stylesheet, the language switch. `switch` is
    /// the URL the other language's link goes to, without the `lang` parameter.
    pub fn start(lang: Lang, title: &str, switch: Option<&str>) -> Self {
        let t = lang.text();
        let mut out = String::with_capacity(4096);
        out.push_str("<!doctype html>\n<html lang=\"");
        out.push_str(lang.code());
        out.push_str("\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>");
        escape_into(&mut out, title);
        out.push_str("</title><link rel=\"stylesheet\" href=\"");
        out.push_str(ASSETS);
        out.push_str("/pages.css\"></head><body><header>");
        if let Some(switch) = switch {
            out.push_str("<nav><a href=\"");
            escape_into(&mut out, switch);
            out.push_str(if switch.contains('?') { "&amp;" } else { "?" });
            out.push_str("lang=");
            out.push_str(t.other_language);
            out.push_str("\" hreflang=\"");
            out.push_str(t.other_language);
            out.push_str("\" lang=\"");
            out.push_str(t.other_language);
            out.push_str("\">");
            out.push_str(t.other_language_name);
            out.push_str("</a></nav>");
        }
        out.push_str("</header><main>");
        Page { out }
    }

    pub fn raw(&mut self, html: &str) -> &mut Self {
        self.out.push_str(html);
        self
    }

    pub fn text(&mut self, text: &str) -> &mut Self {
        escape_into(&mut self.out, text);
        self
    }

    /// `<tag>text</tag>` with the text escaped.
    pub fn element(&mut self, tag: &str, text: &str) -> &mut Self {
        let _ = write!(self.out, "<{tag}>");
        escape_into(&mut self.out, text);
        let _ = write!(self.out, "</{tag}>");
        self
    }

    pub fn finish(mut self) -> String {
        self.out.push_str("</main></body></html>\n");
        self.out
    }
}

/// A person's display name: first and last name, else their e-mail, else a neutral word.
/// Never the identifier: for EXTERNAL people that is a personal identity number.
pub fn display_name(person: &OrderPerson, fallback: &str) -> String {
    let a = &person.attributes;
    let name = [a.first_name.as_deref(), a.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if !name.is_empty() {
        name
    } else if let Some(mail) = a.mail.as_deref().filter(|m| !m.trim().is_empty()) {
        mail.to_owned()
    } else {
        fallback.to_owned()
    }
}

pub fn format_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// What the order page offers its viewer.
pub struct OrderView<'a> {
    pub lang: Lang,
    pub token: &'a str,
    pub order: &'a OrderRecord,
    pub position: i64,
    pub csrf: &'a str,
    /// Sign and Reject are offered (the order is PENDING, the signer's turn has come, and with
    /// `email-otp` the signer has entered their code).
    pub may_act: bool,
    /// The signer's turn has come but `email-otp` wants a code first: the code forms instead.
    pub code_needed: bool,
    /// A notice that outranks the one the order's state gives (code sent, wrong code).
    pub notice: Option<&'static str>,
}

/// The hidden fields every form carries: the CSRF token and the chosen language.
pub fn hidden_fields(page: &mut Page, csrf: &str, lang: Lang) {
    page.raw("<input type=\"hidden\" name=\"csrf\" value=\"")
        .text(csrf)
        .raw("\"><input type=\"hidden\" name=\"lang\" value=\"")
        .raw(lang.code())
        .raw("\">");
}

/// The viewer (pdf.js draws the pages into it) and the download link that works without it.
fn document_section(page: &mut Page, t: &Text, token: &str, signed: bool) {
    let href = format!("/sign/{token}/document");
    page.raw("<section aria-labelledby=\"document-heading\"><h2 id=\"document-heading\">")
        .text(t.document)
        .raw("</h2><p><a class=\"download\" href=\"")
        .text(&href)
        .raw("\" type=\"application/pdf\">")
        .text(if signed {
            t.download_signed
        } else {
            t.download
        })
        .raw("</a></p><div id=\"viewer\" class=\"viewer\" data-src=\"")
        .text(&href)
        .raw("\"></div><noscript><p>")
        .text(t.no_viewer)
        .raw("</p></noscript></section><script type=\"module\" src=\"")
        .raw(ASSETS)
        .raw("/viewer.mjs\"></script>");
}

/// `GET /sign/{token}`: the order for one signer.
pub fn order_page(view: &OrderView<'_>) -> String {
    let t = view.lang.text();
    let order = view.order;
    let own = order.signers.iter().find(|s| s.position == view.position);
    let base = format!("/sign/{}?view=order", view.token);
    let mut page = Page::start(view.lang, &order.title, Some(&base));
    page.raw("<h1>").text(&order.title).raw("</h1>");

    let notice = view.notice.or(match (own.map(|s| s.status), order.state) {
        (Some(TaskStatus::Signed), _) => Some(t.done_signed),
        (Some(TaskStatus::Rejected), _) => Some(t.done_rejected),
        (_, state) if state.is_final() => Some(t.order_ended),
        (Some(TaskStatus::Queued), _) => Some(t.not_your_turn),
        _ => None,
    });
    if let Some(notice) = notice {
        page.raw("<p class=\"notice\" role=\"status\">")
            .text(notice)
            .raw("</p>");
    }
    if let Some(description) = order.description.as_deref().filter(|d| !d.is_empty()) {
        page.raw("<p class=\"description\">")
            .text(description)
            .raw("</p>");
    }
    page.raw("<dl><dt>")
        .text(t.order_state)
        .raw("</dt><dd>")
        .text(t.order_state(order.state))
        .raw("</dd><dt>")
        .text(t.due)
        .raw("</dt><dd><time datetime=\"")
        .text(
            &order
                .due_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        )
        .raw("\">")
        .text(&format_time(order.due_at))
        .raw("</time></dd><dt>")
        .text(t.solicitor)
        .raw("</dt><dd>")
        .text(&display_name(&order.solicitor, "—"))
        .raw("</dd></dl>");

    page.raw("<section aria-labelledby=\"signers-heading\"><h2 id=\"signers-heading\">")
        .text(t.signers)
        .raw("</h2><ol class=\"signers\">");
    for (index, signer) in order.signers.iter().enumerate() {
        let fallback = format!("#{}", index + 1);
        page.raw("<li><span class=\"name\">")
            .text(&display_name(&signer.person, &fallback));
        if signer.position == view.position {
            page.raw(" (").text(t.you).raw(")");
        }
        page.raw("</span> <span class=\"status status-")
            .raw(&signer.status.as_str().to_ascii_lowercase())
            .raw("\">")
            .text(t.task_status(signer.status))
            .raw("</span>");
        if let Some(reason) = signer.reject_reason.as_deref().filter(|r| !r.is_empty()) {
            page.raw(" <q>").text(reason).raw("</q>");
        }
        page.raw("</li>");
    }
    page.raw("</ol></section>");

    if view.may_act {
        page.raw("<section class=\"actions\"><form method=\"get\" action=\"/sign/")
            .text(view.token)
            .raw("/confirm\"><input type=\"hidden\" name=\"lang\" value=\"")
            .raw(view.lang.code())
            .raw("\"><button type=\"submit\" class=\"primary\">")
            .text(t.sign)
            .raw("</button></form><form method=\"post\" action=\"/sign/")
            .text(view.token)
            .raw("/reject\">");
        hidden_fields(&mut page, view.csrf, view.lang);
        page.raw("<label for=\"reason\">")
            .text(t.reject_reason)
            .raw("</label><textarea id=\"reason\" name=\"reason\" rows=\"3\" maxlength=\"1000\"></textarea><button type=\"submit\">")
            .text(t.reject)
            .raw("</button></form></section>");
    }
    if view.code_needed {
        code_section(&mut page, view);
    }
    let signed =
        order.state == OrderState::Accepted || own.is_some_and(|s| s.status == TaskStatus::Signed);
    document_section(&mut page, t, view.token, signed);
    page.finish()
}

/// `email-otp`: ask for a code by e-mail, then type it in.
fn code_section(page: &mut Page, view: &OrderView<'_>) {
    let t = view.lang.text();
    page.raw(
        "<section class=\"actions\" aria-labelledby=\"code-heading\"><h2 id=\"code-heading\">",
    )
    .text(t.otp_heading)
    .raw("</h2><p>")
    .text(t.otp_explain)
    .raw("</p><form method=\"post\" action=\"/sign/")
    .text(view.token)
    .raw("/code\">");
    hidden_fields(page, view.csrf, view.lang);
    page.raw("<button type=\"submit\">")
        .text(t.send_code)
        .raw("</button></form><form method=\"post\" action=\"/sign/")
        .text(view.token)
        .raw("/verify\">");
    hidden_fields(page, view.csrf, view.lang);
    page.raw("<label for=\"code\">")
        .text(t.code_label)
        .raw("</label><input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" maxlength=\"12\" required><button type=\"submit\" class=\"primary\">")
        .text(t.verify)
        .raw("</button></form></section>");
}

/// `GET /sign/{token}/confirm`: the signing step, one button away from the signature.
pub fn confirm_page(view: &OrderView<'_>) -> String {
    let t = view.lang.text();
    let base = format!("/sign/{}/confirm", view.token);
    let mut page = Page::start(view.lang, t.confirm_heading, Some(&base));
    page.element("h1", t.confirm_heading)
        .raw("<p class=\"order-title\">")
        .text(&view.order.title)
        .raw("</p><p>")
        .text(t.confirm_text)
        .raw("</p><section class=\"actions\"><form method=\"post\" action=\"/sign/")
        .text(view.token)
        .raw("/sign\">");
    hidden_fields(&mut page, view.csrf, view.lang);
    page.raw("<button type=\"submit\" class=\"primary\">")
        .text(t.confirm)
        .raw("</button></form><p><a href=\"/sign/")
        .text(view.token)
        .raw("?view=order&amp;lang=")
        .raw(view.lang.code())
        .raw("\">")
        .text(t.back)
        .raw("</a></p></section>");
    document_section(&mut page, t, view.token, false);
    page.finish()
}

/// A refusal or failure page: a heading, a sentence, and (when the link is known) the way back.
pub fn message_page(lang: Lang, title: &str, text: &str, back: Option<&str>) -> String {
    let mut page = Page::start(lang, title, None);
    page.element("h1", title).element("p", text);
    if let Some(back) = back {
        page.raw("<p><a href=\"")
            .text(back)
            .raw("\">")
            .text(lang.text().back)
            .raw("</a></p>");
    }
    page.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped() {
        let mut out = String::new();
        escape_into(&mut out, "<script>alert('x') & \"y\"</script>");
        assert_eq!(
            out,
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn a_message_page_declares_its_language() {
        let html = message_page(Lang::Sv, "Ogiltig länk", "<b>", None);
        assert!(html.contains("<html lang=\"sv\">"));
        assert!(html.contains("&lt;b&gt;"));
    }
}
