//! TLS on Signet's listeners (rustls on ring): the certificate and key files, the client CA,
//! the handshake of each connection, and re-reading the files on SIGHUP.
//!
//! Each TLS listener holds its current rustls configuration behind a lock that is read once per
//! connection; a reload builds a whole new configuration from the files and swaps it in only when
//! it is complete, so connections already open keep theirs, new ones get the new certificate, and
//! a bad file on reload leaves the old configuration serving.
//!
//! Client certificates come in two strengths. The Automation listener *requires* one chaining to
//! its client CA: a client without one fails the handshake and never reaches the application.
//! The main listener only *offers* client authentication (browsers on the signer pages and CA,
//! TSA and OCSP clients have no certificate): a presented certificate must prove its key in the
//! handshake, but whether it chains to the client CA is decided after the handshake, so the
//! CloudSigner API can answer an untrusted one with 401 and the error body instead of a bare
//! TLS alert. The outcome travels to the handlers as a [`ClientCertificate`] request extension.

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoClientAuth, WebPkiClientVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::connection::error_body;
use crate::api::cloudsigner::error::ErrorCode;

/// How a listener treats client certificates when it has a client CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Asked for, optional; one not chaining to the client CA is marked untrusted (main listener).
    Optional,
    /// A certificate chaining to the client CA is a condition of the handshake (Automation API).
    Required,
}

/// The files one listener's TLS is made of.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM: the server certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, SEC1 EC or PKCS#1 RSA).
    pub key: PathBuf,
    /// PEM: the certificates client certificates must chain to; none means no client auth.
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// The name a trusted client certificate authenticates: its subject's common name (CN), or the
/// whole subject (RFC 4514 form) when it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientName(Arc<str>);

impl ClientName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the client of a TLS connection showed, attached to each of its requests; absent when it
/// showed no certificate (or the listener has no client CA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCertificate {
    /// It chains to the client CA and the client proved it holds the key.
    Trusted(ClientName),
    /// The client holds the key, but the certificate does not chain to the client CA (or has
    /// expired): it authenticates nothing.
    Untrusted,
}

/// One configuration built from the files, in force for the connections accepted under it.
struct Loaded {
    acceptor: TlsAcceptor,
    /// With [`ClientAuth::Optional`]: the client CA's verifier, run after the handshake.
    client_ca: Option<Arc<dyn ClientCertVerifier>>,
    /// Whether a certificate that passed the handshake is trusted by that alone.
    required: bool,
}

/// A listener's TLS: its files and the configuration last built from them.
pub struct TlsListener {
    /// Which listener, for the log ("main", "automation").
    name: &'static str,
    files: TlsFiles,
    current: RwLock<Arc<Loaded>>,
}

impl fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("name", &self.name)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Reads the files; fails naming the file that is missing or unusable.
    pub fn load(name: &'static str, files: TlsFiles) -> anyhow::Result<Arc<Self>> {
        let loaded =
            build(&files).with_context(|| format!("setting up TLS on the {name} listener"))?;
        Ok(Arc::new(Self {
            name,
            files,
            current: RwLock::new(Arc::new(loaded)),
        }))
    }

    /// Re-reads the files; on failure the configuration in force stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let loaded = build(&self.files)
            .with_context(|| format!("re-reading the TLS files of the {} listener", self.name))?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
        Ok(())
    }

    fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The TLS mode in words, for the start-up log.
    pub fn mode(&self) -> &'static str {
        match (&self.files.client_ca, self.files.client_auth) {
            (None, _) => "TLS",
            (Some(_), ClientAuth::Optional) => "TLS, client certificates optional",
            (Some(_), ClientAuth::Required) => "mutual TLS, client certificate required",
        }
    }

    /// The TLS handshake on a freshly accepted connection (the caller bounds its time). A client
    /// speaking plain HTTP gets a 400 with the error body saying to use https, then the close;
    /// `None` whenever no TLS session came of it.
    pub async fn handshake(
        &self,
        mut stream: TcpStream,
    ) -> Option<(TlsStream<TcpStream>, Option<ClientCertificate>)> {
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(1) if first[0] == TLS_HANDSHAKE_RECORD => {}
            Ok(1) => {
                answer_plain_http(&mut stream).await;
                return None;
            }
            _ => return None,
        }
        // Without it, the session tickets rustls writes after the handshake and the response
        // that follows them are two small writes, and Nagle holds the second until the client's
        // delayed ACK (40 ms): every new connection's first answer would wait that long.
        let _ = stream.set_nodelay(true);
        let loaded = self.current();
        let tls = match loaded.acceptor.accept(stream).await {
            Ok(tls) => tls,
            Err(error) => {
                tracing::debug!(listener = self.name, error = %error, "TLS handshake failed");
                return None;
            }
        };
        let client = client_certificate(&loaded, tls.get_ref().1.peer_certificates());
        Some((tls, client))
    }
}

/// The first byte of a TLS connection: a handshake record (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What the client's certificate (if any) is worth, once the handshake proved it holds the key.
fn client_certificate(
    loaded: &Loaded,
    chain: Option<&[CertificateDer<'static>]>,
) -> Option<ClientCertificate> {
    let [end_entity, intermediates @ ..] = chain? else {
        return None;
    };
    if loaded.required {
        return Some(ClientCertificate::Trusted(client_name(end_entity)));
    }
    let verifier = loaded.client_ca.as_ref()?;
    Some(
        match verifier.verify_client_cert(end_entity, intermediates, UnixTime::now()) {
            Ok(_) => ClientCertificate::Trusted(client_name(end_entity)),
            Err(error) => {
                tracing::debug!(error = %error, "a client certificate does not chain to the client CA");
                ClientCertificate::Untrusted
            }
        },
    )
}

/// The subject's CN, else the whole subject; a certificate rustls accepted always parses, but
/// an empty name is still better than a panic if one did not.
fn client_name(der: &CertificateDer<'_>) -> ClientName {
    let name = x509_parser::parse_x509_certificate(der.as_ref())
        .map(|(_, cert)| {
            let subject = cert.subject();
            subject
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map_or_else(|| subject.to_string(), str::to_owned)
        })
        .unwrap_or_default();
    ClientName(name.into())
}

/// Plain HTTP on a TLS port: one 400 with the error body, a short drain of what the client sent
/// (closing on unread bytes would reset the connection and lose the answer), then the close.
async fn answer_plain_http(stream: &mut TcpStream) {
    let body = error_body(ErrorCode::Generic, "this listener speaks TLS: use https://");
    let mut response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    if stream.write_all(&response).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let mut scratch = [0u8; 4096];
    let mut drained = 0usize;
    let drain = async {
        while drained < 1 << 16 {
            match stream.read(&mut scratch).await {
                Ok(n) if n > 0 => drained += n,
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}

/// A rustls server configuration from the files, ALPN `http/1.1` (the server speaks HTTP/1.1).
fn build(files: &TlsFiles) -> anyhow::Result<Loaded> {
    let provider = ring_provider();
    let chain = read_certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|error| {
        anyhow::anyhow!(
            "reading the private key {}: {error} (expected a PEM PKCS#8, SEC1 EC or PKCS#1 RSA key)",
            files.key.display()
        )
    })?;
    let (verifier, client_ca): (Arc<dyn ClientCertVerifier>, _) = match &files.client_ca {
        None => (Arc::new(NoClientAuth), None),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(path)? {
                roots.add(certificate).with_context(|| {
                    format!(
                        "the client CA file {} holds an unusable certificate",
                        path.display()
                    )
                })?;
            }
            let webpki =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .with_context(|| format!("using {} as the client CA", path.display()))?;
            match files.client_auth {
                ClientAuth::Required => (webpki, None),
                ClientAuth::Optional => (
                    Arc::new(ProofOfPossessionOnly(webpki.clone())) as Arc<dyn ClientCertVerifier>,
                    Some(webpki),
                ),
            }
        }
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choosing the TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "the key {} does not fit the certificate {} (or one of them is unusable)",
                files.key.display(),
                files.cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        client_ca,
        required: files.client_auth == ClientAuth::Required && files.client_ca.is_some(),
    })
}

/// rustls on ring: ring is already linked (rcgen, signatures), and aws-lc would add a C build.
/// Key exchange prefers X25519, then P-256: ring's default list puts P-384 first, whose ECDH in
/// ring is generic code, about 25 times the cost of X25519 (it took 700 µs of server CPU per
/// handshake and capped new connections near 350/s on the benchmark VM).
#[expect(
    deprecated,
    reason = "rustls 0.23.48 deprecates the ring provider for lacking post-quantum key exchange; \
              X25519 and the NIST curves are what the clients of a signing server offer today"
)]
fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::kx_group;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    Arc::new(provider)
}

/// Every certificate of a PEM file; at least one.
fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| {
            anyhow::anyhow!("reading certificates from {}: {error}", path.display())
        })?;
    anyhow::ensure!(
        !certificates.is_empty(),
        "{} holds no PEM certificate",
        path.display()
    );
    Ok(certificates)
}

/// The optional client authentication of the main listener: a presented certificate must be
/// signed for in the handshake (proof of possession, by the client CA verifier's own checks),
/// but its chain is judged after the handshake ([`client_certificate`]), so an untrusted one is
/// answered 401 by the API rather than cut with a TLS alert.
#[derive(Debug)]
struct ProofOfPossessionOnly(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for ProofOfPossessionOnly {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Re-reads the TLS files of every TLS listener of one server (SIGHUP, or a test).
#[derive(Debug, Clone, Default)]
pub struct TlsReloader {
    listeners: Vec<Arc<TlsListener>>,
}

impl TlsReloader {
    pub fn new(listeners: impl IntoIterator<Item = Arc<TlsListener>>) -> Self {
        Self {
            listeners: listeners.into_iter().collect(),
        }
    }

    /// Whether any listener serves TLS.
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    /// Re-reads every listener's files, each on its own: a listener whose new files are bad keeps
    /// its old certificate (logged as an error); the first failure is returned.
    pub fn reload(&self) -> anyhow::Result<()> {
        let mut first_failure = None;
        for listener in &self.listeners {
            match listener.reload() {
                Ok(()) => tracing::info!(
                    listener = listener.name,
                    "TLS certificate and key re-read; new connections use them"
                ),
                Err(error) => {
                    tracing::error!(
                        listener = listener.name,
                        error = format!("{error:#}"),
                        "re-reading the TLS files failed; the previous certificate stays in use"
                    );
                    first_failure.get_or_insert(error);
                }
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}

/// Re-reads the TLS files on every SIGHUP for the life of the process (only when some listener
/// serves TLS: otherwise SIGHUP keeps its default meaning).
pub fn reload_on_sighup(reloader: TlsReloader) -> anyhow::Result<()> {
    if reloader.is_empty() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: re-reading the TLS files");
                let _ = reloader.reload();
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_named_by_its_common_name_or_else_its_whole_subject() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "billing-service");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        let key = rcgen::KeyPair::generate().unwrap();
        let named = params.self_signed(&key).unwrap();
        assert_eq!(client_name(named.der()).as_str(), "billing-service");

        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        let unnamed = params.self_signed(&key).unwrap();
        assert_eq!(client_name(unnamed.der()).as_str(), "O=Example");
    }
}
