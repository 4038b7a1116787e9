//! The process's log: `SIGNET_LOG` picks what is logged (an `EnvFilter`), `SIGNET_LOG_FORMAT`
//! how (`text`, the default, or `json`, one object per line). Both are read from the
//! environment before the configuration: the log must exist to report a configuration it
//! cannot read. Colour codes only go to a terminal (and never with `NO_COLOR` set). Lines are
//! written by a background thread ([`super::log_writer`]); call [`flush`] before exiting.

use std::io::IsTerminal;

/// What is logged when `SIGNET_LOG` is unset: Signet's own lines, the access and audit lines.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_http=info";

/// How each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (`timestamp level target: message field=value`).
    #[default]
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "text" | "" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "SIGNET_LOG_FORMAT must be json or text, not {other:?}"
            )),
        }
    }
}

/// Installs the process's subscriber from `SIGNET_LOG` and `SIGNET_LOG_FORMAT`; an unknown
/// format is an error (a typo must not silently give another format than asked).
pub fn init_from_env() -> Result<(), String> {
    let format: LogFormat = std::env::var("SIGNET_LOG_FORMAT")
        .unwrap_or_default()
        .parse()?;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    init(format, colour);
    Ok(())
}

/// Writes the log lines still waiting for the background thread.
pub fn flush() {
    super::log_writer::flush();
}

/// Installs the subscriber (once per process; later calls do nothing).
pub fn init(format: LogFormat, colour: bool) {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("SIGNET_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Lines go to standard error from a background thread (see `log_writer`), or straight
    // there when that thread cannot be started.
    let writer = match super::log_writer::LogWriter::install() {
        Some(writer) => BoxMakeWriter::new(writer),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Its own report of a failed write is an eprintln!, which panics when standard error
        // is closed (a log pipe that went away): a server must keep serving without its log.
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colour).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_format_is_json_or_text_and_nothing_else() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert_eq!("".parse::<LogFormat>(), Ok(LogFormat::Text));
        let refused = "jsno".parse::<LogFormat>().unwrap_err();
        assert!(refused.contains("jsno"), "{refused}");
    }
}
