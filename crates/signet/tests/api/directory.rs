//! The people directory: LDAP against a real slapd, the file directory, and how
//! `from_settings` routes INTERNAL and EXTERNAL people between them.

use crate::slapd::{Slapd, ANNA, CARL};
use signet::config::{LdapSettings, Settings};
use signet::directory::{
    from_settings, Directory, DirectoryError, DirectoryPerson, FileDirectory, FilePerson,
    LdapDirectory, PersonAttributes,
};
use signet::domain::PersonSource::{External, Internal};
use std::time::{Duration, Instant};

fn ldap(settings: &LdapSettings) -> LdapDirectory {
    LdapDirectory::new(settings).unwrap()
}

fn carl() -> DirectoryPerson {
    DirectoryPerson {
        user_id: "cborgstrom".into(),
        attributes: PersonAttributes {
            first_name: Some("Carl".into()),
            last_name: Some("Borgström".into()),
            mail: CARL.mail.map(Into::into),
            mobile: CARL.mobile.map(Into::into),
        },
    }
}

fn is_bad_identifier(result: &Result<Option<DirectoryPerson>, DirectoryError>) -> bool {
    matches!(result, Err(DirectoryError::BadIdentifier(_)))
}

// ---- LDAP -------------------------------------------------------------------------------------

#[tokio::test]
async fn an_internal_person_is_found_by_attribute_and_value() {
    let slapd = Slapd::start();
    let directory = ldap(&slapd.settings());

    let found = directory.lookup(Internal, "uid=cborgstrom").await.unwrap();

    assert_eq!(found, Some(carl()));
}

#[tokio::test]
async fn attribute_names_in_identifiers_are_case_insensitive() {
    let slapd = Slapd::start();
    let directory = ldap(&slapd.settings());

    let found = directory.lookup(Internal, "UID=cborgstrom").await.unwrap();

    assert_eq!(found, Some(carl()));
}

#[tokio::test]
async fn a_bare_value_is_searched_in_the_default_attribute() {
    let slapd = Slapd::start();
    let directory = ldap(&slapd.settings());

    let found = directory.lookup(Internal, "cborgstrom").await.unwrap();

    assert_eq!(found, Some(carl()));
}

#[tokio::test]
async fn a_person_found_by_another_attribute_keeps_the_user_id_of_the_search_attribute() {
    let slapd = Slapd::start();
    let directory = ldap(&slapd.settings());

    let found = directory
        .lookup(Internal, "mail=carl.borgstrom@example.org")
        .await
        .unwrap();

    assert_eq!(found, Some(carl()));
}

#[tokio::test]
async fn an_attribute_the_directory_lacks_stays_empty() {
    let slapd = Slapd::start();
    let directory = ldap(&slapd.settings());

    let anna = directory
        .lookup(Internal, "aandersson")
        .await
        .unwrap()
        .unwrap();

    assert_eq!(anna.attributes.mobile, None);
    assert_eq!(anna.attributes.mail.as_deref(), ANNA.mail);
}

#[tokio::test]
async fn a_person_missing_from_the_directory_is_not_found() {
    let slapd = Slapd::start();
    let directory = ldap(&slapd.settings());

    assert_eq!(
        directory.lookup(Internal, "uid=nobody").await.unwrap(),
        None
    );
    assert_eq!(directory.lookup(Internal, "nobody").await.unwrap(), None);
}

#[tokio::test]
async fn an_identifier_matching_two_people_is_refused_as_ambiguous() {
    let slapd = Slapd::start();
    let directory = ldap(&slapd.settings());

    let result = directory.lookup(Internal, "cn=Johan Svensson").await;

    assert!(is_bad_identifier(&result), "{result:?}");
    assert!(result.unwrap_err().to_string().contains("ambiguous"));
}

#[tokio::test]
async fn filter_syntax_in_a_value_is_searched_literally_and_finds_nobody() {
    let slapd = Slapd::start();
    let directory = ldap(&slapd.settings());

    for identifier in [
        "uid=*)(uid=*",
        "uid=*",
        "*",
        "cborg*",
        "uid=cborgstrom)(objectClass=*",
        "uid=cborgstrom)",
        "uid=cborgstrom\\",
    ] {
        let found = directory.lookup(Internal, identifier).await;
        assert_eq!(found.unwrap(), None, "{identifier}");
    }
}

#[tokio::test]
async fn filter_syntax_in_an_attribute_name_is_refused() {
    let slapd = Slapd::start();
    let directory = ldap(&slapd.settings());

    for identifier in [
        "(uid=cborgstrom",
        "uid)(cn=*",
        "|(uid=x",
        "uid*=x",
        "cborgstrom)(uid=*",
        "=cborgstrom",
    ] {
        let result = directory.lookup(Internal, identifier).await;
        assert!(is_bad_identifier(&result), "{identifier}: {result:?}");
    }
}

#[tokio::test]
async fn a_directory_stopped_mid_test_is_unavailable_within_the_timeout() {
    let mut slapd = Slapd::start();
    let settings = slapd.settings();
    let directory = ldap(&settings);
    assert!(directory
        .lookup(Internal, "cborgstrom")
        .await
        .unwrap()
        .is_some());

    slapd.stop();
    let started = Instant::now();
    let result = directory.lookup(Internal, "cborgstrom").await;

    assert!(
        matches!(result, Err(DirectoryError::Unavailable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() <= Duration::from_secs(settings.timeout_seconds + 1));
    assert!(result
        .unwrap_err()
        .to_string()
        .starts_with("the directory is unreachable"));
}

#[tokio::test]
async fn a_directory_that_never_answers_is_unavailable_after_the_timeout() {
    // Accepts connections and then says nothing, like a hung server or a black-holing firewall.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let directory = ldap(&LdapSettings {
        url: Some(format!("ldap://{address}")),
        base_dn: "dc=example,dc=org".into(),
        timeout_seconds: 1,
        ..LdapSettings::default()
    });

    let started = Instant::now();
    let result = directory.lookup(Internal, "cborgstrom").await;

    assert!(
        matches!(result, Err(DirectoryError::Unavailable(_))),
        "{result:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_refused_bind_makes_the_directory_unavailable_not_empty() {
    let slapd = Slapd::start();
    let directory = ldap(&LdapSettings {
        bind_password: Some("wrong".into()),
        ..slapd.settings()
    });

    let result = directory.lookup(Internal, "cborgstrom").await;

    assert!(
        matches!(result, Err(DirectoryError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn without_a_bind_dn_the_lookup_binds_anonymously() {
    let slapd = Slapd::start();
    let directory = ldap(&LdapSettings {
        bind_dn: None,
        bind_password: None,
        ..slapd.settings()
    });

    let found = directory.lookup(Internal, "uid=cborgstrom").await.unwrap();

    assert_eq!(found, Some(carl()));
}

#[tokio::test]
async fn the_attribute_mapping_and_default_attribute_come_from_the_settings() {
    let slapd = Slapd::start();
    let directory = ldap(&LdapSettings {
        search_attribute: "mail".into(),
        first_name_attribute: "cn".into(),
        mobile_attribute: "telephoneNumber".into(),
        ..slapd.settings()
    });

    let found = directory
        .lookup(Internal, "carl.borgstrom@example.org")
        .await
        .unwrap()
        .unwrap();

    assert_eq!(found.user_id, "carl.borgstrom@example.org");
    assert_eq!(
        found.attributes.first_name.as_deref(),
        Some("Carl Borgström")
    );
    assert_eq!(found.attributes.mobile, None);
}

#[tokio::test]
async fn ldap_knows_no_external_people() {
    let slapd = Slapd::start();
    let directory = ldap(&slapd.settings());

    let found = directory.lookup(External, "198603052385").await.unwrap();

    assert_eq!(found, None);
}

#[test]
fn ldap_settings_this_build_cannot_use_are_refused_at_start_up() {
    let settings = |change: fn(&mut LdapSettings)| {
        let mut settings = LdapSettings {
            url: Some("ldap://127.0.0.1:389".into()),
            ..LdapSettings::default()
        };
        change(&mut settings);
        settings
    };
    assert!(LdapDirectory::new(&settings(|_| {})).is_ok());
    for bad in [
        settings(|s| s.url = None),
        settings(|s| s.url = Some("ldaps://ldap.example.org".into())),
        settings(|s| s.url = Some("http://ldap.example.org".into())),
        settings(|s| s.search_attribute = "uid)(cn=*".into()),
        settings(|s| s.mail_attribute = String::new()),
        settings(|s| s.timeout_seconds = 0),
    ] {
        assert!(LdapDirectory::new(&bad).is_err(), "{bad:?}");
    }
}

// ---- the file directory -----------------------------------------------------------------------

fn person(source: &str, identifier: &str) -> serde_json::Value {
    serde_json::json!({ "source": source, "identifier": identifier })
}

fn file_directory(people: serde_json::Value) -> FileDirectory {
    FileDirectory::from_people(serde_json::from_value::<Vec<FilePerson>>(people).unwrap()).unwrap()
}

async fn user_id(directory: &FileDirectory, identifier: &str) -> Option<String> {
    directory
        .lookup(Internal, identifier)
        .await
        .unwrap()
        .map(|person| person.user_id)
}

#[tokio::test]
async fn the_file_directory_matches_internal_people_by_identifier_or_user_id() {
    let directory = file_directory(serde_json::json!([
        { "source": "INTERNAL", "identifier": "sAMAccountName=cborgstrom",
          "firstName": "Carl", "lastName": "Borgström" },
        { "source": "INTERNAL", "identifier": "aandersson" },
        { "source": "INTERNAL", "identifier": "mail=ec@example.org", "userId": "echristensen" },
    ]));

    // attr=value: the same identifier (attribute name in any case) ...
    assert_eq!(
        user_id(&directory, "sAMAccountName=cborgstrom")
            .await
            .as_deref(),
        Some("cborgstrom")
    );
    assert_eq!(
        user_id(&directory, "samaccountname=cborgstrom")
            .await
            .as_deref(),
        Some("cborgstrom")
    );
    // ... but not another attribute with the same value
    assert_eq!(user_id(&directory, "uid=cborgstrom").await, None);
    // ... or a bare identifier, which stands for whatever the default attribute is
    assert_eq!(
        user_id(&directory, "uid=aandersson").await.as_deref(),
        Some("aandersson")
    );
    // ... or the userId
    assert_eq!(
        user_id(&directory, "uid=echristensen").await.as_deref(),
        Some("echristensen")
    );
    // A bare value: the value of an attr=value identifier, a bare identifier or the userId.
    assert_eq!(
        user_id(&directory, "cborgstrom").await.as_deref(),
        Some("cborgstrom")
    );
    assert_eq!(
        user_id(&directory, "aandersson").await.as_deref(),
        Some("aandersson")
    );
    assert_eq!(
        user_id(&directory, "echristensen").await.as_deref(),
        Some("echristensen")
    );
    assert_eq!(
        user_id(&directory, "ec@example.org").await.as_deref(),
        Some("echristensen")
    );
    // Values compare exactly.
    assert_eq!(user_id(&directory, "CBORGSTROM").await, None);
    assert_eq!(user_id(&directory, "nobody").await, None);

    let carl = directory
        .lookup(Internal, "cborgstrom")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(carl.attributes.last_name.as_deref(), Some("Borgström"));
    assert_eq!(carl.attributes.mail, None);
}

#[tokio::test]
async fn the_file_directory_refuses_an_internal_identifier_matching_two_people() {
    let directory = file_directory(serde_json::json!([
        person("INTERNAL", "cn=Johan Svensson"),
        person("INTERNAL", "uid=Johan Svensson"),
    ]));

    let result = directory.lookup(Internal, "Johan Svensson").await;

    assert!(is_bad_identifier(&result), "{result:?}");
}

#[tokio::test]
async fn the_file_directory_matches_external_people_by_normalised_personal_number() {
    let directory = file_directory(serde_json::json!([
        { "source": "EXTERNAL", "identifier": "860305-2385", "mail": "kund@example.org" },
    ]));

    for spelling in ["198603052385", "19860305-2385", "8603052385", "860305-2385"] {
        let found = directory.lookup(External, spelling).await.unwrap().unwrap();
        assert_eq!(found.user_id, "198603052385", "{spelling}");
        assert_eq!(found.attributes.mail.as_deref(), Some("kund@example.org"));
    }
    assert_eq!(
        directory.lookup(External, "200001011907").await.unwrap(),
        None
    );
    // An INTERNAL lookup never sees EXTERNAL people.
    assert_eq!(
        directory.lookup(Internal, "198603052385").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn an_external_lookup_by_something_that_is_not_a_personal_number_is_refused() {
    let directory = FileDirectory::default();

    for identifier in ["198603052384", "190002291235", "cborgstrom"] {
        let result = directory.lookup(External, identifier).await;
        assert!(is_bad_identifier(&result), "{identifier}: {result:?}");
    }
}

#[test]
fn the_directory_file_is_read_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.json");
    std::fs::write(
        &path,
        serde_json::json!([
            { "source": "INTERNAL", "identifier": "cborgstrom", "userId": "carl",
              "firstName": "Carl", "lastName": "Borgström", "mail": "c@example.org", "mobile": "+4670" },
            person("EXTERNAL", "198603052385"),
        ])
        .to_string(),
    )
    .unwrap();

    let directory = FileDirectory::load(&path).unwrap();

    assert_eq!(directory.internal_count(), 1);
}

#[test]
fn a_bad_directory_file_stops_start_up_naming_the_file_and_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.json");
    let cases = [
        (serde_json::json!({ "people": [] }), "not a JSON array"),
        (
            serde_json::json!([person("INTERNAL", "a"), person("SOMEWHERE", "b")]),
            "entry 2",
        ),
        (
            serde_json::json!([{ "source": "INTERNAL", "identifier": "a", "firstname": "A" }]),
            "entry 1",
        ),
        (
            serde_json::json!([person("INTERNAL", "a"), person("EXTERNAL", "198603052384")]),
            "entry 2",
        ),
        (serde_json::json!([person("INTERNAL", "(uid=a")]), "entry 1"),
        (
            serde_json::json!([
                person("EXTERNAL", "198603052385"),
                person("EXTERNAL", "8603052385")
            ]),
            "entry 2",
        ),
        (
            serde_json::json!([{ "source": "EXTERNAL", "identifier": "198603052385", "userId": "x" }]),
            "entry 1",
        ),
    ];
    for (content, expected) in cases {
        std::fs::write(&path, content.to_string()).unwrap();

        let error = format!("{:#}", FileDirectory::load(&path).unwrap_err());

        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains(expected), "{expected}: {error}");
        // A personal number is personal data: the error names the entry, not its identifier.
        assert!(!error.contains("19860305238"), "{error}");
    }
    let missing = format!(
        "{:#}",
        FileDirectory::load(&dir.path().join("absent.json")).unwrap_err()
    );
    assert!(missing.contains("absent.json"), "{missing}");
}

// ---- routing and the merge rule ---------------------------------------------------------------

#[tokio::test]
async fn without_ldap_or_a_file_the_directory_knows_nobody() {
    let directory = from_settings(&Settings::default()).unwrap();

    assert_eq!(
        directory.lookup(Internal, "cborgstrom").await.unwrap(),
        None
    );
    assert_eq!(
        directory.lookup(External, "198603052385").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn with_ldap_configured_internal_people_come_from_ldap_and_external_from_the_file() {
    let slapd = Slapd::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people.json");
    std::fs::write(
        &file,
        serde_json::json!([
            { "source": "INTERNAL", "identifier": "onlyinfile" },
            { "source": "EXTERNAL", "identifier": "198603052385", "firstName": "Kund" },
        ])
        .to_string(),
    )
    .unwrap();
    let settings = Settings {
        directory_file: Some(file),
        ldap: slapd.settings(),
        ..Settings::default()
    };

    let directory = from_settings(&settings).unwrap();

    assert_eq!(
        directory.lookup(Internal, "cborgstrom").await.unwrap(),
        Some(carl())
    );
    assert_eq!(
        directory.lookup(Internal, "onlyinfile").await.unwrap(),
        None
    );
    let customer = directory
        .lookup(External, "198603052385")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(customer.attributes.first_name.as_deref(), Some("Kund"));
}

#[tokio::test]
async fn without_ldap_internal_people_come_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("people.json");
    std::fs::write(
        &file,
        serde_json::json!([person("INTERNAL", "cborgstrom")]).to_string(),
    )
    .unwrap();
    let settings = Settings {
        directory_file: Some(file),
        ..Settings::default()
    };

    let directory = from_settings(&settings).unwrap();

    let found = directory.lookup(Internal, "uid=cborgstrom").await.unwrap();
    assert_eq!(found.map(|p| p.user_id).as_deref(), Some("cborgstrom"));
}

#[tokio::test]
async fn request_attributes_only_fill_what_the_directory_did_not_yield() {
    let slapd = Slapd::start();
    let directory = ldap(&slapd.settings());
    let request = PersonAttributes {
        first_name: Some("Ann".into()),
        last_name: None,
        mail: Some("someone.else@example.org".into()),
        mobile: Some("+46700000000".into()),
    };

    let mut anna = directory
        .lookup(Internal, "aandersson")
        .await
        .unwrap()
        .unwrap()
        .attributes;
    anna.fill_missing_from(&request);

    assert_eq!(
        anna,
        PersonAttributes {
            first_name: Some("Anna".into()),
            last_name: Some("Andersson".into()),
            mail: ANNA.mail.map(Into::into),
            mobile: Some("+46700000000".into()),
        }
    );
}
