//! The signer pages on the main listener: what a signer sees when they open their `signingUrl`
//! — the order, the document (pdf.js, vendored into the binary, plus a download link), and the
//! Sign (with a confirmation step) and Reject forms. Server-rendered; the actions are plain form
//! posts answered with a redirect (POST-redirect-GET), so they work without JavaScript. Every
//! post carries a CSRF token bound to the link; every page carries headers that keep it out of
//! frames, caches and referrers (the token is in the URL). The work itself is the order
//! service's.

mod assets;
mod html;
mod i18n;

use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION,
    REFERRER_POLICY, SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use std::sync::Arc;

use crate::api::blob_download;
use crate::domain::order::SignerAuth;
use crate::domain::{LinkType, TaskStatus};
use crate::services::orders::{OrderError, SignerAccess};
use crate::services::signer_auth::{
    constant_time_eq, CodeCheck, CodeMail, CodeSender, OtpError, SignerAuthService,
    SESSION_LIFETIME,
};
use crate::services::signing_links::token_hash;
use crate::state::AppState;
use html::OrderView;
use i18n::Lang;

/// Only this origin's scripts, styles, images, fonts, workers and fetches; no framing, no
/// plugins, forms only to this origin. pdf.js runs from `'self'` and needs nothing more.
const CSP: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The cookie of a signer's session after a right code (`email-otp`).
const SESSION_COOKIE: &str = "signet_signer";

/// The signer pages' routes; merged into the main listener's router.
pub fn router(state: &AppState) -> Router<AppState> {
    let sender: Option<Arc<dyn CodeSender>> = state
        .mailer
        .clone()
        .map(|mailer| Arc::new(mailer) as Arc<dyn CodeSender>);
    let auth = Arc::new(SignerAuthService::new(
        state.store.clone(),
        state.clock.clone(),
        state.orders.clone(),
        sender,
        state.settings.signer_auth,
    ));
    Router::new()
        .route("/sign/{token}", get(order_page))
        .route("/sign/{token}/confirm", get(confirm_page))
        .route("/sign/{token}/sign", post(sign))
        .route("/sign/{token}/reject", post(reject))
        .route("/sign/{token}/code", post(send_code))
        .route("/sign/{token}/verify", post(verify_code))
        .route("/sign/{token}/document", get(document))
        .route("/assets/{version}/{name}", get(assets::serve))
        .layer(Extension(auth))
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
    /// `order`: the order page even for a `linkType` 1 link (the way back from the signing step).
    view: Option<String>,
    /// `sent`: the notice that a code went out.
    otp: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    lang: Option<String>,
    reason: Option<String>,
    code: Option<String>,
}

fn choose_lang(explicit: Option<&str>, headers: &HeaderMap) -> Lang {
    let accept = headers
        .get(axum::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    Lang::choose(explicit, accept)
}

/// The headers every page carries.
fn page_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(headers);
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The one answer for a token no signer holds and for a token that can no longer act: the same
/// status and the same bytes, so neither tells a guesser anything.
fn not_found(lang: Lang) -> Response {
    let t = lang.text();
    page_response(
        StatusCode::NOT_FOUND,
        html::message_page(lang, t.not_found_title, t.not_found_text, None),
    )
}

fn message(status: StatusCode, lang: Lang, title: &str, text: &str, token: &str) -> Response {
    let back = format!("/sign/{token}?view=order&lang={}", lang.code());
    page_response(status, html::message_page(lang, title, text, Some(&back)))
}

/// The CSRF token of a link: a MAC of the token's hash under a key derived for this use. Only
/// the server can make it, and it is good for this link only.
fn csrf_token(state: &AppState, token: &str) -> String {
    hex::encode(state.orders.link_mac("csrf", token_hash(token).as_bytes()))
}

fn csrf_holds(state: &AppState, token: &str, presented: &str) -> bool {
    let expected = csrf_token(state, token);
    constant_time_eq(expected.as_bytes(), presented.as_bytes())
}

/// Whether the link's holder has proven who they are as the order asks: always with `link`,
/// with a live session cookie of this link with `email-otp`.
fn authenticated(
    auth: &SignerAuthService,
    access: &SignerAccess,
    token: &str,
    headers: &HeaderMap,
) -> bool {
    match auth.mode_for(&access.order) {
        SignerAuth::Link => true,
        SignerAuth::EmailOtp => headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
            .any(|value| auth.session_holds(token, value)),
    }
}

/// Whether the link's holder can still act: the order is open and they have not acted.
fn alive(access: &SignerAccess) -> bool {
    !access.order.state.is_final() && !access.task().status.has_acted()
}

/// Looks the token up; a failing store is a 503 page, never a 500.
async fn lookup(state: &AppState, token: &str, lang: Lang) -> Result<SignerAccess, Response> {
    match state.orders.access_by_token(token).await {
        Ok(Some(access)) => Ok(access),
        Ok(None) => Err(not_found(lang)),
        Err(error) => {
            tracing::error!(%error, "looking up a signing link");
            let t = lang.text();
            Err(page_response(
                StatusCode::SERVICE_UNAVAILABLE,
                html::message_page(lang, t.unavailable_title, t.unavailable_text, None),
            ))
        }
    }
}

fn view<'a>(
    lang: Lang,
    token: &'a str,
    access: &'a SignerAccess,
    csrf: &'a str,
    authenticated: bool,
) -> OrderView<'a> {
    let turn = alive(access) && access.task().status == TaskStatus::Pending;
    OrderView {
        lang,
        token,
        order: &access.order,
        position: access.position,
        csrf,
        may_act: turn && authenticated,
        code_needed: turn && !authenticated,
        notice: None,
    }
}

/// `GET /sign/{token}`: the order page (`linkType` 1: straight to the signing step while the
/// signer can sign).
#[tracing::instrument(skip_all)]
async fn order_page(
    State(state): State<AppState>,
    Extension(auth): Extension<Arc<SignerAuthService>>,
    Path(token): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = choose_lang(query.lang.as_deref(), &headers);
    let access = match lookup(&state, &token, lang).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    let csrf = csrf_token(&state, &token);
    let authenticated = authenticated(&auth, &access, &token, &headers);
    let mut view = view(lang, &token, &access, &csrf, authenticated);
    if query.otp.as_deref() == Some("sent") && view.code_needed {
        view.notice = Some(lang.text().code_sent);
    }
    let direct = access.order.link_type == LinkType::DirectSign
        && query.view.as_deref() != Some("order")
        && view.may_act;
    let body = if direct {
        html::confirm_page(&view)
    } else {
        html::order_page(&view)
    };
    page_response(StatusCode::OK, body)
}

/// `GET /sign/{token}/confirm`: the confirmation step before a signature.
#[tracing::instrument(skip_all)]
async fn confirm_page(
    State(state): State<AppState>,
    Extension(auth): Extension<Arc<SignerAuthService>>,
    Path(token): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let lang = choose_lang(query.lang.as_deref(), &headers);
    let access = match lookup(&state, &token, lang).await {
        Ok(access) => access,
        Err(response) => return response,
    };
    let csrf = csrf_token(&state, &token);
    let authenticated = authenticated(&auth, &access, &token, &headers);
    let view = view(lang, &token, &access, &csrf, authenticated);
    if !view.may_act {
        // Nothing to confirm (signed already, not their turn, order ended): the order page says
        // which.
        return page_response(StatusCode::OK, html::order_page(&view));
    }
    page_response(StatusCode::OK, html::confirm_page(&view))
}

/// What a form post asks for.
enum Action {
    Sign,
    Reject,
}

/// Checks a form post: a live link (else the 404 every dead or unknown token gets), a readable
/// form, the link's CSRF token.
async fn check_post(
    state: &AppState,
    token: &str,
    form: Result<Form<ActionForm>, FormRejection>,
    headers: &HeaderMap,
) -> Result<(Lang, SignerAccess, ActionForm), Response> {
    let explicit = form.as_ref().ok().and_then(|f| f.lang.clone());
    let lang = choose_lang(explicit.as_deref(), headers);
    let access = lookup(state, token, lang).await?;
    if !alive(&access) {
        return Err(not_found(lang));
    }
    let t = lang.text();
    // Out of turn changes nothing whoever asks, and the page says so (before the CSRF check:
    // the queued signer's page has no form, hence no token).
    if access.task().status == TaskStatus::Queued {
        return Err(message(
            StatusCode::CONFLICT,
            lang,
            t.conflict_title,
            t.not_your_turn,
            token,
        ));
    }
    let Ok(Form(form)) = form else {
        return Err(message(
            StatusCode::BAD_REQUEST,
            lang,
            t.bad_request_title,
            t.bad_request_text,
            token,
        ));
    };
    if !csrf_holds(state, token, &form.csrf) {
        return Err(message(
            StatusCode::FORBIDDEN,
            lang,
            t.forbidden_title,
            t.forbidden_text,
            token,
        ));
    }
    Ok((lang, access, form))
}

/// `POST /sign/{token}/sign`: the confirmed signature.
#[tracing::instrument(skip_all)]
async fn sign(
    State(state): State<AppState>,
    Extension(auth): Extension<Arc<SignerAuthService>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    act(state, &auth, token, headers, form, Action::Sign).await
}

/// `POST /sign/{token}/reject`: the order ends REJECTED with the optional reason.
#[tracing::instrument(skip_all)]
async fn reject(
    State(state): State<AppState>,
    Extension(auth): Extension<Arc<SignerAuthService>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    act(state, &auth, token, headers, form, Action::Reject).await
}

async fn act(
    state: AppState,
    auth: &SignerAuthService,
    token: String,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
    action: Action,
) -> Response {
    let (lang, access, form) = match check_post(&state, &token, form, &headers).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let t = lang.text();
    if !authenticated(auth, &access, &token, &headers) {
        return message(
            StatusCode::FORBIDDEN,
            lang,
            t.forbidden_title,
            t.code_required,
            &token,
        );
    }
    let order_id = access.order.order_id;
    let internal_id = access.task().person.internal_id.clone();
    let outcome = match action {
        Action::Sign => state.orders.sign_as(order_id, &internal_id).await,
        Action::Reject => {
            let reason = form
                .reason
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(|r| r.chars().take(1000).collect::<String>());
            state
                .orders
                .reject_as(order_id, &internal_id, reason.as_deref())
                .await
        }
    };
    match outcome {
        Ok(_) => redirect(&format!("/sign/{token}?view=order&lang={}", lang.code())),
        Err(OrderError::NotFound(_)) => not_found(lang),
        // Someone else's action got there first (the order ended meanwhile).
        Err(OrderError::Rule(_)) => message(
            StatusCode::CONFLICT,
            lang,
            t.conflict_title,
            t.order_ended,
            &token,
        ),
        // No timestamp or validation data now (fail closed): nothing was recorded, the signer
        // may try again.
        Err(OrderError::TimestampUnavailable(error)) => {
            tracing::warn!(order.id = %order_id, %error, "a signature waits for the timestamp authority");
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                lang,
                t.unavailable_title,
                t.unavailable_text,
                &token,
            )
        }
        Err(error @ (OrderError::Internal(_) | OrderError::Upload(_) | OrderError::People(_))) => {
            tracing::error!(order.id = %order_id, error = format!("{error:#}"), "a signer's action failed");
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                lang,
                t.unavailable_title,
                t.unavailable_text,
                &token,
            )
        }
    }
}

/// A 303 to `location` (POST-redirect-GET).
fn redirect(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    secure_headers(response.headers_mut());
    response
}

/// `POST /sign/{token}/code` (`email-otp`): mails the signer a fresh code.
#[tracing::instrument(skip_all)]
async fn send_code(
    State(state): State<AppState>,
    Extension(auth): Extension<Arc<SignerAuthService>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let (lang, access, _) = match check_post(&state, &token, form, &headers).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let t = lang.text();
    if auth.mode_for(&access.order) == SignerAuth::Link {
        return redirect(&format!("/sign/{token}?view=order&lang={}", lang.code()));
    }
    let mail = CodeMail {
        subject: t.code_mail_subject,
        text: t.code_mail_text,
    };
    match auth.send_code(&access, &token, mail).await {
        Ok(()) => redirect(&format!(
            "/sign/{token}?view=order&lang={}&otp=sent",
            lang.code()
        )),
        Err(OtpError::Store(error)) => {
            tracing::error!(%error, "storing a signer's code");
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                lang,
                t.unavailable_title,
                t.unavailable_text,
                &token,
            )
        }
        Err(error) => {
            tracing::warn!(order.id = %access.order.order_id, %error, "a signer's code was not sent");
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                lang,
                t.cannot_send_title,
                t.cannot_send_text,
                &token,
            )
        }
    }
}

/// `POST /sign/{token}/verify` (`email-otp`): a right code opens a session for the link.
#[tracing::instrument(skip_all)]
async fn verify_code(
    State(state): State<AppState>,
    Extension(auth): Extension<Arc<SignerAuthService>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let (lang, access, form) = match check_post(&state, &token, form, &headers).await {
        Ok(checked) => checked,
        Err(response) => return response,
    };
    let t = lang.text();
    let code = form.code.unwrap_or_default();
    let check = match auth.check_code(&access, &token, &code).await {
        Ok(check) => check,
        Err(error) => {
            tracing::error!(%error, "checking a signer's code");
            return message(
                StatusCode::SERVICE_UNAVAILABLE,
                lang,
                t.unavailable_title,
                t.unavailable_text,
                &token,
            );
        }
    };
    if check == CodeCheck::Accepted {
        let mut response = redirect(&format!("/sign/{token}?lang={}", lang.code()));
        let secure = if state.public_url.starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{SESSION_COOKIE}={}; Path=/sign/{token}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
            auth.new_session(&token),
            SESSION_LIFETIME.whole_seconds()
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(SET_COOKIE, value);
        }
        return response;
    }
    // The order page again, with the code forms and what went wrong.
    let csrf = csrf_token(&state, &token);
    let mut view = view(lang, &token, &access, &csrf, false);
    view.notice = Some(if check == CodeCheck::Wrong {
        t.code_wrong
    } else {
        t.code_dead
    });
    page_response(StatusCode::FORBIDDEN, html::order_page(&view))
}

/// `GET /sign/{token}/document`: the order's PDF as it stands (signed once ACCEPTED), shown
/// inline; answers for every state while the order exists.
#[tracing::instrument(skip_all)]
async fn document(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = choose_lang(None, &headers);
    // A signature landing between reading the row and opening the file removes the version
    // the row named: read again.
    for _ in 0..3 {
        let access = match lookup(&state, &token, lang).await {
            Ok(access) => access,
            Err(response) => return response,
        };
        let document = &access.order.document;
        let served = blob_download::serve(
            &state.blobs,
            &state.reads,
            state.reads.read_at(),
            blob_download::Download {
                key: &document.blob,
                len: document.size,
                content_type: "application/pdf",
                etag: format!("\"{}\"", document.sha256),
            },
            &headers,
        );
        match served.await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Ok(mut response) => {
                let headers = response.headers_mut();
                secure_headers(headers);
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
                let name: String = document
                    .file_name
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "._- ".contains(*c))
                    .collect();
                let name = if name.trim().is_empty() {
                    "document.pdf".to_owned()
                } else {
                    name
                };
                if let Ok(value) = HeaderValue::from_str(&format!("inline; filename=\"{name}\"")) {
                    headers.insert(CONTENT_DISPOSITION, value);
                }
                return response;
            }
            Err(error) => {
                tracing::error!(%error, "serving an order's document to a signer");
                break;
            }
        }
    }
    let t = lang.text();
    page_response(
        StatusCode::SERVICE_UNAVAILABLE,
        html::message_page(lang, t.unavailable_title, t.unavailable_text, None),
    )
}
