//! The operator commands beside `serve`: configuration check, API keys, signers, orders,
//! backup and restore, migrate-blobs. Each family has its file; what they share is here: loading and checking
//! the settings, refusing a data directory that does not exist, opening the store, and
//! printing a table (or JSON with `--json`).

pub mod api_keys;
pub mod backup;
pub mod blobs;
pub mod config;
pub mod orders;
pub mod signers;

use clap::Args;
use serde::Serialize;
use std::sync::Arc;

use signet::config::Settings;
use signet::store::sql::SqlStore;

use crate::StoreArgs;

/// How a listing is printed.
#[derive(Args, Clone, Copy)]
pub struct OutputArgs {
    /// Print JSON (one document) instead of a table, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Loads the settings a command's flags, file and environment give, and checks their values.
pub fn load_settings(args: &StoreArgs, overrides: impl Serialize) -> anyhow::Result<Settings> {
    let settings = Settings::load(args.config.as_deref(), overrides)?;
    settings.check()?;
    Ok(settings)
}

/// Every command but `serve` works on an existing installation: a mistyped `--data-dir` must
/// not quietly create a new CA and database. `--init` says a new one is wanted.
pub fn require_data_dir(settings: &Settings, init: bool) -> anyhow::Result<()> {
    if init || settings.data_dir.is_dir() {
        return Ok(());
    }
    anyhow::bail!(
        "the data directory {} does not exist (give --init to create a new installation there)",
        settings.data_dir.display()
    )
}

/// Loads the settings, requires the data directory, opens the store (migrating it).
pub async fn open(args: &StoreArgs) -> anyhow::Result<(Settings, Arc<SqlStore>)> {
    let settings = load_settings(args, args)?;
    require_data_dir(&settings, args.init)?;
    signet::startup::prepare_data_dir(&settings.data_dir)?;
    let store = signet::store::connect_sql_with(
        &settings.database_url(),
        settings.database_max_connections,
    )
    .await?;
    Ok((settings, store))
}

/// Prints `rows` as JSON, or as a table with `header` when not `json`.
pub fn print_rows<T: Serialize>(
    output: OutputArgs,
    items: &[T],
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if output.json {
        println!("{}", serde_json::to_string_pretty(items)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    print_table(header, &rows);
    Ok(())
}

/// Columns padded to their widest cell, two spaces apart.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// A time as RFC 3339 (UTC), for tables.
pub fn show_time(time: time::OffsetDateTime) -> String {
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| time.unix_timestamp().to_string())
}
