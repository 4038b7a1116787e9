//! The people directory: given a person's source and identifier, who they are (name, mail,
//! mobile). Signing orders name people only by identifier; the directory fills in the rest, and the
//! request's own attributes only fill what the directory lacks (the reference product's source
//! rule). INTERNAL people come from LDAP when it is configured, else from the directory file;
//! EXTERNAL people (personal numbers) always come from the file.

mod file;
mod ldap;

pub use file::{FileDirectory, FilePerson};
pub use ldap::LdapDirectory;

use crate::config::Settings;
use crate::domain::PersonSource;
use std::sync::Arc;

/// What a lookup found (every attribute optional: a directory may lack some).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonAttributes {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub mail: Option<String>,
    pub mobile: Option<String>,
}

impl PersonAttributes {
    /// Source rule: fills only what `self` lacks from `request`. A blank value counts as lacking,
    /// on either side, so a request cannot blank out what the directory knows.
    pub fn fill_missing_from(&mut self, request: &PersonAttributes) {
        fn fill(mine: &mut Option<String>, theirs: &Option<String>) {
            if present(mine).is_none() {
                if let Some(value) = present(theirs) {
                    *mine = Some(value.to_owned());
                }
            }
        }
        fill(&mut self.first_name, &request.first_name);
        fill(&mut self.last_name, &request.last_name);
        fill(&mut self.mail, &request.mail);
        fill(&mut self.mobile, &request.mobile);
    }

    /// The same attributes with blank values dropped.
    pub(crate) fn without_blanks(self) -> Self {
        let keep = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        PersonAttributes {
            first_name: keep(self.first_name),
            last_name: keep(self.last_name),
            mail: keep(self.mail),
            mobile: keep(self.mobile),
        }
    }
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

/// A person as the directory knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryPerson {
    /// Canonical id of the person in its source: INTERNAL = the user id (value of the search
    /// attribute), EXTERNAL = the 12-digit personal number.
    pub user_id: String,
    pub attributes: PersonAttributes,
}

/// Why a lookup gave no answer. "Not found" is not an error: it is `Ok(None)`.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The directory could not be asked (down, too slow, refused our bind): a server-side
    /// problem, reported as 503, never as "not found".
    #[error("the directory is unreachable: {0}")]
    Unavailable(String),
    /// The identifier cannot be looked up as given (bad attribute name, ambiguous, not a
    /// personal number): the client's problem.
    #[error("{0}")]
    BadIdentifier(String),
}

/// Finds people by source and identifier.
#[async_trait::async_trait]
pub trait Directory: Send + Sync + 'static {
    /// INTERNAL: identifier `attribute=value` or a bare value (searched in the default
    /// attribute). EXTERNAL: the normalised personal number. `Ok(None)` = not found.
    async fn lookup(
        &self,
        source: PersonSource,
        identifier: &str,
    ) -> Result<Option<DirectoryPerson>, DirectoryError>;
}

/// Builds the configured directory: LDAP for INTERNAL when `settings.ldap.url` is set, else the
/// file; EXTERNAL always from the file (empty when no file is configured).
pub fn from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn Directory>> {
    let file = match &settings.directory_file {
        Some(path) => FileDirectory::load(path)?,
        None => FileDirectory::default(),
    };
    if settings.ldap.url.is_none() {
        return Ok(Arc::new(file));
    }
    if file.internal_count() > 0 {
        tracing::warn!(
            directory.ignored = file.internal_count(),
            "LDAP is configured, so the directory file's INTERNAL people are ignored"
        );
    }
    let ldap = LdapDirectory::new(&settings.ldap)?;
    Ok(Arc::new(CompositeDirectory::new(
        Arc::new(ldap),
        Arc::new(file),
    )))
}

/// Routes each lookup by source: INTERNAL people to one directory, EXTERNAL to another.
pub struct CompositeDirectory {
    internal: Arc<dyn Directory>,
    external: Arc<dyn Directory>,
}

impl CompositeDirectory {
    pub fn new(internal: Arc<dyn Directory>, external: Arc<dyn Directory>) -> Self {
        CompositeDirectory { internal, external }
    }
}

#[async_trait::async_trait]
impl Directory for CompositeDirectory {
    async fn lookup(
        &self,
        source: PersonSource,
        identifier: &str,
    ) -> Result<Option<DirectoryPerson>, DirectoryError> {
        match source {
            PersonSource::Internal => self.internal.lookup(source, identifier).await,
            PersonSource::External => self.external.lookup(source, identifier).await,
        }
    }
}

/// An INTERNAL identifier, split: `attribute=value` or a bare value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InternalQuery<'a> {
    /// `None` for a bare value: the directory's default attribute.
    pub attribute: Option<&'a str>,
    pub value: &'a str,
}

impl<'a> InternalQuery<'a> {
    /// Splits at the first `=`. The attribute must be a plain LDAP attribute name (a letter, then
    /// letters, digits and `-`: RFC 4512's `descr`), so nothing but a value reaches a filter
    /// unescaped; the value must not be blank.
    pub fn parse(identifier: &'a str) -> Result<Self, DirectoryError> {
        let (attribute, value) = match identifier.split_once('=') {
            Some((attribute, value)) => {
                if !is_attribute_name(attribute) {
                    return Err(DirectoryError::BadIdentifier(
                        "the part before '=' must be a plain attribute name \
                         (a letter, then letters, digits or '-')"
                            .to_owned(),
                    ));
                }
                (Some(attribute), value)
            }
            None => (None, identifier),
        };
        if value.trim().is_empty() {
            return Err(DirectoryError::BadIdentifier(
                "the identifier has no value to look up".to_owned(),
            ));
        }
        Ok(InternalQuery { attribute, value })
    }
}

/// A plain LDAP attribute name (RFC 4512 `descr`): a letter, then letters, digits or `-`.
pub(crate) fn is_attribute_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The error for a query that matches several people: taking one would be a guess.
pub(crate) fn ambiguous() -> DirectoryError {
    DirectoryError::BadIdentifier(
        "the identifier is ambiguous: it matches more than one person".to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(first: Option<&str>, mail: Option<&str>) -> PersonAttributes {
        PersonAttributes {
            first_name: first.map(str::to_owned),
            mail: mail.map(str::to_owned),
            ..PersonAttributes::default()
        }
    }

    #[test]
    fn request_attributes_fill_only_what_the_directory_lacks() {
        let mut found = attributes(Some("Carl"), None);
        found.fill_missing_from(&attributes(Some("Karl"), Some("carl@example.org")));
        assert_eq!(found, attributes(Some("Carl"), Some("carl@example.org")));
    }

    #[test]
    fn a_blank_value_counts_as_missing_on_both_sides() {
        let mut found = attributes(Some(" "), Some("carl@example.org"));
        found.fill_missing_from(&attributes(Some("Carl"), Some("")));
        assert_eq!(found, attributes(Some("Carl"), Some("carl@example.org")));
    }

    #[test]
    fn attributes_are_camel_case_on_the_wire() {
        let json = serde_json::to_value(attributes(Some("Carl"), None)).unwrap();
        assert_eq!(json["firstName"], "Carl");
    }

    #[test]
    fn an_internal_identifier_is_an_attribute_and_a_value_or_a_bare_value() {
        let query = InternalQuery::parse("sAMAccountName=cborgstrom").unwrap();
        assert_eq!(query.attribute, Some("sAMAccountName"));
        assert_eq!(query.value, "cborgstrom");
        let query = InternalQuery::parse("cborgstrom").unwrap();
        assert_eq!(query.attribute, None);
        assert_eq!(query.value, "cborgstrom");
        // Only the first '=' splits: the rest belongs to the value.
        assert_eq!(InternalQuery::parse("cn=a=b").unwrap().value, "a=b");
    }

    #[test]
    fn an_attribute_name_that_is_not_plain_is_refused() {
        for identifier in [
            "(uid=x",
            "uid)(cn=x",
            "=x",
            "1uid=x",
            "ui d=x",
            "uid*=x",
            "uid=",
        ] {
            assert!(
                matches!(
                    InternalQuery::parse(identifier),
                    Err(DirectoryError::BadIdentifier(_))
                ),
                "{identifier}"
            );
        }
    }
}
