//! Black-box tests of the signet server: each test starts the real server on port 0 with its own
//! data directory (and, for PostgreSQL, its own schema) and talks to it over HTTP.
#![allow(clippy::unwrap_used)]

mod anonymize;
mod archive_timestamps;
mod ca;
mod cli;
mod config_check;
mod connections;
mod directory;
mod documents;
mod errors;
mod files;
mod garage;
mod health;
mod helpers;
mod jobs;
mod levels;
mod logs;
mod ltv;
mod mail;
mod object_storage;
mod openapi;
mod openssl;
mod operator;
mod order_refusals;
mod orders;
mod orders_ldap;
mod outbox;
mod pages;
mod pages_browser;
mod pages_otp;
mod pdf_bombs;
mod replicas;
mod shutdown;
mod signature_revocation;
mod signature_timestamps;
mod signer_story;
mod signers;
mod slapd;
mod store_story;
mod support;
mod tls;
mod tsa_client;
mod uploads;
mod webhooks;
