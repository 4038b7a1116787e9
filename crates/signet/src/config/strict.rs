//! Configuration that refuses mistakes: a key in the TOML file or a `SIGNET_*` variable that no
//! setting has is an error naming it and the nearest known one (`automation_api.enable` → did
//! you mean `automation_api.enabled`?), instead of a setting silently left at its default; and
//! values that would only fail later (a URL that does not parse, a zero interval, a file that
//! is not there) are refused at start-up, each error naming the key and the value.
//!
//! The known keys are read off [`Settings::default()`] serialized, so a field added to the
//! settings is known without a list to keep in step. An `Option` field serializes as `null`:
//! it is a known key, and since it may hold a table, keys below it are left to serde's
//! `deny_unknown_fields`, whose error is given the same suggestion.

use figment::value::{Dict, Value};
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use super::Settings;

/// `SIGNET_*` variables that are not settings but are legitimately in an operator's or a
/// developer's environment: the log filter, test and CI helpers, the load generator's key.
/// Names are without the `SIGNET_` prefix.
pub const NON_SETTINGS_VARIABLES: &[&str] = &[
    // tracing's filter (`SIGNET_LOG=debug`).
    "LOG",
    // Start-up options read before the settings are (the ops helper's; harmless when they are
    // settings too: a known setting is never filtered out).
    "LOG_FORMAT",
    "SHUTDOWN_GRACE_SECONDS",
    // The test suite's oracles and database, CI's cache.
    "ORACLE_VENV",
    "TEST_POSTGRES_URL",
    "CI_CACHE",
    // bench/ load generator.
    "API_KEY",
    // fuzz/ scripts.
    "FUZZ_WORK",
    "FUZZ_TARGET_DIR",
    "FUZZ_JOBS",
];

/// Prefixes of `SIGNET_*` variables that belong to the test suite, CI, benchmarks and fuzzing
/// (`SIGNET_TEST_POSTGRES_URL`, `SIGNET_FUZZ_JOBS`, …): a spawned `signet` inherits them.
pub const NON_SETTINGS_PREFIXES: &[&str] = &["TEST_", "CI_", "BENCH_", "FUZZ_"];

/// The dotted keys the settings have: leaves (scalars, lists, unset options) and tables.
#[derive(Debug, Clone)]
pub struct KnownKeys {
    leaves: BTreeSet<String>,
    tables: BTreeSet<String>,
    /// Leaves whose default is unset: they may hold a table, so keys below them are serde's to judge.
    open: BTreeSet<String>,
}

impl KnownKeys {
    /// The keys of [`Settings`], computed once.
    pub fn of_settings() -> &'static KnownKeys {
        static KEYS: OnceLock<KnownKeys> = OnceLock::new();
        KEYS.get_or_init(|| {
            let value = serde_json::to_value(Settings::default()).unwrap_or_default();
            let mut keys = KnownKeys {
                leaves: BTreeSet::new(),
                tables: BTreeSet::new(),
                open: BTreeSet::new(),
            };
            keys.walk(String::new(), &value);
            keys
        })
    }

    fn walk(&mut self, prefix: String, value: &serde_json::Value) {
        match value {
            serde_json::Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
                if !prefix.is_empty() {
                    self.tables.insert(prefix.clone());
                }
                for (name, inner) in map {
                    let key = if prefix.is_empty() {
                        name.clone()
                    } else {
                        format!("{prefix}.{name}")
                    };
                    self.walk(key, inner);
                }
            }
            serde_json::Value::Null | serde_json::Value::Object(_) => {
                self.open.insert(prefix.clone());
                self.leaves.insert(prefix);
            }
            _ => {
                self.leaves.insert(prefix);
            }
        }
    }

    /// Whether `key` (dotted) names a setting.
    pub fn knows(&self, key: &str) -> bool {
        self.leaves.contains(key)
            || self.tables.contains(key)
            || self.open.iter().any(|open| {
                key.strip_prefix(open.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
            })
    }

    /// The top-level tables (`automation_api`, `ldap`, …), for mapping flat environment names.
    pub fn tables(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().map(String::as_str)
    }

    /// Every leaf key, dotted.
    pub fn leaves(&self) -> impl Iterator<Item = &str> {
        self.leaves.iter().map(String::as_str)
    }

    /// The known key nearest to `key`, when one is near enough to be a likely typo.
    pub fn nearest(&self, key: &str) -> Option<&str> {
        nearest(
            key,
            self.leaves
                .iter()
                .chain(self.tables.iter())
                .map(String::as_str),
        )
    }
}

/// The environment name of a settings key: `automation_api.enabled` → `SIGNET_AUTOMATION_API_ENABLED`,
/// with the few historical short forms (`SIGNET_AUTOMATION_LISTEN`, `SIGNET_WEBHOOK_URL`, …).
pub fn env_name(key: &str) -> String {
    let flat = match key {
        "automation_api.listen" => "automation_listen".to_owned(),
        "webhooks.urls" => "webhook_url".to_owned(),
        "webhooks.secret" => "webhook_secret".to_owned(),
        _ => key.replace('.', "_"),
    };
    format!("SIGNET_{}", flat.to_ascii_uppercase())
}

/// One refusal of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// All the refusals found, one per line when shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the configuration is refused:")?;
        for error in &self.0 {
            writeln!(f, "  - {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

fn did_you_mean(nearest: Option<&str>) -> String {
    nearest.map_or_else(String::new, |known| format!("; did you mean `{known}`?"))
}

/// The keys of the TOML file at `path` that no setting has.
pub fn unknown_file_keys(path: &Path, dict: &Dict) -> Vec<ConfigError> {
    let known = KnownKeys::of_settings();
    let mut errors = Vec::new();
    walk_dict(String::new(), dict, &mut |key| {
        if !known.knows(key) {
            errors.push(ConfigError(format!(
                "unknown key `{key}` in {}{}",
                path.display(),
                did_you_mean(known.nearest(key))
            )));
            false
        } else {
            true
        }
    });
    errors
}

/// Calls `check` on every key of `dict` (tables first, then what is inside them, unless
/// `check` refused the table itself).
fn walk_dict(prefix: String, dict: &Dict, check: &mut dyn FnMut(&str) -> bool) {
    for (name, value) in dict {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if !check(&key) {
            continue;
        }
        if let Value::Dict(_, inner) = value {
            walk_dict(key, inner, check);
        }
    }
}

/// Whether a `SIGNET_<name>` variable (name without the prefix) is a non-setting one that the
/// settings must not see.
pub fn is_non_setting_variable(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    (NON_SETTINGS_VARIABLES.contains(&upper.as_str())
        || NON_SETTINGS_PREFIXES
            .iter()
            .any(|prefix| upper.starts_with(prefix)))
        && !KnownKeys::of_settings().knows(&super::nest_env_key(name))
}

/// The `SIGNET_*` variables of `vars` that are neither settings nor on the allow-list.
pub fn unknown_variables(vars: impl Iterator<Item = (String, String)>) -> Vec<ConfigError> {
    let known = KnownKeys::of_settings();
    let mut errors = Vec::new();
    for (name, _) in vars {
        let Some(rest) = name.strip_prefix("SIGNET_") else {
            continue;
        };
        if is_non_setting_variable(rest) || known.knows(&super::nest_env_key(rest)) {
            continue;
        }
        let candidates: Vec<String> = known
            .leaves()
            .map(env_name)
            .chain(NON_SETTINGS_VARIABLES.iter().map(|n| format!("SIGNET_{n}")))
            .collect();
        errors.push(ConfigError(format!(
            "unknown environment variable `{name}`{}",
            did_you_mean(nearest(&name, candidates.iter().map(String::as_str)))
        )));
    }
    errors
}

/// Turns figment's extraction errors into refusals that name the dotted key and the value.
pub fn from_figment(error: figment::Error) -> Vec<ConfigError> {
    error
        .into_iter()
        .map(|error| {
            let mut path: Vec<&str> = error.path.iter().map(String::as_str).collect();
            let message = match &error.kind {
                figment::error::Kind::UnknownField(field, expected) => {
                    path.push(field);
                    let key = path.join(".");
                    let prefix = key.rsplit_once('.').map(|(table, _)| table);
                    let suggestion =
                        nearest(field, expected.iter().copied()).map(|name| match prefix {
                            Some(table) => format!("{table}.{name}"),
                            None => name.to_owned(),
                        });
                    format!("unknown key `{key}`{}", did_you_mean(suggestion.as_deref()))
                }
                kind => {
                    let key = path.join(".");
                    if key.is_empty() {
                        kind.to_string()
                    } else {
                        format!("`{key}`: {kind}")
                    }
                }
            };
            let source = error
                .metadata
                .as_ref()
                .map(|metadata| match &metadata.source {
                    Some(figment::Source::File(file)) => format!(" (in {})", file.display()),
                    _ => format!(" (from {})", metadata.name),
                })
                .unwrap_or_default();
            ConfigError(format!("{message}{source}"))
        })
        .collect()
}

/// Checks the values that parse as their types but would fail later, or never work.
pub fn check_values(settings: &Settings) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut url = |key: &str, value: Option<&str>, schemes: &[&str]| {
        let Some(value) = value else { return };
        let shown = redact(value);
        match reqwest::Url::parse(value) {
            Ok(parsed) if schemes.contains(&parsed.scheme()) => {
                if parsed.host_str().is_none_or(str::is_empty) {
                    errors.push(ConfigError(format!("`{key}` = {shown:?} has no host")));
                }
            }
            Ok(parsed) => errors.push(ConfigError(format!(
                "`{key}` = {shown:?}: the scheme {:?} is not one of {}",
                parsed.scheme(),
                schemes.join(", ")
            ))),
            Err(error) => errors.push(ConfigError(format!(
                "`{key}` = {shown:?} is not a URL: {error}"
            ))),
        }
    };
    url(
        "public_url",
        settings.public_url.as_deref(),
        &["http", "https"],
    );
    url("smtp.url", settings.smtp.url.as_deref(), &["smtp", "smtps"]);
    url("tsa.url", settings.tsa.url.as_deref(), &["http", "https"]);
    url("ldap.url", settings.ldap.url.as_deref(), &["ldap", "ldaps"]);
    for webhook in &settings.webhooks.urls {
        url("webhooks.urls", Some(webhook), &["http", "https"]);
    }
    if let Some(database) = settings.database_url.as_deref() {
        if database.starts_with("postgres:") || database.starts_with("postgresql:") {
            url("database_url", Some(database), &["postgres", "postgresql"]);
        } else if !database.starts_with("sqlite:") {
            errors.push(ConfigError(format!(
                "`database_url` = {:?}: expected sqlite:PATH or postgres://…",
                redact(database)
            )));
        }
    }
    if let Err(error) =
        crate::store::blob_backend::BlobUrl::parse(settings.blob_url.as_deref(), &settings.data_dir)
    {
        errors.push(ConfigError(format!("`blob_url` = {error}")));
    }
    if settings.database_max_connections < 1 {
        errors.push(ConfigError(format!(
            "`database_max_connections` = {}: must be at least 1",
            settings.database_max_connections
        )));
    }
    if settings.job_interval_seconds < 1 {
        errors.push(ConfigError(format!(
            "`job_interval_seconds` = {}: must be at least 1",
            settings.job_interval_seconds
        )));
    }
    if settings.certificate_validity_days < 1 {
        errors.push(ConfigError(format!(
            "`certificate_validity_days` = {}: certificates must be valid for at least 1 day",
            settings.certificate_validity_days
        )));
    }
    let mut file = |key: &str, path: Option<&Path>| {
        if let Some(path) = path {
            if !path.is_file() {
                errors.push(ConfigError(format!(
                    "`{key}` = {:?}: no such file",
                    path.display().to_string()
                )));
            }
        }
    };
    file("directory_file", settings.directory_file.as_deref());
    file("tsa.ca", settings.tsa.ca.as_deref());
    errors
}

/// A value with a URL's password hidden (errors and `config check` never show secrets).
pub fn redact(value: &str) -> String {
    match reqwest::Url::parse(value) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => value.to_owned(),
    }
}

/// The settings as TOML, secrets hidden: every key whose name says password or secret, and
/// the password of every URL. Unset options are listed as comments, so every key is shown.
pub fn effective_toml(settings: &Settings) -> String {
    let mut value = serde_json::to_value(settings).unwrap_or_default();
    if let serde_json::Value::Object(map) = &mut value {
        map.insert(
            "database_url".into(),
            serde_json::Value::String(settings.database_url()),
        );
    }
    let mut unset = Vec::new();
    hide_secrets(String::new(), &mut value, &mut unset);
    let shown = toml::to_string(&value).unwrap_or_else(|e| format!("# cannot show: {e}\n"));
    let mut out = String::new();
    for key in &unset {
        out.push_str(&format!("# {key} is unset\n"));
    }
    if !unset.is_empty() {
        out.push('\n');
    }
    out.push_str(&shown);
    out
}

fn hide_secrets(prefix: String, value: &mut serde_json::Value, unset: &mut Vec<String>) {
    let serde_json::Value::Object(map) = value else {
        return;
    };
    let mut null_keys = Vec::new();
    for (name, inner) in map.iter_mut() {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match inner {
            serde_json::Value::Null => {
                unset.push(key);
                null_keys.push(name.clone());
            }
            serde_json::Value::Object(_) => hide_secrets(key, inner, unset),
            serde_json::Value::String(text) => {
                let lower = name.to_ascii_lowercase();
                if lower.contains("password") || lower.contains("secret") {
                    *text = "***".into();
                } else {
                    *text = redact(text);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    if let serde_json::Value::String(text) = item {
                        *text = redact(text);
                    }
                }
            }
            _ => {}
        }
    }
    for name in null_keys {
        map.remove(&name);
    }
}

/// Levenshtein distance, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// The candidate nearest to `key`, if within a third of its length (a typo, not another word).
fn nearest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let key_lower = key.to_ascii_lowercase();
    candidates
        .map(|candidate| {
            (
                distance(&key_lower, &candidate.to_ascii_lowercase()),
                candidate,
            )
        })
        .filter(|(d, _)| *d <= (key.chars().count() / 3).max(2))
        .min_by_key(|(d, candidate)| (*d, candidate.len()))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_settings_key_is_known_with_its_environment_name_round_tripping() {
        let known = KnownKeys::of_settings();
        for key in [
            "data_dir",
            "database_url",
            "automation_api.enabled",
            "automation_api.listen",
            "tsa.password",
            "webhooks.urls",
            "ldap.bind_password",
            "smtp.url",
        ] {
            assert!(known.knows(key), "{key}");
        }
        for key in known.leaves() {
            let env = env_name(key);
            let rest = env.strip_prefix("SIGNET_").unwrap();
            assert_eq!(super::super::nest_env_key(rest), key, "{env}");
        }
    }

    #[test]
    fn the_readme_configuration_table_names_every_setting_with_its_variable() {
        let readme = include_str!("../../../../README.md");
        let table: String = readme
            .lines()
            .filter(|line| line.starts_with("| "))
            .collect::<Vec<_>>()
            .join("\n");
        let missing: Vec<String> = KnownKeys::of_settings()
            .leaves()
            .filter(|key| {
                !table.contains(&format!("`{key}`"))
                    || !table.contains(&format!("`{}", env_name(key)))
            })
            .map(|key| format!("{key} ({})", env_name(key)))
            .collect();
        assert!(
            missing.is_empty(),
            "README.md's configuration table lacks {missing:?}"
        );
    }

    #[test]
    fn a_typo_finds_the_nearest_key() {
        let known = KnownKeys::of_settings();
        assert_eq!(
            known.nearest("automation_api.enable"),
            Some("automation_api.enabled")
        );
        assert_eq!(
            known.nearest("job_intervall_seconds"),
            Some("job_interval_seconds")
        );
        assert_eq!(known.nearest("completely_different"), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn unknown_variables_are_named_with_the_nearest_known_one() {
        let errors = unknown_variables(
            [
                ("SIGNET_JOB_INTERVAL_SECOND".to_owned(), "5".to_owned()),
                ("SIGNET_LOG".to_owned(), "debug".to_owned()),
                ("SIGNET_ORACLE_VENV".to_owned(), "/v".to_owned()),
                ("SIGNET_TEST_SOMETHING_NEW".to_owned(), "1".to_owned()),
                ("SIGNET_WEBHOOK_URL".to_owned(), "http://x/".to_owned()),
                ("PATH".to_owned(), "/bin".to_owned()),
            ]
            .into_iter(),
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].0.contains("SIGNET_JOB_INTERVAL_SECOND"),
            "{errors:?}"
        );
        assert!(
            errors[0].0.contains("SIGNET_JOB_INTERVAL_SECONDS"),
            "{errors:?}"
        );
    }

    #[test]
    fn the_effective_configuration_hides_every_secret() {
        let mut settings = Settings {
            database_url: Some("postgres://app:dbpass@db.example/signet".into()),
            ..Settings::default()
        };
        settings.smtp.url = Some("smtp://mailer:smtppass@mail.example:25".into());
        settings.smtp.password = Some("smtppass2".into());
        settings.webhooks.secret = Some("whsec_webhooksecret".into());
        settings.tsa.password = Some("tsapass".into());
        settings.ldap.bind_password = Some("ldappass".into());
        let shown = effective_toml(&settings);
        for secret in ["dbpass", "smtppass", "webhooksecret", "tsapass", "ldappass"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("db.example"), "{shown}");
        assert!(shown.contains("# tsa.url is unset"), "{shown}");
        let reparsed: toml::Value = toml::from_str(&shown).unwrap();
        assert!(reparsed.get("automation_api").is_some());
    }
}
