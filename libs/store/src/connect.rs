//! The one way this program connects to PostgreSQL: a URL becomes a
//! tokio-postgres configuration plus an OpenSSL connector, with libpq's TLS
//! semantics.
//!
//! The URL's libpq TLS parameters are taken out before tokio-postgres reads
//! the rest (it knows only `disable`, `prefer` and `require`):
//!
//! | `sslmode` | TLS | certificate chain verified | host name verified |
//! |---|---|---|---|
//! | `disable` | never | - | - |
//! | `allow`, `prefer` (default) | when the server offers it | only with a root file (`sslrootcert`) | no |
//! | `require` | always | only with a root file (`sslrootcert`) | no |
//! | `verify-ca` | always | yes: `sslrootcert`, else the system's roots | no |
//! | `verify-full` | always | yes: `sslrootcert`, else the system's roots | yes (DNS name or IP address) |
//!
//! As in libpq, `require` with a root file behaves like `verify-ca`, and
//! `sslrootcert=system` means the system's roots and `verify-full`. Unlike
//! libpq there is no implicit `~/.postgresql/root.crt`, `allow` tries TLS
//! first (as `prefer`), and a failed handshake under `prefer` is an error,
//! not a silent retry in plain text. `sslcert` and `sslkey` give a client
//! certificate and its key (PEM) for mutual TLS; the key file must not be
//! readable by group or others (0640 is allowed when root owns it), as libpq
//! demands. TLS 1.2 is the minimum.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use psg_config::SslMode;
use tokio_postgres::config::{Host, SslMode as PgSslMode};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};

use crate::{Error, Result};

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// The system's trust store (`SSL_CERT_FILE`/`SSL_CERT_DIR`, else the
    /// distribution's bundle and certificate directory).
    System,
    /// A PEM file of CA certificates, and nothing else.
    File(PathBuf),
}

/// The TLS parameters of a connection URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsParams {
    pub mode: SslMode,
    /// `None`: no verification unless the mode demands it (then the system's roots).
    pub root_cert: Option<RootCerts>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl TlsParams {
    /// Whether the server's certificate chain is verified.
    pub fn verifies_chain(&self) -> bool {
        matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull) || self.root_cert.is_some()
    }

    /// Whether the server's host name is verified.
    pub fn verifies_host(&self) -> bool {
        self.mode == SslMode::VerifyFull
    }
}

const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// Splits `url` into the URL tokio-postgres reads (without the libpq TLS
/// parameters) and those parameters. Only `postgres://`/`postgresql://`
/// URLs carry them; any other form is passed through untouched.
pub fn split_tls_params(url: &str) -> Result<(String, TlsParams)> {
    let mut mode = None;
    let mut root = None;
    let mut cert = None;
    let mut key = None;
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let rest =
        match url.split_once('?') {
            Some((base, query)) if is_url => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let k = percent_decode(k);
                    if !TLS_KEYS.contains(&k.as_str()) {
                        kept.push(pair);
                        continue;
                    }
                    let v = percent_decode(v);
                    match k.as_str() {
                        "sslmode" => mode = Some(v.parse::<SslMode>().map_err(|_| {
                            Error::Url(format!(
                                "sslmode '{v}' is not one of disable, allow, prefer, require, verify-ca, verify-full"
                            ))
                        })?),
                        "sslrootcert" => root = Some(v),
                        "sslcert" => cert = Some(PathBuf::from(v)),
                        _ => key = Some(PathBuf::from(v)),
                    }
                }
                if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
            }
            _ => url.to_owned(),
        };
    let root_cert = match root.as_deref() {
        None | Some("") => None,
        Some("system") => Some(RootCerts::System),
        Some(path) => Some(RootCerts::File(PathBuf::from(path))),
    };
    let mode = match (mode, &root_cert) {
        // libpq: sslrootcert=system defaults to verify-full and refuses weaker modes.
        (None, Some(RootCerts::System)) => SslMode::VerifyFull,
        (Some(m), Some(RootCerts::System)) if m != SslMode::VerifyFull => {
            return Err(Error::Url(format!("sslrootcert=system needs sslmode=verify-full (got sslmode={m})")));
        }
        (m, _) => m.unwrap_or(SslMode::Prefer),
    };
    if cert.is_some() != key.is_some() {
        return Err(Error::Url(
            "a client certificate needs its key, and a key its certificate (sslcert and sslkey)".into(),
        ));
    }
    Ok((rest, TlsParams { mode, root_cert, client_cert: cert, client_key: key }))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// A parsed connection target: how to reach the server and how to secure it.
#[derive(Clone)]
pub struct Connector {
    config: tokio_postgres::Config,
    tls: MakeTls,
    params: TlsParams,
    endpoint: String,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio-postgres's own Debug redacts the password.
        f.debug_struct("Connector")
            .field("endpoint", &self.endpoint)
            .field("tls", &self.params)
            .field("config", &self.config)
            .finish()
    }
}

impl Connector {
    /// Parses `url` (libpq URL, TLS parameters included) and prepares TLS.
    pub fn new(url: &str) -> Result<Self> {
        let (rest, params) = split_tls_params(url)?;
        let mut config: tokio_postgres::Config = rest.parse().map_err(|e: tokio_postgres::Error| {
            // tokio-postgres's parse errors name the option, never its value.
            Error::Url(crate::pg_message(&e))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("pci-scope-guard");
        }
        config.ssl_mode(match params.mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Allow | SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        });
        let ports = config.get_ports();
        let hosts: Vec<(String, u16)> = config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                let name = match h {
                    Host::Tcp(name) => name.clone(),
                    Host::Unix(path) => path.display().to_string(),
                };
                (name, port)
            })
            .collect();
        let endpoint = if hosts.is_empty() {
            "localhost:5432".to_owned()
        } else {
            hosts.iter().map(|(h, p)| format!("{h}:{p}")).collect::<Vec<_>>().join(",")
        };
        let tls = MakeTls::new(&params, Arc::new(hosts))?;
        Ok(Self { config, tls, params, endpoint })
    }

    /// `host:port` of every host of the URL, comma separated.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn tls(&self) -> &TlsParams {
        &self.params
    }

    /// A pool of `size` connections.
    pub fn pool(&self, size: usize) -> Result<Pool> {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        Pool::builder(manager)
            .max_size(size)
            .wait_timeout(Some(Duration::from_secs(15)))
            .create_timeout(Some(Duration::from_secs(15)))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Pool(e.to_string()))
    }

    /// One connection outside any pool; its connection task runs on the
    /// current runtime until the client is dropped.
    pub async fn connect(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) =
            self.config.connect(self.tls.clone()).await.map_err(|e| connect_error(Some(&self.endpoint), e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database connection closed");
            }
        });
        Ok(client)
    }
}

/// A failed connection attempt as an [`Error`]: TLS failures become
/// [`Error::Tls`] with the endpoint and the reason, other failures
/// [`Error::Connect`].
pub(crate) fn connect_error(endpoint: Option<&str>, e: tokio_postgres::Error) -> Error {
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<HandshakeFailed>() {
            // A certificate that fails verification will fail again; a
            // handshake cut short (server restarting) may not.
            return Error::Tls { message: h.to_string(), transient: h.verification.is_none() };
        }
        source = s.source();
    }
    if e.to_string().starts_with("error performing TLS handshake") {
        // e.g. sslmode=require and a server without TLS
        let reason = std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
        let with = endpoint.map(|e| format!(" with {e}")).unwrap_or_default();
        return Error::Tls { message: format!("TLS{with} failed: {reason}"), transient: false };
    }
    Error::Connect { endpoint: endpoint.map(str::to_owned), source: e }
}

/// A pool's failure to hand out a connection as an [`Error`].
pub(crate) fn pool_error(endpoint: Option<&str>, e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => connect_error(endpoint, e),
        other => Error::Pool(other.to_string()),
    }
}

/// The OpenSSL side: one `SslConnector` per URL, configured per connection
/// for the host name check.
#[derive(Clone)]
struct MakeTls {
    inner: postgres_openssl::MakeTlsConnector,
    hosts: Arc<Vec<(String, u16)>>,
}

impl MakeTls {
    fn new(params: &TlsParams, hosts: Arc<Vec<(String, u16)>>) -> Result<Self> {
        let tls_err = |what: String| {
            move |e: openssl::error::ErrorStack| Error::Tls {
                message: format!("{what}: {}", first_reason(&e)),
                transient: false,
            }
        };
        let mut builder =
            SslConnector::builder(SslMethod::tls_client()).map_err(tls_err("cannot set up TLS".into()))?;
        builder.set_min_proto_version(Some(SslVersion::TLS1_2)).map_err(tls_err("cannot set up TLS".into()))?;
        // Only the roots asked for: never OpenSSL's compiled-in default paths.
        builder.set_cert_store(X509StoreBuilder::new().map_err(tls_err("cannot set up TLS".into()))?.build());
        if params.mode != SslMode::Disable {
            match &params.root_cert {
                Some(RootCerts::File(path)) => {
                    readable(path, "CA file (database.ca-file / sslrootcert)")?;
                    builder
                        .set_ca_file(path)
                        .map_err(tls_err(format!("CA file {}: not PEM certificates", path.display())))?;
                }
                Some(RootCerts::System) => load_system_roots(&mut builder)?,
                None if params.verifies_chain() => load_system_roots(&mut builder)?,
                None => {}
            }
            if let (Some(cert), Some(key)) = (&params.client_cert, &params.client_key) {
                readable(cert, "client certificate (database.client-cert / sslcert)")?;
                check_key_permissions(key)?;
                builder
                    .set_certificate_chain_file(cert)
                    .map_err(tls_err(format!("client certificate {}: not a PEM certificate", cert.display())))?;
                builder
                    .set_private_key_file(key, SslFiletype::PEM)
                    .map_err(tls_err(format!("client key {}: not a PEM private key", key.display())))?;
                builder.check_private_key().map_err(tls_err(format!(
                    "client key {} does not belong to certificate {}",
                    key.display(),
                    cert.display()
                )))?;
            }
        }
        builder.set_verify(if params.verifies_chain() { SslVerifyMode::PEER } else { SslVerifyMode::NONE });
        let mut inner = postgres_openssl::MakeTlsConnector::new(builder.build());
        let verify_host = params.verifies_host();
        inner.set_callback(move |config, _domain| {
            config.set_verify_hostname(verify_host);
            Ok(())
        });
        Ok(Self { inner, hosts })
    }
}

fn readable(path: &Path, what: &str) -> Result<()> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| Error::Tls { message: format!("{what} {}: {e}", path.display()), transient: false })
}

/// libpq's rule for a client key file: no access for group or others, except
/// group read when root owns it.
fn check_key_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| Error::Tls {
        message: format!("client key (database.client-key / sslkey) {}: {e}", path.display()),
        transient: false,
    })?;
    let mode = meta.mode() & 0o777;
    let forbidden = if meta.uid() == 0 { 0o137 } else { 0o077 };
    if meta.is_file() && mode & forbidden != 0 {
        return Err(Error::Tls {
            message: format!(
                "client key {} has group or world access (mode {mode:03o}); it must be 0600 or less (0640 if owned by root): run `chmod 600 {}`",
                path.display(),
                path.display()
            ),
            transient: false,
        });
    }
    Ok(())
}

fn load_system_roots(builder: &mut openssl::ssl::SslConnectorBuilder) -> Result<()> {
    let probe = openssl_probe::probe();
    if probe.cert_file.is_none() && probe.cert_dir.is_empty() {
        return Err(Error::Tls {
            message:
                "no system CA certificates found (install ca-certificates, set SSL_CERT_FILE, or give database.ca-file)"
                    .into(),
            transient: false,
        });
    }
    if let Some(file) = &probe.cert_file {
        builder.load_verify_locations(Some(file), None).map_err(|e| Error::Tls {
            message: format!("system CA certificates {}: {}", file.display(), first_reason(&e)),
            transient: false,
        })?;
    }
    for dir in &probe.cert_dir {
        builder.load_verify_locations(None, Some(dir)).map_err(|e| Error::Tls {
            message: format!("system CA directory {}: {}", dir.display(), first_reason(&e)),
            transient: false,
        })?;
    }
    Ok(())
}

fn first_reason(e: &openssl::error::ErrorStack) -> String {
    e.errors().first().and_then(|x| x.reason()).map_or_else(|| e.to_string(), str::to_owned)
}

impl<S> MakeTlsConnect<S> for MakeTls
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + fmt::Debug + Send + Sync + 'static,
{
    type Stream = postgres_openssl::TlsStream<S>;
    type TlsConnect = TlsConnector;
    type Error = openssl::error::ErrorStack;

    fn make_tls_connect(&mut self, domain: &str) -> std::result::Result<TlsConnector, Self::Error> {
        let port = self.hosts.iter().find(|(h, _)| h == domain).map_or(5432, |(_, p)| *p);
        let inner =
            <postgres_openssl::MakeTlsConnector as MakeTlsConnect<S>>::make_tls_connect(&mut self.inner, domain)?;
        Ok(TlsConnector { inner, endpoint: format!("{domain}:{port}") })
    }
}

/// One handshake: postgres-openssl's, with a readable error.
pub struct TlsConnector {
    inner: postgres_openssl::TlsConnector,
    endpoint: String,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl<S> TlsConnect<S> for TlsConnector
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + fmt::Debug + Send + Sync + 'static,
{
    type Stream = postgres_openssl::TlsStream<S>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<Self::Stream, Self::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let endpoint = self.endpoint;
        let handshake = TlsConnect::<S>::connect(self.inner, stream);
        Box::pin(async move { handshake.await.map_err(|e| Box::new(HandshakeFailed::new(endpoint, &*e)) as _) })
    }
}

/// A TLS handshake that failed: where, why, and the certificate check's
/// verdict when that was the reason.
#[derive(Debug)]
pub struct HandshakeFailed {
    pub endpoint: String,
    pub reason: String,
    /// OpenSSL's certificate verification result (`self-signed certificate`,
    /// `hostname mismatch`, ...), when verification failed.
    pub verification: Option<String>,
}

impl HandshakeFailed {
    fn new(endpoint: String, e: &(dyn std::error::Error + Send + Sync + 'static)) -> Self {
        // postgres-openssl's error displays as "<OpenSSL error>[: <verify result>]",
        // its source being the OpenSSL error.
        let full = e.to_string();
        let Some(ssl) = e.source().and_then(|s| s.downcast_ref::<openssl::ssl::Error>()) else {
            return Self { endpoint, reason: full, verification: None };
        };
        let inner = ssl.to_string();
        let verification = full
            .strip_prefix(inner.as_str())
            .and_then(|r| r.strip_prefix(": "))
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        let reason = ssl
            .ssl_error()
            .and_then(|stack| stack.errors().first())
            .and_then(|x| x.reason())
            .map(str::to_owned)
            .or_else(|| ssl.io_error().map(|io| io.to_string()))
            .unwrap_or(inner);
        Self { endpoint, reason, verification }
    }
}

impl fmt::Display for HandshakeFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS handshake with {} failed: {}", self.endpoint, self.reason)?;
        if let Some(v) = &self.verification {
            write!(f, " ({v})")?;
        }
        Ok(())
    }
}

impl std::error::Error for HandshakeFailed {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let (rest, p) = split_tls_params(
            "postgres://u:pw@db:5433/psg?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:pw@db:5433/psg?application_name=x&connect_timeout=3");
        assert_eq!(p.mode, SslMode::VerifyFull);
        assert_eq!(p.root_cert, Some(RootCerts::File("/etc/ca.pem".into())));
        assert!(p.verifies_chain() && p.verifies_host());

        let (rest, p) = split_tls_params("postgres://db/psg").unwrap();
        assert_eq!(rest, "postgres://db/psg");
        assert_eq!(p.mode, SslMode::Prefer, "libpq's default");
        assert!(!p.verifies_chain());

        let (rest, p) = split_tls_params("postgresql://db/psg?sslmode=require").unwrap();
        assert_eq!(rest, "postgresql://db/psg");
        assert!(!p.verifies_chain(), "require verifies nothing without a root file");
        let (_, p) = split_tls_params("postgresql://db/psg?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert!(p.verifies_chain() && !p.verifies_host(), "require with a root file is verify-ca");

        let (_, p) = split_tls_params("postgres://db/psg?sslrootcert=system").unwrap();
        assert_eq!((p.mode, p.root_cert), (SslMode::VerifyFull, Some(RootCerts::System)));
        assert!(split_tls_params("postgres://db/psg?sslrootcert=system&sslmode=require").is_err());
    }

    #[test]
    fn bad_tls_parameters_are_clear_and_never_echo_the_url() {
        let e = split_tls_params("postgres://u:hunter2@db/psg?sslmode=verify").unwrap_err().to_string();
        assert!(e.contains("sslmode 'verify' is not one of"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = split_tls_params("postgres://db/psg?sslcert=/c.pem").unwrap_err().to_string();
        assert!(e.contains("sslkey"), "{e}");
        let e = Connector::new("postgres://u:hunter2@db:notaport/psg").unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn missing_files_and_open_keys_are_refused() {
        let e = Connector::new("postgres://db/psg?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/ca.pem") && e.contains("No such file"), "{e}");

        let dir = std::env::temp_dir().join(format!("psg-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("client.key");
        std::fs::write(&key, "not a key").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let url = format!(
            "postgres://db/psg?sslmode=require&sslcert=/etc/ssl/certs/ssl-cert-snakeoil.pem&sslkey={}",
            key.display()
        );
        if Path::new("/etc/ssl/certs/ssl-cert-snakeoil.pem").exists() {
            let e = Connector::new(&url).unwrap_err().to_string();
            assert!(e.contains("group or world access"), "{e}");
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            let e = Connector::new(&url).unwrap_err().to_string();
            assert!(e.contains("not a PEM private key"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%2Fa%20b%zz%"), "/a b%zz%");
    }
}
