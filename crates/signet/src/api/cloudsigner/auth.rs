//! Authentication for the CloudSigner surface: a bearer API key, or a client certificate that
//! chains to the main listener's client CA (`--client-ca`; see `startup::tls`).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use crate::api_key::hash_api_key;
use crate::services::reads::ReadAt;
use crate::startup::tls::ClientCertificate;
use crate::state::AppState;

/// Lets the request through only with `Authorization: Bearer <a known key>`, or, without an
/// `Authorization` header, over a TLS connection whose client certificate chains to the client CA
/// (the client is then named by the certificate's subject CN, see [`ClientCertificate`]).
pub async fn require_api_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // The one read of the change signal this request makes: the key check and the handler's
    // cached lookups all read at it (see [`ReadAt`]).
    let at = state.reads.read_at();
    request.extensions_mut().insert(at);
    let header = request.headers().get(AUTHORIZATION);
    if header.is_none() {
        match request.extensions().get::<ClientCertificate>() {
            Some(ClientCertificate::Trusted(client)) => {
                tracing::debug!(client = %client, "authenticated by client certificate");
                return Ok(next.run(request).await);
            }
            Some(ClientCertificate::Untrusted) => {
                return Err(ApiError::unauthorized(
                    "the client certificate does not chain to the client CA (or is not valid now); \
                     send an API key as Authorization: Bearer <key>, or a certificate from the client CA",
                ));
            }
            None => {}
        }
    }
    let key = header
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .filter(|key| !key.is_empty())
        .ok_or_else(|| ApiError::unauthorized("send an API key as Authorization: Bearer <key>"))?;
    if !state.reads.api_key_valid(&hash_api_key(key), at).await? {
        return Err(ApiError::unauthorized("the API key is not valid"));
    }
    Ok(next.run(request).await)
}

/// A handler's [`ReadAt`]: the one [`require_api_key`] read, or (on a route without it) now.
impl FromRequestParts<AppState> for ReadAt {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ReadAt>()
            .copied()
            .unwrap_or_else(|| state.reads.read_at()))
    }
}

/// The token of a `Bearer` credential: the scheme is case-insensitive (RFC 9110 §11.1), and one
/// or more spaces separate it from the token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer k", "bearer k", "BEARER k", "bEaReR   k"] {
            assert_eq!(bearer_token(value), Some("k"), "{value}");
        }
        for value in ["Basic k", "Bearerk", "Bearer", "Token k"] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }
}
