//! A real OpenLDAP `slapd` for tests: its own temporary database (mdb) loaded with test people by
//! `slapadd`, listening on a free 127.0.0.1 port, killed when dropped. Needs the Debian packages
//! `slapd` and `ldap-utils` (scripts/test.sh installs them).
//!
//! ```ignore
//! let slapd = Slapd::start();
//! let directory = LdapDirectory::new(&slapd.settings()).unwrap();
//! let carl = directory.lookup(PersonSource::Internal, "uid=cborgstrom").await.unwrap();
//! ```

use base64::Engine;
use signet::config::LdapSettings;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub const BASE_DN: &str = "dc=example,dc=org";
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=org";
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
pub const ROOT_PASSWORD: &str = "secret";

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";

/// A test person: `uid` and the inetOrgPerson attributes Signet maps.
#[derive(Debug, Clone, Copy)]
pub struct LdapPerson {
    pub uid: &'static str,
    pub given_name: &'static str,
    pub sn: &'static str,
    /// `cn`; two people may share one (the ambiguity case).
    pub cn: &'static str,
    pub mail: Option<&'static str>,
    pub mobile: Option<&'static str>,
}

/// Carl Borgström, the reference product's example user.
pub const CARL: LdapPerson = LdapPerson {
    uid: "cborgstrom",
    given_name: "Carl",
    sn: "Borgström",
    cn: "Carl Borgström",
    mail: Some("carl.borgstrom@example.org"),
    mobile: Some("+46701234567"),
};

/// Someone without a mobile number.
pub const ANNA: LdapPerson = LdapPerson {
    uid: "aandersson",
    given_name: "Anna",
    sn: "Andersson",
    cn: "Anna Andersson",
    mail: Some("anna.andersson@example.org"),
    mobile: None,
};

/// Two people sharing the `cn` "Johan Svensson".
pub const JOHAN_1: LdapPerson = LdapPerson {
    uid: "jsvensson",
    given_name: "Johan",
    sn: "Svensson",
    cn: "Johan Svensson",
    mail: Some("johan.svensson@example.org"),
    mobile: Some("+46709876543"),
};
pub const JOHAN_2: LdapPerson = LdapPerson {
    uid: "jsvensson2",
    given_name: "Johan",
    sn: "Svensson",
    cn: "Johan Svensson",
    mail: Some("johan.svensson2@example.org"),
    mobile: None,
};

/// Everyone `Slapd::start` loads.
pub const PEOPLE: [LdapPerson; 4] = [CARL, ANNA, JOHAN_1, JOHAN_2];

/// A running slapd; dropping it kills the process and removes its files.
pub struct Slapd {
    child: Option<Child>,
    address: SocketAddr,
    dir: TempDir,
}

impl Slapd {
    /// slapd with [`PEOPLE`] under [`PEOPLE_DN`].
    pub fn start() -> Slapd {
        Slapd::start_with(&PEOPLE)
    }

    /// slapd with these people under [`PEOPLE_DN`].
    pub fn start_with(people: &[LdapPerson]) -> Slapd {
        let dir = tempfile::Builder::new().prefix("slapd-").tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let config = dir.path().join("slapd.conf");
        std::fs::write(&config, slapd_conf(dir.path())).unwrap();
        let ldif = dir.path().join("people.ldif");
        std::fs::write(&ldif, people_ldif(people)).unwrap();
        let output = Command::new(SLAPADD)
            .arg("-f")
            .arg(&config)
            .arg("-l")
            .arg(&ldif)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {SLAPADD} (apt-get install slapd): {e}"));
        assert!(
            output.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The free port is found by binding port 0 and letting go; another process could take it
        // in between, so a slapd that cannot listen is retried on a new port.
        let mut slapd = Slapd {
            child: None,
            address: free_port(),
            dir,
        };
        for attempt in 1.. {
            match slapd.launch(&config) {
                Ok(()) => break,
                Err(log) if attempt < 5 => {
                    eprintln!("slapd did not start on {}, retrying: {log}", slapd.address);
                    slapd.address = free_port();
                }
                Err(log) => panic!("slapd did not start on {}: {log}", slapd.address),
            }
        }
        slapd
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://{}", self.address)
    }

    /// Settings for Signet to use this slapd: bound as the root DN, people under [`BASE_DN`],
    /// default mapping (uid, givenName, sn, mail, mobile), a 2-second timeout.
    pub fn settings(&self) -> LdapSettings {
        LdapSettings {
            url: Some(self.url()),
            bind_dn: Some(ROOT_DN.to_owned()),
            bind_password: Some(ROOT_PASSWORD.to_owned()),
            base_dn: BASE_DN.to_owned(),
            timeout_seconds: 2,
            ..LdapSettings::default()
        }
    }

    /// Kills slapd (idempotent); lookups from now on find nobody listening.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn launch(&mut self, config: &Path) -> Result<(), String> {
        let log_path = self.dir.path().join("slapd.log");
        let log = File::create(&log_path).unwrap();
        // `-d 0`: stay in the foreground (no fork), so the child is slapd itself and kill works.
        let child = Command::new(SLAPD)
            .arg("-f")
            .arg(config)
            .arg("-h")
            .arg(format!("ldap://{}/", self.address))
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SLAPD} (apt-get install slapd): {e}"));
        self.child = Some(child);
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                self.child = None;
                return Err(format!("slapd exited with {status}: {}", read_log()));
            }
            if TcpStream::connect_timeout(&self.address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(format!("slapd did not listen within 10 s: {}", read_log()))
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn slapd_conf(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix "{BASE_DN}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {dir}/db
"#
    )
}

/// The LDIF for the base entries and `people`; non-ASCII values base64-encoded, as LDIF wants.
fn people_ldif(people: &[LdapPerson]) -> String {
    let mut ldif = format!(
        "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: {PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people\n\n"
    );
    for person in people {
        let mut line = |name: &str, value: &str| {
            if value.is_ascii() {
                writeln!(ldif, "{name}: {value}").unwrap();
            } else {
                let encoded = base64::engine::general_purpose::STANDARD.encode(value);
                writeln!(ldif, "{name}:: {encoded}").unwrap();
            }
        };
        line("dn", &format!("uid={},{PEOPLE_DN}", person.uid));
        line("objectClass", "inetOrgPerson");
        line("uid", person.uid);
        line("cn", person.cn);
        line("givenName", person.given_name);
        line("sn", person.sn);
        if let Some(mail) = person.mail {
            line("mail", mail);
        }
        if let Some(mobile) = person.mobile {
            line("mobile", mobile);
        }
        ldif.push('\n');
    }
    ldif
}
