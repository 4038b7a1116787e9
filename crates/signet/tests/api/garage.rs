//! A real S3-compatible object store for tests: a single-node Garage with its own temporary
//! metadata and data directories, its S3 API and RPC on free 127.0.0.1 ports, one access key and
//! one bucket; killed when dropped. Built by scripts/test.sh into
//! `${SIGNET_CI_CACHE:-~/.cache/signet-ci}/garage` (path in `SIGNET_TEST_GARAGE`). Outside CI a
//! missing Garage skips the object-store variants with a notice; with CI set it fails the run.
//!
//! ```ignore
//! let Some(garage) = Garage::start() else { return };
//! settings.blob_url = Some(garage.url("signet"));
//! settings.object_store_env = Some(garage.env());
//! ```

use std::net::TcpStream;

use crate::support::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub const BUCKET: &str = "signet-test";
const KEY_NAME: &str = "signet-test";

/// A running Garage; dropping it kills the process and removes its files.
pub struct Garage {
    binary: PathBuf,
    dir: TempDir,
    child: Option<Child>,
    s3_port: u16,
    key_id: String,
    secret: String,
}

/// Where scripts/test.sh puts Garage; `None` (with a notice) outside CI when it is not there.
fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("SIGNET_TEST_GARAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("SIGNET_CI_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/signet-ci")
                });
            cache.join("garage/bin/garage")
        });
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI is set but Garage is not at {} (scripts/test.sh builds it)",
        path.display()
    );
    eprintln!(
        "notice: no Garage at {}; skipping the object-store variant",
        path.display()
    );
    None
}

impl Garage {
    /// Starts Garage, lays out its one node, creates the key and the bucket.
    pub fn start() -> Option<Garage> {
        let binary = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("garage-")
            .tempdir()
            .unwrap();
        let (rpc_port, s3_port) = (free_port(), free_port());
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let root = dir.path().display();
        std::fs::write(
            dir.path().join("garage.toml"),
            format!(
                r#"metadata_dir = "{root}/meta"
data_dir = "{root}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
api_bind_addr = "127.0.0.1:{s3_port}"
s3_region = "garage"
"#
            ),
        )
        .unwrap();
        let mut garage = Garage {
            binary,
            dir,
            child: None,
            s3_port,
            key_id: String::new(),
            secret: String::new(),
        };
        garage.run_server();
        let node = garage.wait_for_node_id();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        let key = garage.cli(&["key", "create", KEY_NAME]);
        let field = |label: &str| {
            key.lines()
                .find_map(|line| line.trim().strip_prefix(label))
                .map(|rest| rest.trim().to_owned())
                .unwrap_or_else(|| panic!("no {label} in garage's answer:\n{key}"))
        };
        garage.key_id = field("Key ID:");
        garage.secret = field("Secret key:");
        garage.cli(&["bucket", "create", BUCKET]);
        garage.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_NAME,
        ]);
        Some(garage)
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    fn run_server(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("garage.log"))
            .unwrap();
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.config())
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_for_s3();
    }

    /// Waits until the S3 port accepts connections (not a timed assertion: a bound on waiting
    /// for a child process to come up, with its log in the failure).
    fn wait_for_s3(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.s3_port)).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("garage exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "garage did not listen:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    fn wait_for_node_id(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let output = self.command(&["node", "id", "-q"]).output().unwrap();
            let text = String::from_utf8_lossy(&output.stdout);
            if let Some((id, _)) = text.trim().split_once('@') {
                if output.status.success() {
                    return id.to_owned();
                }
            }
            assert!(
                Instant::now() < deadline,
                "garage node id failed: {}\n{}",
                String::from_utf8_lossy(&output.stderr),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("-c").arg(self.config()).args(args);
        command.env("RUST_LOG", "garage=warn");
        command
    }

    /// Runs a `garage` admin command; its standard output.
    fn cli(&self, args: &[&str]) -> String {
        let output = self.command(args).output().unwrap();
        assert!(
            output.status.success(),
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `s3://signet-test/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The standard AWS settings that reach this Garage with its key.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_REGION", "garage".to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Kills the server (the store becomes unreachable); its data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.run_server();
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}
