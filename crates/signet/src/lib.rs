//! Signet, the document-signing server: the CloudSigner-compatible remote-signing API and (soon)
//! signing workflows, over one PDF engine, one CA and one store. `main.rs` is a thin CLI over this.

pub mod api;
pub mod api_key;
pub mod backup;
pub mod clock;
pub mod config;
pub mod data_dir;
pub mod directory;
pub mod domain;
pub mod jobs;
pub mod mail;
pub mod migrate_blobs;
pub mod pki;
pub mod services;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod webhooks;
