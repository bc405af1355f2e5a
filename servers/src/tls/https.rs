//! The HTTPS server's certificate: loaded from PEM files, checked the way an
//! operator needs before a reload goes live, and turned into the rustls
//! configuration every TLS listener shares.
//!
//! The one idea: everything that can be wrong with a certificate is found when the
//! configuration is loaded (by `--check-config`, at start-up and on every reload,
//! always before privileges are dropped), so a broken renewal is refused while the
//! running certificate keeps being served. The [`ServerConfig`] built here carries
//! the session-resumption state too (a ticket key that rotates, and a session
//! cache), so it is built once per configuration and shared by every event loop.

use super::{Identity, TlsError};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Below this much validity left, loading succeeds with a warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);
/// TLS 1.2 sessions (and 1.3 ones when tickets are off) remembered per process.
const SESSION_CACHE: usize = 4096;
/// What ALPN offers, in order of preference.
pub const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];
/// What ALPN offers when HTTP/2 is turned off.
pub const ALPN_HTTP1: &[&[u8]] = &[b"http/1.1"];

/// What a loaded certificate and key turned out to be.
#[derive(Debug)]
pub struct Checked {
    pub config: Arc<ServerConfig>,
    /// Things worth a line in the log that do not stop the server (near expiry).
    pub warnings: Vec<String>,
    /// The leaf's subject common name (for the start-up log).
    pub subject: String,
    /// Seconds until the leaf expires.
    pub expires_in: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(transparent)]
    Load(#[from] TlsError),
    #[error("{path}: certificate {index} cannot be parsed: {msg}")]
    Parse {
        path: String,
        index: usize,
        msg: String,
    },
    #[error("{path}: certificate {index} ({subject}) is not issued by certificate {next} ({next_subject}): the chain must go leaf first, then each issuer")]
    Order {
        path: String,
        index: usize,
        subject: String,
        next: usize,
        next_subject: String,
    },
    #[error("{path}: certificate {index} ({subject}) expired {days} days ago")]
    Expired {
        path: String,
        index: usize,
        subject: String,
        days: u64,
    },
    #[error("{path}: certificate {index} ({subject}) is not valid yet")]
    NotYetValid {
        path: String,
        index: usize,
        subject: String,
    },
    #[error("{key}: the private key does not match the certificate in {cert}")]
    KeyMismatch { key: String, cert: String },
    #[error("{key}: unsupported private key (want RSA, ECDSA P-256/P-384 or Ed25519): {msg}")]
    Key { key: String, msg: String },
}

/// The ciphers offered: TLS 1.3's AEAD suites, and for TLS 1.2 only ECDHE key
/// exchange with an AEAD cipher (no RSA key transport, no CBC).
fn https_provider() -> CryptoProvider {
    use rustls::crypto::ring::cipher_suite as cs;
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites = vec![
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    p
}

fn subject_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| cert.subject().to_string())
}

/// Checks the chain's order and dates; returns (leaf subject, seconds the leaf
/// has left, warnings).
pub fn check_chain(
    path: &Path,
    chain: &[CertificateDer<'_>],
    now: SystemTime,
) -> Result<(String, u64, Vec<String>), CertError> {
    let shown = path.display().to_string();
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut parsed = Vec::with_capacity(chain.len());
    for (index, der) in chain.iter().enumerate() {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| CertError::Parse {
                path: shown.clone(),
                index,
                msg: e.to_string(),
            })?;
        parsed.push(cert);
    }
    let mut warnings = Vec::new();
    for (index, cert) in parsed.iter().enumerate() {
        let subject = subject_of(cert);
        let v = cert.validity();
        if v.not_before.timestamp() > now {
            return Err(CertError::NotYetValid {
                path: shown,
                index,
                subject,
            });
        }
        let left = v.not_after.timestamp() - now;
        if left < 0 {
            return Err(CertError::Expired {
                path: shown,
                index,
                subject,
                days: left.unsigned_abs() / 86_400,
            });
        }
        if (left as u64) < EXPIRY_WARNING.as_secs() {
            warnings.push(format!(
                "{shown}: certificate {index} ({subject}) expires in {} days",
                left / 86_400
            ));
        }
        if let Some(next) = parsed.get(index + 1) {
            if cert.issuer().as_raw() != next.subject().as_raw() {
                return Err(CertError::Order {
                    path: shown,
                    index,
                    subject,
                    next: index + 1,
                    next_subject: subject_of(next),
                });
            }
        }
    }
    let leaf = &parsed[0];
    let left = (leaf.validity().not_after.timestamp() - now).max(0) as u64;
    Ok((subject_of(leaf), left, warnings))
}

/// A certificate chain and its key, loaded and checked, ready to be served.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// Things worth a line in the log that do not stop the server (near expiry).
    pub warnings: Vec<String>,
    /// The leaf's subject common name (for the start-up log).
    pub subject: String,
    /// Seconds until the leaf expires.
    pub expires_in: u64,
    /// The leaf's DNS names (subjectAltName), lower-case, wildcards as `*.example.test`.
    pub names: Vec<String>,
}

impl Loaded {
    /// Whether a client asking for `name` (lower-case; a site's own `*.x` wildcard
    /// counts as one name) would accept this certificate (RFC 6125 §6.4: a
    /// wildcard stands for exactly one leftmost label).
    pub fn covers(&self, name: &str) -> bool {
        self.names.iter().any(|n| {
            n == name
                || n.strip_prefix('*').is_some_and(|suffix| {
                    name.strip_suffix(suffix)
                        .is_some_and(|label| !label.is_empty() && !label.contains('.'))
                })
        })
    }
}

/// Loads `cert` (the chain, leaf first) and `key` and checks them: chain order,
/// dates, and that the key is the leaf's.
pub fn load_key(cert: &Path, key: &Path) -> Result<Loaded, CertError> {
    let id = Identity::load(cert, key)?;
    let (subject, expires_in, warnings) = check_chain(cert, &id.chain, SystemTime::now())?;
    let names = dns_names(&id.chain[0]);
    let provider = https_provider();
    let signer = provider
        .key_provider
        .load_private_key(id.key.clone_key())
        .map_err(|e| CertError::Key {
            key: key.display().to_string(),
            msg: e.to_string(),
        })?;
    let certified = CertifiedKey::new(id.chain, signer);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(CertError::KeyMismatch {
                key: key.display().to_string(),
                cert: cert.display().to_string(),
            })
        }
    }
    Ok(Loaded {
        key: Arc::new(certified),
        warnings,
        subject,
        expires_in,
        names,
    })
}

/// The DNS names of a leaf's subjectAltName, lower-case.
fn dns_names(der: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for n in &san.general_names {
                if let GeneralName::DNSName(d) = n {
                    out.push(d.trim_end_matches('.').to_ascii_lowercase());
                }
            }
        }
    }
    out
}

/// Chooses the certificate by the name the client asked for (SNI): exact names
/// first, then the longest `*.` wildcard (the same order `Host` picks a site in),
/// else the default (`[tls]`), which also answers clients that send no name.
#[derive(Debug)]
pub struct SniResolver {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `(".example.test", key)`, longest suffix first.
    wildcards: Vec<(String, Arc<CertifiedKey>)>,
}

impl SniResolver {
    /// `sites`: each site's lower-case names (`*.example.test` for a wildcard)
    /// and its certificate.
    pub fn new(default: Arc<CertifiedKey>, sites: &[(Vec<String>, Arc<CertifiedKey>)]) -> Self {
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        for (names, key) in sites {
            for n in names {
                match n.strip_prefix('*') {
                    Some(suffix) => wildcards.push((suffix.to_string(), Arc::clone(key))),
                    None => {
                        exact.entry(n.clone()).or_insert_with(|| Arc::clone(key));
                    }
                }
            }
        }
        wildcards.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        Self {
            default,
            exact,
            wildcards,
        }
    }

    /// The certificate for a client that asked for `name` (lower-case, as rustls
    /// hands it over), or sent none.
    pub fn pick(&self, name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = name else {
            return &self.default;
        };
        if let Some(k) = self.exact.get(name) {
            return k;
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix.as_str()))
            .map_or(&self.default, |(_, k)| k)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(self.pick(hello.server_name())))
    }
}

/// The HTTPS server configuration: TLS 1.3 and 1.2, ALPN `h2` then `http/1.1`,
/// session tickets with rotating keys, a session cache, and the certificate
/// chosen by SNI among `sites` (each site's names and certificate), else `default`.
pub fn server_config(
    default: &Arc<CertifiedKey>,
    sites: &[(Vec<String>, Arc<CertifiedKey>)],
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(https_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver::new(Arc::clone(default), sites)));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    // The server's order (AES-GCM first, then ChaCha20) decides, as nginx's
    // `ssl_prefer_server_ciphers` does, not whatever a client lists first.
    config.ignore_client_order = true;
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok(Arc::new(config))
}

/// Loads `cert` (the chain, leaf first) and `key`, checks them, and builds the
/// HTTPS server configuration that serves them to every client (see
/// [`load_key`] and [`server_config`]).
pub fn load(cert: &Path, key: &Path) -> Result<Checked, CertError> {
    let loaded = load_key(cert, key)?;
    Ok(Checked {
        config: server_config(&loaded.key, &[])?,
        warnings: loaded.warnings,
        subject: loaded.subject,
        expires_in: loaded.expires_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn leaf(days_left: i64, alg: &'static rcgen::SignatureAlgorithm) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(days_left);
        let key = KeyPair::generate_for(alg).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn ecdsa_and_ed25519_load() {
        let tmp = tempfile::tempdir().unwrap();
        for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ED25519] {
            let (c, k) = leaf(90, alg);
            let checked = load(
                &write(tmp.path(), "c.pem", &c),
                &write(tmp.path(), "k.pem", &k),
            )
            .unwrap();
            assert!(checked.warnings.is_empty());
            assert_eq!(
                checked.config.alpn_protocols,
                vec![b"h2".to_vec(), b"http/1.1".to_vec()]
            );
        }
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (c, _) = leaf(90, &rcgen::PKCS_ECDSA_P256_SHA256);
        let (_, k) = leaf(90, &rcgen::PKCS_ECDSA_P256_SHA256);
        let e = load(
            &write(tmp.path(), "c.pem", &c),
            &write(tmp.path(), "k.pem", &k),
        )
        .unwrap_err();
        assert!(matches!(e, CertError::KeyMismatch { .. }), "{e}");
    }

    #[test]
    fn near_expiry_warns_and_expired_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (c, k) = leaf(5, &rcgen::PKCS_ECDSA_P256_SHA256);
        let checked = load(
            &write(tmp.path(), "c.pem", &c),
            &write(tmp.path(), "k.pem", &k),
        )
        .unwrap();
        assert_eq!(checked.warnings.len(), 1, "{:?}", checked.warnings);
        let w = &checked.warnings[0];
        assert!(
            w.contains("expires in 4 days") || w.contains("expires in 5 days"),
            "{w}"
        );
        let der = CertificateDer::from_pem_slice(c.as_bytes()).unwrap();
        let later = SystemTime::now() + Duration::from_secs(10 * 86_400);
        let e = check_chain(Path::new("c.pem"), &[der], later).unwrap_err();
        assert!(matches!(e, CertError::Expired { .. }), "{e}");
    }

    #[test]
    fn a_chain_out_of_order_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dd = super::super::DataDir::new(tmp.path().join("d"));
        dd.server_identity().unwrap();
        let server = std::fs::read_to_string(dd.server_cert()).unwrap();
        let ca = std::fs::read_to_string(dd.ca_cert()).unwrap();
        let key = dd.server_key();
        // Leaf then issuer: good.
        load(
            &write(tmp.path(), "good.pem", &(server.clone() + &ca)),
            &key,
        )
        .unwrap();
        // Issuer first: the key matches neither order's claim of a leaf.
        let bad = write(tmp.path(), "bad.pem", &(ca + &server));
        let e = check_chain(
            &bad,
            &Identity::load(&bad, &key).unwrap().chain,
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(matches!(e, CertError::Order { index: 0, .. }), "{e}");
    }

    /// A certificate for `names` (subjectAltName), loaded through [`load_key`].
    fn for_names(dir: &Path, tag: &str, names: &[&str]) -> Loaded {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.self_signed(&key).unwrap();
        load_key(
            &write(dir, &format!("{tag}.crt"), &cert.pem()),
            &write(dir, &format!("{tag}.key"), &key.serialize_pem()),
        )
        .unwrap()
    }

    #[test]
    fn sni_picks_exact_then_longest_wildcard_then_the_default() {
        let tmp = tempfile::tempdir().unwrap();
        let default = for_names(tmp.path(), "d", &["localhost"]);
        let a = for_names(tmp.path(), "a", &["a.test"]);
        let wide = for_names(tmp.path(), "w", &["*.test"]);
        let narrow = for_names(tmp.path(), "n", &["*.b.test"]);
        let r = SniResolver::new(
            default.key.clone(),
            &[
                (vec!["a.test".into()], a.key.clone()),
                (vec!["*.test".into()], wide.key.clone()),
                (vec!["*.b.test".into(), "b.test".into()], narrow.key.clone()),
            ],
        );
        let is = |got: &Arc<CertifiedKey>, want: &Loaded| Arc::ptr_eq(got, &want.key);
        assert!(is(r.pick(Some("a.test")), &a));
        assert!(is(r.pick(Some("x.a.test")), &wide));
        assert!(is(r.pick(Some("x.b.test")), &narrow));
        assert!(is(r.pick(Some("b.test")), &narrow));
        assert!(is(r.pick(Some("other.example")), &default));
        assert!(is(r.pick(Some("test")), &default));
        assert!(is(r.pick(None), &default));
    }

    #[test]
    fn covers_follows_the_one_label_wildcard_rule() {
        let tmp = tempfile::tempdir().unwrap();
        let c = for_names(tmp.path(), "c", &["Site.Test", "*.wild.test"]);
        assert_eq!(c.names, vec!["site.test", "*.wild.test"]);
        assert!(c.covers("site.test"));
        assert!(c.covers("a.wild.test"));
        assert!(c.covers("*.wild.test"));
        assert!(!c.covers("a.b.wild.test"));
        assert!(!c.covers("wild.test"));
        assert!(!c.covers("other.test"));
    }

    use rustls::pki_types::pem::PemObject;
}
