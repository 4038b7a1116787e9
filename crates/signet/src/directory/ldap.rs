//! INTERNAL people from the organisation's LDAP directory (Active Directory or OpenLDAP).
//!
//! Each lookup opens its own connection, binds, runs one subtree search and hangs up. Lookups
//! happen once per INTERNAL person when an order is created, far from any hot path, and a fresh
//! connection cannot go stale (Active Directory drops idle connections, servers restart), needs no
//! reconnect logic and never carries one lookup's failure into the next. A pool is the change to
//! make if LDAP ever sits on a hot path.

use super::{ambiguous, is_attribute_name, Directory, DirectoryError, DirectoryPerson};
use super::{InternalQuery, PersonAttributes};
use crate::config::LdapSettings;
use crate::domain::PersonSource;
use anyhow::{bail, Context};
use ldap3::{ldap_escape, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions};
use std::time::Duration;

/// LDAP result code 4: the size limit was exceeded (there were more entries than we asked for).
const SIZE_LIMIT_EXCEEDED: u32 = 4;

/// Looks INTERNAL people up in LDAP; it knows no EXTERNAL people (those come from the file).
#[derive(Debug)]
pub struct LdapDirectory {
    settings: LdapSettings,
    url: String,
    timeout: Duration,
}

impl LdapDirectory {
    /// Checks the settings: a URL this build can connect to, plain attribute names in the mapping.
    pub fn new(settings: &LdapSettings) -> anyhow::Result<Self> {
        let url = settings
            .url
            .clone()
            .context("LDAP needs a URL (ldap.url)")?;
        if url.starts_with("ldaps://") {
            bail!("ldap.url: ldaps:// needs TLS support, which this build of Signet lacks; use ldap://");
        }
        if !(url.starts_with("ldap://") || url.starts_with("ldapi://")) {
            bail!("ldap.url must start with ldap:// (got {url:?})");
        }
        for (key, name) in [
            ("ldap.search_attribute", &settings.search_attribute),
            ("ldap.first_name_attribute", &settings.first_name_attribute),
            ("ldap.last_name_attribute", &settings.last_name_attribute),
            ("ldap.mail_attribute", &settings.mail_attribute),
            ("ldap.mobile_attribute", &settings.mobile_attribute),
        ] {
            if !is_attribute_name(name) {
                bail!("{key} must be a plain LDAP attribute name (got {name:?})");
            }
        }
        if settings.timeout_seconds == 0 {
            bail!("ldap.timeout_seconds must be at least 1");
        }
        Ok(LdapDirectory {
            settings: settings.clone(),
            url,
            timeout: Duration::from_secs(settings.timeout_seconds),
        })
    }

    /// Connect, bind, search; every failure to talk to the server is `Unavailable`.
    async fn search(
        &self,
        query: &InternalQuery<'_>,
    ) -> Result<Option<DirectoryPerson>, DirectoryError> {
        let unavailable = |what: &str, e: ldap3::LdapError| {
            DirectoryError::Unavailable(format!("{what} {}: {e}", self.url))
        };
        let connection = LdapConnSettings::new().set_conn_timeout(self.timeout);
        let (conn, mut ldap) = LdapConnAsync::with_settings(connection, &self.url)
            .await
            .map_err(|e| unavailable("connecting to", e))?;
        ldap3::drive!(conn);

        if let Some(bind_dn) = &self.settings.bind_dn {
            let password = self.settings.bind_password.as_deref().unwrap_or_default();
            ldap.simple_bind(bind_dn, password)
                .await
                .and_then(|result| result.success())
                .map_err(|e| unavailable("binding to", e))?;
        }

        let s = &self.settings;
        let attribute = query.attribute.unwrap_or(&s.search_attribute);
        let filter = format!("({attribute}={})", ldap_escape(query.value));
        let mut wanted = vec![
            s.search_attribute.as_str(),
            s.first_name_attribute.as_str(),
            s.last_name_attribute.as_str(),
            s.mail_attribute.as_str(),
            s.mobile_attribute.as_str(),
        ];
        if !wanted.iter().any(|w| w.eq_ignore_ascii_case(attribute)) {
            wanted.push(attribute);
        }
        // Two entries are enough to know a query is ambiguous; the server stops there.
        let result = ldap
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(&s.base_dn, Scope::Subtree, &filter, wanted)
            .await
            .map_err(|e| unavailable("searching", e))?;
        let _ = ldap.unbind().await;

        let ldap3::SearchResult(entries, outcome) = result;
        if outcome.rc == SIZE_LIMIT_EXCEEDED || entries.len() > 1 {
            return Err(ambiguous());
        }
        outcome.success().map_err(|e| unavailable("searching", e))?;
        let Some(entry) = entries.into_iter().next() else {
            return Ok(None);
        };
        let entry = SearchEntry::construct(entry);
        let first = |name: &str| -> Option<String> {
            entry
                .attrs
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .and_then(|(_, values)| values.first().cloned())
        };
        let user_id = first(&s.search_attribute)
            .or_else(|| first(attribute))
            .unwrap_or_else(|| query.value.to_owned());
        Ok(Some(DirectoryPerson {
            user_id,
            attributes: PersonAttributes {
                first_name: first(&s.first_name_attribute),
                last_name: first(&s.last_name_attribute),
                mail: first(&s.mail_attribute),
                mobile: first(&s.mobile_attribute),
            }
            .without_blanks(),
        }))
    }
}

#[async_trait::async_trait]
impl Directory for LdapDirectory {
    /// INTERNAL people only; an EXTERNAL lookup finds nobody.
    #[tracing::instrument(name = "directory.ldap.lookup", skip_all, fields(directory.source = %source))]
    async fn lookup(
        &self,
        source: PersonSource,
        identifier: &str,
    ) -> Result<Option<DirectoryPerson>, DirectoryError> {
        if source == PersonSource::External {
            return Ok(None);
        }
        let query = InternalQuery::parse(identifier)?;
        match tokio::time::timeout(self.timeout, self.search(&query)).await {
            Ok(found) => {
                if let Err(DirectoryError::Unavailable(reason)) = &found {
                    tracing::warn!(directory.error = %reason, "LDAP lookup failed");
                }
                found
            }
            Err(_) => {
                tracing::warn!(
                    directory.timeout_seconds = self.timeout.as_secs(),
                    "LDAP lookup timed out"
                );
                Err(DirectoryError::Unavailable(format!(
                    "{} did not answer within {} s",
                    self.url,
                    self.timeout.as_secs()
                )))
            }
        }
    }
}
