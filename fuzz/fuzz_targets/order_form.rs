//! The Automation API's unauthenticated form parsing, end to end through its router: the order
//! form of `POST /orders` (axum's multipart reader, `read_order_form`, then the person, signer,
//! date, tag and option fields, and the PDF check when everything else passes) and the small-body
//! reader of `POST /anonymize` (JSON, URL-encoded pairs or multipart without files). The parsers
//! are private to the server crate, so the router is the way in without changing server code.
//!
//! Input: the first byte picks the route (even: `/orders`, odd: `/anonymize`), the rest up to the
//! first newline is the `Content-Type`, the remainder the body. Any answer but a 5xx is fine (the
//! hostile-input campaign's standard: no 5xx, whatever the request).
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{header::CONTENT_TYPE, Request};
use axum::Router;
use libfuzzer_sys::fuzz_target;
use signet::clock::ManualClock;
use signet::config::Settings;
use signet::startup::Application;
use time::macros::datetime;
use tower::ServiceExt;

/// Allocations past the heap budget fail, so a memory bomb is a crash however brief.
#[global_allocator]
static HEAP: signet_fuzz::HeapBudget = signet_fuzz::HeapBudget;

/// The people the seeds name: INTERNAL jdoe and EXTERNAL 200001011907.
const PEOPLE: &str = r#"[
  {"source": "INTERNAL", "identifier": "sAMAccountName=jdoe", "userId": "jdoe",
   "firstName": "Jane", "lastName": "Doe", "mail": "jane.doe@example.org"},
  {"source": "EXTERNAL", "identifier": "200001011907",
   "firstName": "Elsa", "lastName": "Extern", "mail": "elsa@example.net"}
]"#;

struct Server {
    runtime: tokio::runtime::Runtime,
    router: Router,
    /// Kept so the data directory lives as long as the process.
    _data_dir: tempfile::TempDir,
}

/// One server for the whole run: a fresh SQLite data directory, a fixed clock.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let data_dir = tempfile::tempdir().expect("a temporary data directory");
        let people = data_dir.path().join("people.json");
        std::fs::write(&people, PEOPLE).expect("writing the people file");
        let mut settings = Settings {
            data_dir: data_dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().expect("an address"),
            job_interval_seconds: 0,
            directory_file: Some(people),
            ..Settings::default()
        };
        settings.automation_api.enabled = false;
        let clock = Arc::new(ManualClock::new(datetime!(2026-05-10 12:00 UTC)));
        let app = runtime
            .block_on(Application::build(settings, clock))
            .expect("the application starts");
        let router = signet::api::automation_router(app.state().clone());
        Server {
            runtime,
            router,
            _data_dir: data_dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&route, rest)) = data.split_first() else {
        return;
    };
    let path = if route % 2 == 0 {
        "/orders"
    } else {
        "/anonymize"
    };
    let (content_type, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&rest[..0], rest),
    };
    let mut request = Request::builder().method("POST").uri(path);
    if !content_type.is_empty() {
        request = request.header(CONTENT_TYPE, content_type);
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return; // not a valid header value: hyper would have refused it already
    };
    let server = server();
    let response = server
        .runtime
        .block_on(server.router.clone().oneshot(request))
        .expect("the router is infallible");
    assert!(
        !response.status().is_server_error(),
        "{path} answered {}",
        response.status()
    );
});
