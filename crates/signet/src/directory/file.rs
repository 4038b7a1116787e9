//! The file directory, Signet's embedded default: a JSON array of people, read once at start-up
//! and held in memory. It serves INTERNAL people when no LDAP is configured, and EXTERNAL people
//! (keyed by personal number) always. Every entry is checked when the file is loaded, so a typo
//! stops the server instead of surfacing as "not found" in the middle of an order.

use super::{
    ambiguous, Directory, DirectoryError, DirectoryPerson, InternalQuery, PersonAttributes,
};
use crate::domain::{PersonSource, PersonalNumber};
use anyhow::{bail, Context};
use std::collections::HashMap;
use std::path::Path;

/// One person in the directory file:
/// `{"source", "identifier", "userId"?, "firstName", "lastName", "mail", "mobile"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilePerson {
    pub source: PersonSource,
    /// INTERNAL: `attribute=value` or a bare value; EXTERNAL: a personal number in any spelling.
    pub identifier: String,
    /// INTERNAL only: the user id when it is not the identifier's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub mobile: Option<String>,
}

impl FilePerson {
    fn attributes(&self) -> PersonAttributes {
        PersonAttributes {
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            mail: self.mail.clone(),
            mobile: self.mobile.clone(),
        }
        .without_blanks()
    }
}

/// An INTERNAL entry, its identifier already split.
#[derive(Debug)]
struct InternalEntry {
    /// The identifier's attribute name; `None` for a bare identifier.
    attribute: Option<String>,
    value: String,
    /// `userId` from the file, when given.
    explicit_user_id: Option<String>,
    attributes: PersonAttributes,
}

impl InternalEntry {
    fn user_id(&self) -> &str {
        self.explicit_user_id.as_deref().unwrap_or(&self.value)
    }

    /// `attr=value` matches the same identifier (attribute names compare case-insensitively, as
    /// in LDAP), a bare identifier with that value (a bare entry stands for the default
    /// attribute, whichever it is) or the entry's explicit `userId`. A bare query matches the
    /// `userId`, a bare identifier or the value of an `attr=value` identifier.
    fn matches(&self, query: &InternalQuery<'_>) -> bool {
        if self.explicit_user_id.as_deref() == Some(query.value) {
            return true;
        }
        if self.value != query.value {
            return false;
        }
        match (&self.attribute, query.attribute) {
            (Some(mine), Some(asked)) => mine.eq_ignore_ascii_case(asked),
            (None, _) | (_, None) => true,
        }
    }
}

/// People from a JSON file (or a list, for tests). Values compare exactly (case-sensitively).
#[derive(Debug, Default)]
pub struct FileDirectory {
    internal: Vec<InternalEntry>,
    /// Keyed by the normalised 12-digit personal number.
    external: HashMap<String, PersonAttributes>,
}

impl FileDirectory {
    /// Reads and checks the directory file; the error names the file and the entry at fault.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the directory file {}", path.display()))?;
        let entries: Vec<serde_json::Value> = serde_json::from_str(&text).with_context(|| {
            format!(
                "the directory file {} is not a JSON array of people",
                path.display()
            )
        })?;
        let people = entries
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                serde_json::from_value::<FilePerson>(entry).with_context(|| {
                    format!("the directory file {}, entry {}", path.display(), index + 1)
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Self::from_people(people).with_context(|| format!("the directory file {}", path.display()))
    }

    /// A directory of these people, checked as a file would be. Errors name the entry by its
    /// 1-based position, never by its identifier (which may be a personal number).
    pub fn from_people(people: Vec<FilePerson>) -> anyhow::Result<Self> {
        let mut directory = FileDirectory::default();
        for (index, person) in people.into_iter().enumerate() {
            directory
                .add(person)
                .with_context(|| format!("entry {}", index + 1))?;
        }
        Ok(directory)
    }

    /// How many INTERNAL people the file holds.
    pub fn internal_count(&self) -> usize {
        self.internal.len()
    }

    fn add(&mut self, person: FilePerson) -> anyhow::Result<()> {
        let attributes = person.attributes();
        match person.source {
            PersonSource::Internal => {
                let query = InternalQuery::parse(&person.identifier)
                    .map_err(|e| anyhow::anyhow!("the INTERNAL identifier is not usable: {e}"))?;
                let explicit_user_id = person.user_id.filter(|id| !id.trim().is_empty());
                self.internal.push(InternalEntry {
                    attribute: query.attribute.map(str::to_owned),
                    value: query.value.to_owned(),
                    explicit_user_id,
                    attributes,
                });
            }
            PersonSource::External => {
                if person.user_id.is_some() {
                    bail!("userId is for INTERNAL people; an EXTERNAL person's id is the personal number");
                }
                let number = PersonalNumber::parse(&person.identifier).map_err(|e| {
                    anyhow::anyhow!("the EXTERNAL identifier is not a personal number: {e}")
                })?;
                let key = number.as_str().to_owned();
                if self.external.insert(key, attributes).is_some() {
                    bail!("the same personal number appears twice");
                }
            }
        }
        Ok(())
    }

    fn lookup_internal(&self, identifier: &str) -> Result<Option<DirectoryPerson>, DirectoryError> {
        let query = InternalQuery::parse(identifier)?;
        let mut found = self.internal.iter().filter(|entry| entry.matches(&query));
        let Some(entry) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(ambiguous());
        }
        Ok(Some(DirectoryPerson {
            user_id: entry.user_id().to_owned(),
            attributes: entry.attributes.clone(),
        }))
    }

    fn lookup_external(&self, identifier: &str) -> Result<Option<DirectoryPerson>, DirectoryError> {
        let number = PersonalNumber::parse(identifier)
            .map_err(|e| DirectoryError::BadIdentifier(e.to_string()))?;
        Ok(self
            .external
            .get(number.as_str())
            .map(|attributes| DirectoryPerson {
                user_id: number.as_str().to_owned(),
                attributes: attributes.clone(),
            }))
    }
}

#[async_trait::async_trait]
impl Directory for FileDirectory {
    #[tracing::instrument(name = "directory.file.lookup", skip_all, fields(directory.source = %source))]
    async fn lookup(
        &self,
        source: PersonSource,
        identifier: &str,
    ) -> Result<Option<DirectoryPerson>, DirectoryError> {
        match source {
            PersonSource::Internal => self.lookup_internal(identifier),
            PersonSource::External => self.lookup_external(identifier),
        }
    }
}
