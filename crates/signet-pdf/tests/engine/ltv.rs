//! PAdES B-T, B-LT and B-LTA end to end with signet-crypto's CA, TSA and OCSP responder, judged
//! offline by pyHanko (`validate` and `adesverify`), pdfsig and qpdf. Every URL in the
//! certificates points at a closed port, so a validator can only use what the file carries.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use signet_crypto::ca::{
    generate_service_key, AuthorityInfoAccess, CertificateAuthority, CrlRequest, IssueRequest,
    ServiceCertificateRequest, ServicePurpose,
};
use signet_crypto::csr::Subject;
use signet_crypto::ocsp::{CertificateStatus, OcspRequest, OcspResponder};
use signet_crypto::tsp::{HashAlgorithm, TimeStampAuthority, TimeStampRequest};
use signet_pdf::{
    add_document_timestamp, append_dss, embed_with_timestamp, prepare, signature_contents, vri_key,
    DssUpdate, PrepareOptions, ValidationData, VriEntry,
};
use time::{Duration, OffsetDateTime};

use crate::support::*;

/// Port 9 (discard) on the loopback: nothing listens, so fetching fails at once.
const CRL_URL: &str = "http://127.0.0.1:9/ca/crl";
const OCSP_URL: &str = "http://127.0.0.1:9/ca/ocsp";
const CA_ISSUERS_URL: &str = "http://127.0.0.1:9/ca/ca.der";

struct Services {
    ca: CertificateAuthority,
    ca_pem: PathBuf,
    tsa: TimeStampAuthority,
    ocsp_certificate: Vec<u8>,
    ocsp: OcspResponder,
}

struct Signer {
    certificate: Vec<u8>,
    serial: signet_crypto::ca::SerialNumber,
    key: Vec<u8>,
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn aia() -> Option<AuthorityInfoAccess<'static>> {
    Some(AuthorityInfoAccess {
        ocsp_url: OCSP_URL,
        ca_issuers_url: CA_ISSUERS_URL,
    })
}

fn services(dir: &Path) -> Services {
    let ca =
        CertificateAuthority::generate("Signet LTV Test CA", now(), Duration::days(3650)).unwrap();
    let ca_pem = dir.join("ca.pem");
    fs::write(&ca_pem, ca.certificate_pem()).unwrap();
    let service = |purpose| {
        let (key, public_key) = generate_service_key().unwrap();
        let certificate = ca
            .issue_service(&ServiceCertificateRequest {
                purpose,
                common_name: "Signet LTV service",
                public_key: &public_key,
                not_before: now() - Duration::minutes(1),
                not_after: now() + Duration::days(365),
                crl_distribution_url: CRL_URL,
                authority_info_access: aia(),
            })
            .unwrap();
        (certificate.der, key.to_vec())
    };
    let (tsa_certificate, tsa_key) = service(ServicePurpose::TimeStamping);
    let tsa = TimeStampAuthority::new(
        &tsa_certificate,
        &tsa_key,
        "1.3.6.1.4.1.99999.1"
            .parse::<signet_crypto::oid::PolicyId>()
            .unwrap(),
        1,
    )
    .unwrap();
    let (ocsp_certificate, ocsp_key) = service(ServicePurpose::OcspSigning);
    let ocsp = OcspResponder::new(ca.certificate_der(), &ocsp_certificate, &ocsp_key).unwrap();
    Services {
        ca,
        ca_pem,
        tsa,
        ocsp_certificate,
        ocsp,
    }
}

fn signer(services: &Services, name: &str) -> Signer {
    let (key, public_key) = generate_service_key().unwrap();
    let issued = services
        .ca
        .issue(&IssueRequest {
            subject: &Subject::builder().common_name(name).build(),
            public_key: &public_key,
            not_before: now() - Duration::minutes(1),
            not_after: now() + Duration::days(365),
            crl_distribution_url: CRL_URL,
            email: None,
            authority_info_access: aia(),
        })
        .unwrap();
    Signer {
        certificate: issued.der,
        serial: issued.serial,
        key: key.to_vec(),
    }
}

impl Services {
    /// A token from the TSA over `data`, as a TSA client would fetch it.
    fn token(&self, data: &[u8]) -> Vec<u8> {
        let request = TimeStampRequest::new(
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha256.digest(data),
            Some(42),
        );
        self.tsa.issue(&request, now()).unwrap()
    }

    /// A token whose imprint is `digest` itself (a document timestamp).
    fn token_for_digest(&self, digest: &[u8; 32]) -> Vec<u8> {
        let request = TimeStampRequest::new(HashAlgorithm::Sha256, digest.to_vec(), Some(43));
        self.tsa.issue(&request, now()).unwrap()
    }

    /// The responder's "good" answer about `certificate`.
    fn ocsp_good(&self, certificate: &[u8]) -> Vec<u8> {
        let request = OcspRequest::for_certificate(certificate, self.ca.certificate_der()).unwrap();
        self.ocsp
            .respond(
                &request,
                &[CertificateStatus::Good],
                now(),
                Duration::days(1),
            )
            .unwrap()
    }

    fn crl(&self) -> Vec<u8> {
        self.ca
            .crl(&CrlRequest {
                number: 1,
                this_update: now(),
                next_update: now() + Duration::days(7),
                revoked: &[],
            })
            .unwrap()
    }

    /// What validates a certificate issued by the CA: the chain, the responder's certificate,
    /// an OCSP response and the CRL.
    fn validation_data(&self, certificates: &[&[u8]]) -> ValidationData {
        let mut data = ValidationData {
            certificates: certificates.iter().map(|c| c.to_vec()).collect(),
            ocsp_responses: certificates.iter().map(|c| self.ocsp_good(c)).collect(),
            crls: vec![self.crl()],
        };
        data.certificates.push(self.ocsp_certificate.clone());
        data.certificates.push(self.ca.certificate_der().to_vec());
        data
    }
}

/// Signs `input` with `signer` at B-T, then adds its DSS entry (B-LT). Returns the new bytes.
fn sign_b_lt(services: &Services, signer: &Signer, input: &[u8]) -> Vec<u8> {
    let mut file = Cursor::new(Vec::new());
    let options = PrepareOptions::new(now()).with_timestamp_reserve();
    let prepared = prepare(Cursor::new(input), &mut file, &options).unwrap();
    let cms = signet_crypto::cms::sign_with_key(
        &prepared.digest,
        &signer.key,
        &signer.certificate,
        &[services.ca.certificate_der()],
    )
    .unwrap();
    embed_with_timestamp::<_, _, std::convert::Infallible>(
        &mut file,
        &prepared.byte_range,
        &cms,
        |signature| Ok(services.token(signature)),
    )
    .unwrap();

    let contents = signature_contents(&mut file, &prepared.byte_range).unwrap();
    let update = DssUpdate {
        entries: vec![VriEntry {
            signature_contents: contents,
            data: services.validation_data(&[&signer.certificate, services.tsa.certificate_der()]),
            time: Some(now()),
        }],
        ..DssUpdate::default()
    };
    let mut out = Cursor::new(Vec::new());
    let appended = append_dss(Cursor::new(file.into_inner()), &mut out, &update).unwrap();
    assert!(appended.appended);
    out.into_inner()
}

/// Adds a document timestamp and the DSS entry for its TSA (B-LTA).
fn add_b_lta(services: &Services, input: &[u8]) -> Vec<u8> {
    let mut file = Cursor::new(Vec::new());
    let prepared = add_document_timestamp::<_, _, _, std::convert::Infallible>(
        Cursor::new(input),
        &mut file,
        &PrepareOptions::document_timestamp(now()),
        |digest| Ok(services.token_for_digest(digest)),
    )
    .unwrap();
    let contents = signature_contents(&mut file, &prepared.byte_range).unwrap();
    let update = DssUpdate {
        entries: vec![VriEntry {
            signature_contents: contents,
            data: services.validation_data(&[services.tsa.certificate_der()]),
            time: None,
        }],
        ..DssUpdate::default()
    };
    let mut out = Cursor::new(Vec::new());
    append_dss(Cursor::new(file.into_inner()), &mut out, &update).unwrap();
    out.into_inner()
}

/// Signs `input` at B-T only (no DSS).
fn sign_b_t(services: &Services, signer: &Signer, input: &[u8]) -> Vec<u8> {
    let mut file = Cursor::new(Vec::new());
    let options = PrepareOptions::new(now()).with_timestamp_reserve();
    let prepared = prepare(Cursor::new(input), &mut file, &options).unwrap();
    let cms = signet_crypto::cms::sign_with_key(
        &prepared.digest,
        &signer.key,
        &signer.certificate,
        &[services.ca.certificate_der()],
    )
    .unwrap();
    embed_with_timestamp::<_, _, std::convert::Infallible>(
        &mut file,
        &prepared.byte_range,
        &cms,
        |signature| Ok(services.token(signature)),
    )
    .unwrap();
    file.into_inner()
}

/// `pyhanko sign adesverify --executive-summary`, offline: one `field:fingerprint:VERDICT` line
/// per signature.
fn adesverify(pdf: &Path, ca_pem: &Path) -> String {
    let out = std::process::Command::new(venv().join("bin/pyhanko"))
        .args(os_args![
            "sign",
            "adesverify",
            "--executive-summary",
            "--trust",
            ca_pem,
            "--trust-replace",
            pdf
        ])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts pyHanko's AdES validation calls each of `count` signatures VALID.
fn assert_ades_valid(pdf: &Path, ca_pem: &Path, count: usize) {
    let report = adesverify(pdf, ca_pem);
    let verdicts: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("Signature") && l.matches(':').count() == 2)
        .collect();
    assert_eq!(
        verdicts.len(),
        count,
        "adesverify {}:\n{report}",
        pdf.display()
    );
    assert!(
        verdicts.iter().all(|l| l.ends_with(":VALID")),
        "adesverify {}:\n{report}",
        pdf.display()
    );
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// pdfsig's verdict: each of `count` CMS signatures valid. (Poppler cannot check document
/// timestamps: it calls them "Unable to validate this type of signature", not invalid.)
fn assert_pdfsig_valid(pdf: &Path, count: usize) {
    let report = signet_testkit::pdfsig_report(pdf);
    assert_eq!(
        report
            .matches("Signature Validation: Signature is Valid.")
            .count(),
        count,
        "pdfsig on {}:\n{report}",
        pdf.display()
    );
    assert!(!report.contains("Signature is Invalid"), "{report}");
}

/// Everything an outside judge can say about a file with `signatures` CMS signatures.
fn assert_long_term_valid(pdf: &Path, services: &Services, signatures: usize) {
    signet_testkit::assert_pyhanko_accepts(pdf, &services.ca_pem, signatures, &[]);
    assert_ades_valid(pdf, &services.ca_pem, signatures);
    assert_pdfsig_valid(pdf, signatures);
    assert_qpdf_clean(pdf, false);
}

#[test]
fn a_b_lt_document_validates_offline_and_a_b_t_one_does_not() {
    let dir = scratch_dir("ltv_b_lt");
    let services = services(&dir);
    let alice = signer(&services, "Alice LTV");

    let b_t = write(
        &dir,
        "b-t.pdf",
        &sign_b_t(&services, &alice, &classic_pdf(1)),
    );
    let b_lt = write(
        &dir,
        "b-lt.pdf",
        &sign_b_lt(&services, &alice, &classic_pdf(1)),
    );

    assert_long_term_valid(&b_lt, &services, 1);
    // Without the DSS an offline validator has no revocation data: not VALID.
    let report = adesverify(&b_t, &services.ca_pem);
    assert!(!report.contains(":VALID"), "{report}");
    assert!(report.contains("no revocation information"), "{report}");
}

#[test]
fn a_b_lta_document_validates_offline_with_its_document_timestamp_acceptable() {
    let dir = scratch_dir("ltv_b_lta");
    let services = services(&dir);
    let alice = signer(&services, "Alice LTA");

    let b_lt = sign_b_lt(&services, &alice, &classic_pdf(2));
    let b_lta = write(&dir, "b-lta.pdf", &add_b_lta(&services, &b_lt));

    assert_long_term_valid(&b_lta, &services, 1);
    let report = signet_testkit::pdfsig_report(&b_lta);
    assert_eq!(report.matches("Signature #").count(), 2, "{report}");
    let text = String::from_utf8_lossy(&fs::read(&b_lta).unwrap()).into_owned();
    assert!(text.contains("/Type /DocTimeStamp /Filter /Adobe.PPKLite /SubFilter /ETSI.RFC3161"));
    // Two VRI entries: the signature's and the document timestamp's.
    let signatures = signet_testkit::signatures_in(text.as_bytes());
    assert_eq!(signatures.len(), 2);
    let bytes = fs::read(&b_lta).unwrap();
    for (range, _) in signatures {
        let contents =
            signature_contents(&mut Cursor::new(&bytes), &signet_pdf::ByteRange(range)).unwrap();
        assert!(text.contains(&format!("/{} <<", vri_key(&contents))));
    }
}

#[test]
fn two_signers_each_at_b_lt_then_a_document_timestamp_all_stay_valid() {
    let dir = scratch_dir("ltv_two");
    let services = services(&dir);
    let alice = signer(&services, "Alice Two");
    let bob = signer(&services, "Bob Two");

    let first = sign_b_lt(&services, &alice, &classic_pdf(1));
    let both = write(&dir, "both.pdf", &sign_b_lt(&services, &bob, &first));
    assert_long_term_valid(&both, &services, 2);

    let archived = write(
        &dir,
        "both-lta.pdf",
        &add_b_lta(&services, &fs::read(&both).unwrap()),
    );
    assert_long_term_valid(&archived, &services, 2);
}

#[test]
fn data_already_in_the_dss_is_not_written_again() {
    let dir = scratch_dir("ltv_dedup");
    let services = services(&dir);
    let alice = signer(&services, "Alice Dedup");
    let b_lt = sign_b_lt(&services, &alice, &classic_pdf(1));
    let ca_certificate = services.ca.certificate_der().to_vec();

    // The CA certificate is in the DSS already, and the VRI entry exists: nothing to add.
    let (range, _) = signet_testkit::signatures_in(&b_lt)[0].clone();
    let contents =
        signature_contents(&mut Cursor::new(&b_lt), &signet_pdf::ByteRange(range)).unwrap();
    let update = DssUpdate {
        entries: vec![VriEntry {
            signature_contents: contents,
            data: ValidationData {
                certificates: vec![ca_certificate.clone()],
                ..ValidationData::default()
            },
            time: None,
        }],
        unassociated: ValidationData {
            certificates: vec![ca_certificate],
            ..ValidationData::default()
        },
        ..DssUpdate::default()
    };
    let mut out = Cursor::new(Vec::new());
    let appended = append_dss(Cursor::new(&b_lt), &mut out, &update).unwrap();
    assert!(!appended.appended, "{appended:?}");
    assert_eq!(out.into_inner(), b_lt);

    // A new CRL (ECDSA: new bytes each time) is added once, to the existing DSS object, and
    // the file stays valid.
    let crl = services.crl();
    let update = DssUpdate {
        unassociated: ValidationData {
            crls: vec![crl.clone(), crl],
            ..ValidationData::default()
        },
        ..DssUpdate::default()
    };
    let mut out = Cursor::new(Vec::new());
    let appended = append_dss(Cursor::new(&b_lt), &mut out, &update).unwrap();
    assert!(appended.appended);
    assert_eq!(appended.new_streams, 1);
    let extended = write(&dir, "extended.pdf", &out.into_inner());
    assert_long_term_valid(&extended, &services, 1);
}

#[test]
fn a_cms_too_large_for_the_placeholder_fails_before_the_tsa_is_asked() {
    let services = services(&scratch_dir("ltv_small"));
    let alice = signer(&services, "Alice Small");
    let mut file = Cursor::new(Vec::new());
    let mut options = PrepareOptions::new(now());
    options.placeholder_capacity = 64;
    let prepared = prepare(Cursor::new(classic_pdf(1)), &mut file, &options).unwrap();
    let cms = signet_crypto::cms::sign_with_key(
        &prepared.digest,
        &alice.key,
        &alice.certificate,
        &[services.ca.certificate_der()],
    )
    .unwrap();
    let mut asked = false;
    let result = embed_with_timestamp::<_, _, std::convert::Infallible>(
        &mut file,
        &prepared.byte_range,
        &cms,
        |signature| {
            asked = true;
            Ok(services.token(signature))
        },
    );
    assert!(matches!(
        result,
        Err(signet_pdf::TimestampedError::Pdf(
            signet_pdf::PdfError::PlaceholderTooSmall { .. }
        ))
    ));
    assert!(!asked);
}

#[test]
fn a_tsa_failure_leaves_the_placeholder_empty() {
    let services = services(&scratch_dir("ltv_tsa_down"));
    let alice = signer(&services, "Alice Down");
    let mut file = Cursor::new(Vec::new());
    let options = PrepareOptions::new(now()).with_timestamp_reserve();
    let prepared = prepare(Cursor::new(classic_pdf(1)), &mut file, &options).unwrap();
    let cms = signet_crypto::cms::sign_with_key(
        &prepared.digest,
        &alice.key,
        &alice.certificate,
        &[services.ca.certificate_der()],
    )
    .unwrap();
    let result = embed_with_timestamp(&mut file, &prepared.byte_range, &cms, |_| {
        Err("the TSA is down")
    });
    assert!(matches!(
        result,
        Err(signet_pdf::TimestampedError::Timestamp("the TSA is down"))
    ));
    assert!(signet_pdf::placeholder_is_empty(&mut file, &prepared.byte_range).unwrap());
}

/// pyHanko's own DSS writer (`DocumentSecurityStore.add_dss`): VRI entries as indirect objects.
const PYHANKO_ADD_DSS: &str = r#"
import hashlib, io, sys
from asn1crypto import crl, ocsp, x509
from pyhanko.sign.validation.dss import DocumentSecurityStore
pdf, contents, out = sys.argv[1], sys.argv[2], sys.argv[3]
def load(kind, paths):
    return [kind.load(open(p, "rb").read()) for p in paths.split(",") if p]
buf = io.BytesIO(open(pdf, "rb").read())
DocumentSecurityStore.add_dss(
    buf,
    open(contents, "rb").read(),
    certs=load(x509.Certificate, sys.argv[4]),
    ocsps=load(ocsp.OCSPResponse, sys.argv[5]),
    crls=load(crl.CertificateList, sys.argv[6]),
)
open(out, "wb").write(buf.getvalue())
"#;

#[test]
fn a_dss_written_by_pyhanko_is_extended_and_every_signature_stays_valid() {
    let dir = scratch_dir("ltv_pyhanko_dss");
    let services = services(&dir);
    let alice = signer(&services, "Alice Foreign");
    let bob = signer(&services, "Bob Foreign");

    // Alice at B-T, her DSS written by pyHanko.
    let b_t = sign_b_t(&services, &alice, &classic_pdf(1));
    let (range, _) = signet_testkit::signatures_in(&b_t)[0].clone();
    let contents =
        signature_contents(&mut Cursor::new(&b_t), &signet_pdf::ByteRange(range)).unwrap();
    let data = services.validation_data(&[&alice.certificate, services.tsa.certificate_der()]);
    let files = |kind: &str, items: &[Vec<u8>]| {
        items
            .iter()
            .enumerate()
            .map(|(i, der)| {
                write(&dir, &format!("{kind}{i}.der"), der)
                    .to_str()
                    .unwrap()
                    .to_owned()
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let script = write(&dir, "add_dss.py", PYHANKO_ADD_DSS.as_bytes());
    let input = write(&dir, "b-t.pdf", &b_t);
    let contents_file = write(&dir, "contents.bin", &contents);
    let foreign = dir.join("pyhanko-dss.pdf");
    run_ok(
        venv().join("bin/python"),
        os_args![
            &script,
            &input,
            &contents_file,
            &foreign,
            &files("cert", &data.certificates),
            &files("ocsp", &data.ocsp_responses),
            &files("crl", &data.crls)
        ],
    );
    let foreign_bytes = fs::read(&foreign).unwrap();
    let alice_key = vri_key(&contents);
    assert!(String::from_utf8_lossy(&foreign_bytes).contains(&format!("/{alice_key}")));

    // Bob signs at B-LT on top: his entry joins pyHanko's DSS, Alice's entry stays as it was.
    let both = write(
        &dir,
        "both.pdf",
        &sign_b_lt(&services, &bob, &foreign_bytes),
    );
    assert_long_term_valid(&both, &services, 2);
}

#[test]
fn a_raised_cancel_token_stops_append_dss() {
    let services = services(&scratch_dir("ltv_cancel"));
    let alice = signer(&services, "Alice Cancel");
    let b_t = sign_b_t(&services, &alice, &classic_pdf(1));
    let update = DssUpdate {
        unassociated: services.validation_data(&[&alice.certificate]),
        ..DssUpdate::default()
    };
    update.cancel.cancel();
    let mut out = Vec::new();
    let result = append_dss(Cursor::new(&b_t), &mut out, &update);
    assert!(
        matches!(result, Err(signet_pdf::PdfError::Cancelled)),
        "{result:?}"
    );
    assert!(out.is_empty());
}

/// An external RSA-2048 TSA: `openssl ts -reply` with a certificate Signet's CA issued for it
/// (critical EKU timeStamping), answering with the CA certificate in the token as well.
struct OpensslTsa {
    dir: PathBuf,
    certificate: Vec<u8>,
}

impl OpensslTsa {
    fn new(services: &Services, dir: &Path) -> Self {
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        let key = dir.join("tsa-rsa.key");
        run_ok(
            "openssl",
            os_args![
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &s(&key)
            ],
        );
        let spki = dir.join("tsa-rsa.spki");
        run_ok(
            "openssl",
            os_args![
                "pkey",
                "-in",
                &s(&key),
                "-pubout",
                "-outform",
                "DER",
                "-out",
                &s(&spki)
            ],
        );
        let public_key =
            signet_crypto::csr::PublicKey::from_spki_der(&fs::read(&spki).unwrap()).unwrap();
        let certificate = services
            .ca
            .issue_service(&ServiceCertificateRequest {
                purpose: ServicePurpose::TimeStamping,
                common_name: "External RSA TSA",
                public_key: &public_key,
                not_before: now() - Duration::minutes(1),
                not_after: now() + Duration::days(365),
                crl_distribution_url: CRL_URL,
                authority_info_access: aia(),
            })
            .unwrap();
        fs::write(dir.join("tsa-rsa.pem"), certificate.pem()).unwrap();
        fs::write(dir.join("tsa-serial"), "01\n").unwrap();
        fs::write(
            dir.join("tsa.cnf"),
            format!(
                "[tsa]\ndefault_tsa = tsa1\n[tsa1]\nserial = {}\nsigner_digest = sha256\n\
                 default_policy = 1.3.6.1.4.1.99999.2\ndigests = sha256\naccuracy = secs:1\n\
                 ess_cert_id_alg = sha256\ness_cert_id_chain = no\n",
                s(&dir.join("tsa-serial"))
            ),
        )
        .unwrap();
        Self {
            dir: dir.to_owned(),
            certificate: certificate.der,
        }
    }

    /// A token over `data` from `openssl ts -reply`.
    fn token(&self, services: &Services, data: &[u8]) -> Vec<u8> {
        let s = |name: &str| self.dir.join(name).to_str().unwrap().to_owned();
        let request = TimeStampRequest::new(
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha256.digest(data),
            Some(7),
        );
        fs::write(self.dir.join("request.tsq"), request.to_der().unwrap()).unwrap();
        run_ok(
            "openssl",
            os_args![
                "ts",
                "-reply",
                "-config",
                &s("tsa.cnf"),
                "-queryfile",
                &s("request.tsq"),
                "-signer",
                &s("tsa-rsa.pem"),
                "-inkey",
                &s("tsa-rsa.key"),
                "-chain",
                &services.ca_pem,
                "-token_out",
                "-out",
                &s("token.der")
            ],
        );
        fs::read(self.dir.join("token.der")).unwrap()
    }
}

#[test]
fn a_token_from_an_external_rsa_tsa_fits_the_reserve_and_validates_at_b_lt() {
    let dir = scratch_dir("ltv_openssl_tsa");
    let services = services(&dir);
    let tsa = OpensslTsa::new(&services, &dir);
    let alice = signer(&services, "Alice External");

    let mut file = Cursor::new(Vec::new());
    let options = PrepareOptions::new(now()).with_timestamp_reserve();
    let prepared = prepare(Cursor::new(classic_pdf(1)), &mut file, &options).unwrap();
    let cms = signet_crypto::cms::sign_with_key(
        &prepared.digest,
        &alice.key,
        &alice.certificate,
        &[services.ca.certificate_der()],
    )
    .unwrap();
    let mut token_len = 0;
    let embedded = embed_with_timestamp::<_, _, std::convert::Infallible>(
        &mut file,
        &prepared.byte_range,
        &cms,
        |signature| {
            let token = tsa.token(&services, signature);
            token_len = token.len();
            Ok(token)
        },
    )
    .unwrap();
    eprintln!(
        "RSA-2048 TSA token with its certificate and the CA's: {token_len} bytes; CMS {} -> {}",
        cms.len(),
        embedded.len()
    );
    assert!(embedded.len() - cms.len() < signet_pdf::TIMESTAMP_TOKEN_RESERVE / 2);

    let contents = signature_contents(&mut file, &prepared.byte_range).unwrap();
    let update = DssUpdate {
        entries: vec![VriEntry {
            signature_contents: contents,
            data: services.validation_data(&[&alice.certificate, &tsa.certificate]),
            time: Some(now()),
        }],
        ..DssUpdate::default()
    };
    let mut out = Cursor::new(Vec::new());
    append_dss(Cursor::new(file.into_inner()), &mut out, &update).unwrap();
    let b_lt = write(&dir, "b-lt.pdf", &out.into_inner());
    assert_long_term_valid(&b_lt, &services, 1);
}

/// B-LTA on files from other producers: cross-reference and object streams, linearized files,
/// PDF 2.0, forms. The DSS update follows the file's newest cross-reference kind.
#[test]
fn corpus_files_with_streams_and_forms_reach_b_lta_and_validate() {
    let dir = scratch_dir("ltv_corpus");
    let services = services(&dir);
    let alice = signer(&services, "Alice Corpus");
    for name in [
        "objstreams",
        "linearized-objstreams",
        "form-objstreams",
        "pdf20",
        "libreoffice",
    ] {
        let entry = &crate::corpus::corpus()[name];
        assert!(
            entry.pyhanko_args.is_empty(),
            "{name} needs {:?}",
            entry.pyhanko_args
        );
        let b_lt = sign_b_lt(&services, &alice, &fs::read(&entry.path).unwrap());
        let b_lta = write(
            &dir,
            &format!("{name}-b-lta.pdf"),
            &add_b_lta(&services, &b_lt),
        );
        assert_long_term_valid(&b_lta, &services, 1);
    }
}

/// A B-T signature timestamped at `signed_at` whose signer was revoked at `revoked_at`, with
/// the DSS saying so (OCSP and CRL): the B-LT file and the B-LTA file made from it.
fn revoked_signer_files(
    services: &Services,
    dir: &Path,
    signed_at: OffsetDateTime,
    revoked_at: OffsetDateTime,
) -> (PathBuf, PathBuf) {
    let alice = signer(services, "Alice Revoked");

    // B-T, the signature timestamp proving the signature existed at `signed_at`.
    let mut file = Cursor::new(Vec::new());
    let options = PrepareOptions::new(signed_at).with_timestamp_reserve();
    let prepared = prepare(Cursor::new(classic_pdf(1)), &mut file, &options).unwrap();
    let cms = signet_crypto::cms::sign_with_key(
        &prepared.digest,
        &alice.key,
        &alice.certificate,
        &[services.ca.certificate_der()],
    )
    .unwrap();
    embed_with_timestamp::<_, _, std::convert::Infallible>(
        &mut file,
        &prepared.byte_range,
        &cms,
        |signature| {
            let request = TimeStampRequest::new(
                HashAlgorithm::Sha256,
                HashAlgorithm::Sha256.digest(signature),
                Some(44),
            );
            Ok(services.tsa.issue(&request, signed_at).unwrap())
        },
    )
    .unwrap();

    // Then the signer is revoked; the DSS holds the news (OCSP and CRL say revoked).
    let status = CertificateStatus::Revoked {
        revoked_at,
        reason: signet_crypto::ca::RevocationReason::KeyCompromise,
    };
    let request =
        OcspRequest::for_certificate(&alice.certificate, services.ca.certificate_der()).unwrap();
    let revoked_ocsp = services
        .ocsp
        .respond(&request, &[status], now(), Duration::days(1))
        .unwrap();
    let crl = services
        .ca
        .crl(&CrlRequest {
            number: 2,
            this_update: now(),
            next_update: now() + Duration::days(7),
            revoked: &[signet_crypto::ca::RevokedCertificate {
                serial: alice.serial,
                revoked_at,
                reason: signet_crypto::ca::RevocationReason::KeyCompromise,
            }],
        })
        .unwrap();
    let mut data = services.validation_data(&[services.tsa.certificate_der()]);
    data.certificates.push(alice.certificate.clone());
    data.ocsp_responses.push(revoked_ocsp);
    data.crls = vec![crl];
    let contents = signature_contents(&mut file, &prepared.byte_range).unwrap();
    let update = DssUpdate {
        entries: vec![VriEntry {
            signature_contents: contents,
            data,
            time: Some(now()),
        }],
        ..DssUpdate::default()
    };
    let mut out = Cursor::new(Vec::new());
    append_dss(Cursor::new(file.into_inner()), &mut out, &update).unwrap();
    let b_lt = out.into_inner();
    let b_lta = add_b_lta(services, &b_lt);
    (
        write(dir, "b-lt-revoked.pdf", &b_lt),
        write(dir, "b-lta-revoked.pdf", &b_lta),
    )
}

#[test]
fn a_signer_revoked_after_the_signature_timestamp_still_validates() {
    let dir = scratch_dir("ltv_revoked_after");
    let services = services(&dir);
    let signed_at = now() - Duration::seconds(30);
    let (b_lt, b_lta) = revoked_signer_files(
        &services,
        &dir,
        signed_at,
        signed_at + Duration::seconds(20),
    );

    // The signature timestamp proves the signature older than the revocation.
    for file in [&b_lt, &b_lta] {
        assert_ades_valid(file, &services.ca_pem, 1);
        assert_pdfsig_valid(file, 1);
        assert_qpdf_clean(file, false);
    }
}

#[test]
fn a_signer_revoked_before_the_signature_timestamp_is_not_valid() {
    let dir = scratch_dir("ltv_revoked_before");
    let services = services(&dir);
    let signed_at = now() - Duration::seconds(30);
    let (b_lt, b_lta) = revoked_signer_files(
        &services,
        &dir,
        signed_at,
        signed_at - Duration::seconds(20),
    );

    for file in [&b_lt, &b_lta] {
        let report = adesverify(file, &services.ca_pem);
        assert!(!report.contains(":VALID"), "{report}");
        assert!(report.contains("revoked"), "{report}");
    }
}
