//! The OpenAPI 3.1 documents of Signet's two APIs, generated from the handlers' `#[utoipa::path]`
//! attributes and the request and response types' schemas, and Swagger UI to read them.
//!
//! `GET /openapi.json` on the main listener describes the CloudSigner API (at the root and under
//! `/api/cloudsigner`), the CA, the timestamp authority and the OCSP responder; on the Automation
//! listener it describes the Automation API (at the root and under `/api/document_signing`).
//! `GET /docs` on each listener is Swagger UI (vendored, see `ui.rs`) reading that listener's
//! document. Every path is served twice by the routers; the copies under the prefix are made
//! here from the root ones, with their own operation ids, so the two never drift apart.
//! The signer pages are not described: they are HTML for people, not an API.

pub mod schemas;
mod ui;

use std::sync::LazyLock;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::encoding::EncodingBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi as Document};
use utoipa::OpenApi;

use crate::api::{automation, cloudsigner};

/// Which listener a document or Swagger UI is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The main listener: CloudSigner API, CA, TSA, OCSP.
    Main,
    /// The Automation API listener.
    Automation,
}

/// `/openapi.json` and `/docs` (with Swagger UI's files) for `surface`'s listener.
pub fn router<S: Clone + Send + Sync + 'static>(surface: Surface) -> Router<S> {
    let document: &'static [u8] = match surface {
        Surface::Main => MAIN_JSON.as_slice(),
        Surface::Automation => AUTOMATION_JSON.as_slice(),
    };
    Router::new()
        .route(
            "/openapi.json",
            get(move || async move {
                (
                    [
                        (CONTENT_TYPE, "application/json"),
                        (CACHE_CONTROL, "no-cache"),
                    ],
                    document,
                )
                    .into_response()
            }),
        )
        .route("/docs", get(ui::page))
        .route("/docs/{file}", get(ui::asset))
}

static MAIN_JSON: LazyLock<Vec<u8>> = LazyLock::new(|| to_json(&main_document()));
static AUTOMATION_JSON: LazyLock<Vec<u8>> = LazyLock::new(|| to_json(&automation_document()));

fn to_json(document: &Document) -> Vec<u8> {
    // A document made of our own types always serializes; an empty one would say so loudly in
    // the tests that validate it.
    serde_json::to_vec_pretty(document).unwrap_or_default()
}

/// The main listener's document.
pub fn main_document() -> Document {
    let mut document = cloudsigner::signers::Docs::openapi();
    document.merge(cloudsigner::documents::Docs::openapi());
    declare_pdf_part(&mut document, "/documents");
    // One handler serves both upload paths.
    copy_path(
        &mut document,
        "/documents",
        "/documents/upload",
        "_upload_path",
    );
    document.merge(cloudsigner::ca::Docs::openapi());
    document.merge(cloudsigner::ltv::Docs::openapi());
    copy_under_prefix(&mut document, cloudsigner::PRODUCT_PREFIX, "_product");
    // The operator's endpoints are not part of the product's API: no prefixed copies.
    document.merge(crate::api::health::HealthDocs::openapi());
    document.merge(crate::api::health::MetricsDocs::openapi());
    document.info = InfoBuilder::new()
        .title("Signet: CloudSigner API, CA, timestamp authority, OCSP")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The CloudSigner-compatible remote-signing API (every route also under \
             `/api/cloudsigner`, as the product serves it), the internal CA's certificate and \
             CRL, the RFC 3161 timestamp authority and the RFC 6960 OCSP responder. Every \
             failure answers the one error body (`ErrorBody`).",
        ))
        .build();
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "apiKey",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API key made with `signet api-key create`"))
                .build(),
        ),
    );
    document
}

/// The Automation listener's document.
pub fn automation_document() -> Document {
    let mut document = automation::Docs::openapi();
    copy_under_prefix(
        &mut document,
        automation::PRODUCT_PREFIX,
        "_document_signing",
    );
    document.merge(crate::api::health::HealthDocs::openapi());
    document.info = InfoBuilder::new()
        .title("Signet: Automation API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Signing orders and user anonymization (PhenixID Signing Workflow compatible), \
             every route also under `/api/document_signing`. On its own listener, protected \
             by mutual TLS when configured. Every failure answers the one error body \
             (`ErrorBody`).",
        ))
        .build();
    document
}

/// The upload's `file` part must be declared `application/pdf` (the handler refuses others); the
/// path attribute cannot say so, OpenAPI's `encoding` can.
fn declare_pdf_part(document: &mut Document, path: &str) {
    let form = document
        .paths
        .paths
        .get_mut(path)
        .and_then(|item| item.post.as_mut())
        .and_then(|operation| operation.request_body.as_mut())
        .and_then(|body| body.content.get_mut("multipart/form-data"));
    if let Some(form) = form {
        form.encoding.insert(
            "file".to_owned(),
            EncodingBuilder::new()
                .content_type(Some("application/pdf"))
                .build(),
        );
    }
}

/// The operations of a path item, for renaming their ids.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Describes `to` as `from` (the same handler), with operation ids suffixed by `suffix`.
fn copy_path(document: &mut Document, from: &str, to: &str, suffix: &str) {
    if let Some(item) = document.paths.paths.get(from) {
        let mut copy = item.clone();
        for operation in operations(&mut copy) {
            if let Some(id) = operation.operation_id.as_mut() {
                id.push_str(suffix);
            }
        }
        document.paths.paths.insert(to.to_owned(), copy);
    }
}

/// Adds a copy of every path under `prefix`.
fn copy_under_prefix(document: &mut Document, prefix: &str, suffix: &str) {
    let paths: Vec<String> = document.paths.paths.keys().cloned().collect();
    for path in paths {
        copy_path(document, &path, &format!("{prefix}{path}"), suffix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_root_path_has_its_prefixed_copy_with_distinct_operation_ids() {
        for (document, prefix) in [
            (main_document(), cloudsigner::PRODUCT_PREFIX),
            (automation_document(), automation::PRODUCT_PREFIX),
        ] {
            let paths = &document.paths.paths;
            // The operator's endpoints belong to no product: they have no prefixed copy.
            let root: Vec<&String> = paths
                .keys()
                .filter(|p| !p.starts_with(prefix))
                .filter(|p| !["/healthz", "/readyz", "/metrics"].contains(&p.as_str()))
                .collect();
            assert!(!root.is_empty());
            for path in &root {
                assert!(paths.contains_key(&format!("{prefix}{path}")), "{path}");
            }
            let mut ids = std::collections::HashSet::new();
            for item in paths.values() {
                let mut item = item.clone();
                for operation in operations(&mut item) {
                    let id = operation.operation_id.clone().unwrap_or_default();
                    assert!(ids.insert(id.clone()), "duplicate operation id {id}");
                }
            }
        }
    }

    #[test]
    fn the_uploads_file_part_is_declared_a_pdf_under_both_paths_and_the_prefix() {
        let json: serde_json::Value = serde_json::from_slice(&MAIN_JSON).unwrap();
        for path in [
            "/documents",
            "/documents/upload",
            "/api/cloudsigner/documents",
            "/api/cloudsigner/documents/upload",
        ] {
            let form =
                &json["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"];
            assert_eq!(
                form["encoding"]["file"]["contentType"], "application/pdf",
                "{path}"
            );
        }
    }

    #[test]
    fn the_documents_are_openapi_3_1() {
        let json: serde_json::Value = serde_json::from_slice(&MAIN_JSON).unwrap();
        assert_eq!(json["openapi"], "3.1.0");
        let json: serde_json::Value = serde_json::from_slice(&AUTOMATION_JSON).unwrap();
        assert_eq!(json["openapi"], "3.1.0");
    }
}
