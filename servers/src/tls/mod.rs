//! Certificates and TLS configurations for tlschat: a private CA kept in a data
//! directory, the server certificate it signs, client certificates for mutual TLS,
//! and the two ways a client decides to trust a server (a CA file, or a pinned
//! SHA-256 fingerprint).
//!
//! The one idea: on first run the server makes its own small CA and a server
//! certificate signed by it, and keeps both. A client can then trust the CA file
//! (`--ca`), or pin the server certificate's fingerprint (`--fingerprint`, printed
//! at start-up and in the same form as `openssl x509 -fingerprint -sha256`). Only
//! TLS 1.3 is offered.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod client;
pub mod https;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: no PEM {what} found")]
    Pem { path: PathBuf, what: &'static str },
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("bad fingerprint {0:?}: want 64 hex digits (colons allowed)")]
    Fingerprint(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SHA-256 of a DER certificate as `AB:CD:…`, the form `openssl x509
/// -fingerprint -sha256` prints.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses a fingerprint given by a person: hex, any case, colons optional.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], TlsError> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    let bad = || TlsError::Fingerprint(s.to_string());
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The subject common name of a DER certificate, if it has one.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// A certificate chain and its key, loaded from PEM files.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem_io(cert, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_io(cert, e))?;
        if chain.is_empty() {
            return Err(TlsError::Pem {
                path: cert.to_path_buf(),
                what: "certificate",
            });
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_io(key, e))?;
        Ok(Self { chain, key })
    }

    /// The fingerprint of the leaf certificate.
    pub fn fingerprint(&self) -> String {
        self.chain
            .first()
            .map(|c| fingerprint(c.as_ref()))
            .unwrap_or_default()
    }
}

fn pem_io(path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Io {
            path: path.to_path_buf(),
            source,
        },
        _ => TlsError::Pem {
            path: path.to_path_buf(),
            what: "certificate or key",
        },
    }
}

/// The server's own CA and certificate, kept in a data directory.
pub struct DataDir {
    dir: PathBuf,
    ca_name: String,
    server_name: String,
}

impl DataDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::named(dir, "sysnet tlschat")
    }

    /// A directory whose CA and server certificate are named after `product`
    /// ("`product` CA", "`product` server").
    pub fn named(dir: impl Into<PathBuf>, product: &str) -> Self {
        Self {
            dir: dir.into(),
            ca_name: format!("{product} CA"),
            server_name: format!("{product} server"),
        }
    }

    /// `$XDG_DATA_HOME/sysnet/tlschat`, else `~/.local/share/sysnet/tlschat`.
    pub fn default_path() -> PathBuf {
        let base = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("sysnet").join("tlschat")
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// Loads the server identity, creating the CA and the server certificate on
    /// first use. Returns whether they were created now.
    pub fn server_identity(&self) -> Result<(Identity, bool), TlsError> {
        let created = !self.server_cert().exists();
        if created {
            self.create()?;
        }
        Ok((
            Identity::load(&self.server_cert(), &self.server_key())?,
            created,
        ))
    }

    fn create(&self) -> Result<(), TlsError> {
        create_private_dir(&self.dir)?;
        let (ca_params, ca_key) = ca_params(&self.ca_name)?;
        let ca = ca_params.self_signed(&ca_key)?;

        let mut params = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])?;
        params.distinguished_name = dn(&self.server_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        identify(&mut params, &key);
        valid_for(&mut params, LEAF_DAYS);
        let cert = params.signed_by(&key, &ca, &ca_key)?;

        write_private(&self.ca_key(), &ca_key.serialize_pem())?;
        write_file(&self.ca_cert(), &ca.pem())?;
        write_private(&self.server_key(), &key.serialize_pem())?;
        // Written last: its presence means the directory is complete.
        write_file(&self.server_cert(), &cert.pem())?;
        Ok(())
    }

    /// Makes a new CA and server certificate in place of the current ones (one
    /// that expired or is about to).
    pub fn renew(&self) -> Result<(), TlsError> {
        self.create()
    }

    /// Issues a client certificate with common name `name`, signed by this
    /// directory's CA, for mutual TLS. Returns (certificate PEM, key PEM).
    pub fn issue_client(&self, name: &str) -> Result<(String, String), TlsError> {
        self.server_identity()?;
        let ca_key_pem = fs::read_to_string(self.ca_key()).map_err(io_err(&self.ca_key()))?;
        let ca_key = KeyPair::from_pem(&ca_key_pem)?;
        let ca_pem = fs::read_to_string(self.ca_cert()).map_err(io_err(&self.ca_cert()))?;
        // Re-signing the loaded parameters gives a certificate with the same subject
        // and key as the stored CA, which is all a signature chain looks at.
        let ca = CertificateParams::from_ca_cert_pem(&ca_pem)?.self_signed(&ca_key)?;

        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn(name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        identify(&mut params, &key);
        valid_for(&mut params, LEAF_DAYS);
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn ca_params(name: &str) -> Result<(CertificateParams, KeyPair), TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = dn(name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // A CA gets a subjectKeyIdentifier from rcgen; the authority one links it to itself.
    params.use_authority_key_identifier_extension = true;
    valid_for(&mut params, CA_DAYS);
    Ok((params, KeyPair::generate()?))
}

/// A server certificate's life: under the 398 days browsers accept.
const LEAF_DAYS: u64 = 397;
const CA_DAYS: u64 = 10 * 365;

/// Valid from a day ago (clocks differ a little) for `days` from now.
fn valid_for(params: &mut CertificateParams, days: u64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + std::time::Duration::from_secs(now.saturating_sub(86_400));
    params.not_after = epoch + std::time::Duration::from_secs(now + days * 86_400);
}

/// RFC 5280 §4.2.1.1–2: an end-entity certificate names its issuer's key
/// (authorityKeyIdentifier) and its own (subjectKeyIdentifier); strict verifiers
/// such as Python's `cryptography` refuse a chain without them. rcgen writes the
/// subject one for a non-CA only together with a basicConstraints that encodes
/// its DEFAULT `cA = FALSE` (not DER, which the same verifiers refuse), so it is
/// written here: the key's SHA-256, cut to 160 bits (RFC 7093 §2, method 1), the
/// same derivation rcgen uses for the CA.
fn identify(params: &mut CertificateParams, key: &KeyPair) {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key_raw());
    let mut value = vec![0x04, 20]; // OCTET STRING, 20 bytes
    value.extend_from_slice(&digest.as_ref()[..20]);
    params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        &[2, 5, 29, 14],
        value,
    )];
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

fn write_file(path: &Path, text: &str) -> Result<(), TlsError> {
    fs::write(path, text).map_err(io_err(path))
}

fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(text.as_bytes()).map_err(io_err(path))
}

fn load_roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| pem_io(ca, e))? {
        roots.add(cert.map_err(|e| pem_io(ca, e))?)?;
    }
    if roots.is_empty() {
        return Err(TlsError::Pem {
            path: ca.to_path_buf(),
            what: "CA certificate",
        });
    }
    Ok(roots)
}

/// A TLS 1.3 server configuration; with `client_ca`, clients must present a
/// certificate signed by it (mutual TLS).
pub fn server_config(id: Identity, client_ca: Option<&Path>) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(load_roots(ca)?), provider())
                    .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(builder.with_single_cert(id.chain, id.key)?)
}

/// How a client decides to trust the server.
pub enum Trust {
    /// A chain to this CA, with the host name (or IP) checked.
    Ca(PathBuf),
    /// Exactly this leaf certificate, whatever its names (like an SSH host key).
    Fingerprint([u8; 32]),
}

pub fn client_config(trust: &Trust, id: Option<Identity>) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match trust {
        Trust::Ca(ca) => builder.with_root_certificates(load_roots(ca)?),
        Trust::Fingerprint(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert {
                want: *fp,
                provider: provider(),
            })),
    };
    Ok(match id {
        Some(id) => builder.with_client_auth_cert(id.chain, id.key)?,
        None => builder.with_no_client_auth(),
    })
}

/// Accepts exactly one server certificate, by its SHA-256; signatures over the
/// handshake are still verified against that certificate's key.
#[derive(Debug)]
struct PinnedCert {
    want: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = ring::digest::digest(&ring::digest::SHA256, end_entity.as_ref());
        if got.as_ref() == self.want {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate fingerprint {} does not match the expected one",
                fingerprint(end_entity.as_ref())
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trips_through_the_parser() {
        let fp = fingerprint(b"not really a certificate");
        assert_eq!(fp.len(), 32 * 3 - 1);
        let parsed = parse_fingerprint(&fp).unwrap();
        assert_eq!(
            parse_fingerprint(&fp.replace(':', "").to_lowercase()).unwrap(),
            parsed
        );
    }

    #[test]
    fn bad_fingerprints_are_refused() {
        assert!(parse_fingerprint("AB:CD").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
        assert!(parse_fingerprint(&"é".repeat(32)).is_err());
    }

    /// (subjectKeyIdentifier, authorityKeyIdentifier's key id) of a certificate.
    fn key_ids(der: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        use x509_parser::extensions::ParsedExtension;
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        let (mut ski, mut aki) = (None, None);
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => {}
            }
        }
        (ski, aki)
    }

    #[test]
    fn data_dir_creates_once_and_issues_client_certs() {
        let tmp = tempfile::tempdir().unwrap();
        let dd = DataDir::new(tmp.path().join("d"));
        let (id, created) = dd.server_identity().unwrap();
        assert!(created);
        let (again, created) = dd.server_identity().unwrap();
        assert!(!created);
        assert_eq!(id.fingerprint(), again.fingerprint());
        assert_eq!(
            common_name(id.chain[0].as_ref()).as_deref(),
            Some("sysnet tlschat server")
        );
        let (cert, _key) = dd.issue_client("alice").unwrap();
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        assert_eq!(common_name(der.as_ref()).as_deref(), Some("alice"));
        // RFC 5280 key identifiers: the CA's subject one is what the leaves name.
        let ca = CertificateDer::from_pem_file(dd.ca_cert()).unwrap();
        let (ca_ski, ca_aki) = key_ids(ca.as_ref());
        assert!(ca_ski.is_some(), "CA without subjectKeyIdentifier");
        assert_eq!(ca_aki, ca_ski, "self-signed CA names its own key");
        for leaf in [id.chain[0].as_ref(), der.as_ref()] {
            let (ski, aki) = key_ids(leaf);
            assert!(ski.is_some(), "leaf without subjectKeyIdentifier");
            assert_eq!(
                aki, ca_ski,
                "leaf's authorityKeyIdentifier is not the CA's key"
            );
        }
        // Both configurations build from what the directory holds.
        server_config(id, Some(&dd.ca_cert())).unwrap();
        client_config(&Trust::Ca(dd.ca_cert()), None).unwrap();
    }
}
