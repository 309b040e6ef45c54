//! TLS for a connection: rustls over the socket that [`Conn`](super::Conn) built, with the
//! node's certificate always verified.
//!
//! # Trust
//!
//! The trust anchors are the certificates in `tls.ca_file` or, when it is not set, the
//! system's trust store (`SSL_CERT_FILE` / `SSL_CERT_DIR`, else the operating system's
//! bundle, as `redis-cli --tls` without `--cacert` does). There is no way to turn
//! verification off. A node's certificate must chain to one of the anchors, be within its
//! validity period, and carry the name dialled in its subject alternative names: the node's
//! host as given (an IP address matches an IP SAN, a host name a DNS SAN), or
//! `tls.server_name` when set. A failure is a [`TlsError::Untrusted`] that names the CA file
//! and says why, never a bare I/O error.
//!
//! # Crypto provider
//!
//! The provider is *ring*, passed to each `ClientConfig` explicitly
//! ([`rustls::ClientConfig::builder_with_provider`]): nothing is installed process-wide, so
//! another library in the same process may pick its own provider. TLS 1.3 and 1.2 are offered
//! (rustls's safe defaults).
//!
//! # Bounded memory
//!
//! rustls keeps its own buffers between the socket and [`Conn`](super::Conn)'s: encrypted
//! bytes waiting to be written (at most 64 KiB, rustls's default buffer limit), one incoming
//! record being reassembled (at most 16 KiB plus framing) and decrypted bytes not yet read
//! (at most 16 KiB before rustls stops reading the socket). So a TLS connection adds a fixed
//! amount to the fixed read and write buffers, and the write path stays bounded.
//!
//! # Handshake
//!
//! The handshake runs right after TCP connect, under its own `dial_timeout`: the socket's
//! read and write timeouts are set to what is left of it before every step, so a node that
//! answers slowly (or a plaintext port that never answers a `ClientHello`) costs at most
//! `dial_timeout`.

use std::fmt;
use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection, RootCertStore};

use crate::config::Tls;
use crate::error::Error;

/// A TLS stream over a connection's socket.
pub(crate) type TlsStream = rustls::StreamOwned<ClientConnection, TcpStream>;

/// Why TLS could not be set up or why a handshake failed.
///
/// A connection reports it inside [`Error::Io`] (as the `io::Error`'s inner error, with kind
/// `InvalidData` or `InvalidInput`); [`TlsError::find`] digs it out. Its message is meant to
/// be read by whoever runs the client: it names the key or file to fix.
///
/// # Examples
///
/// ```
/// use slotline_client::conn::tls::{TlsConnector, TlsError};
/// use slotline_client::config::Tls;
///
/// let settings = Tls { enabled: true, ca_file: Some("/no/such/ca.pem".into()), ..Tls::default() };
/// let err = TlsConnector::new(&settings).unwrap_err();
/// assert!(matches!(err, TlsError::File { key: "tls.ca_file", .. }));
/// assert!(err.to_string().contains("/no/such/ca.pem"), "{err}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsError {
    /// A setting is missing or does not go with the others.
    Settings {
        /// The key to fix, such as `tls.ca_file`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A file named in the `tls` section cannot be read or does not hold what it should.
    File {
        /// The key that names the file (`tls.ca_file`, `tls.client_cert_file`,
        /// `tls.client_key_file`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The name to verify the node's certificate against is neither a DNS name nor an IP
    /// address.
    ServerName {
        /// The name (`tls.server_name`, or the node's host).
        name: String,
    },
    /// The node's certificate was not trusted: not signed by a CA in `ca_file`, expired, or
    /// not valid for the name dialled.
    Untrusted {
        /// The CA file the certificate was checked against; `None` for the system's trust
        /// store.
        ca_file: Option<PathBuf>,
        /// The name it was checked for.
        server_name: String,
        /// Why it was refused.
        reason: String,
    },
    /// The handshake failed for another reason: the node refused it (an alert, such as a
    /// missing client certificate) or did not speak TLS.
    Handshake {
        /// What happened.
        reason: String,
    },
}

impl TlsError {
    /// The `tls` key this error is about, when it is about one (settings and files).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::conn::tls::TlsError;
    ///
    /// let err = TlsError::ServerName { name: "bad name".into() };
    /// assert_eq!(err.config_key(), Some("tls.server_name"));
    /// ```
    pub fn config_key(&self) -> Option<&'static str> {
        match self {
            TlsError::Settings { key, .. } | TlsError::File { key, .. } => Some(key),
            TlsError::ServerName { .. } => Some("tls.server_name"),
            TlsError::Untrusted { .. } | TlsError::Handshake { .. } => None,
        }
    }

    /// The `TlsError` inside a connection error, if it is one.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use slotline_client::conn::tls::TlsError;
    /// use slotline_client::{Config, Conn, ConnOptions};
    ///
    /// let config = Config::from_yaml_str("tls: { enabled: true, ca_file: ca.pem }")?;
    /// let err = Conn::connect(&"127.0.0.1:6380".parse()?, &ConnOptions::from_config(&config))
    ///     .unwrap_err();
    /// if let Some(TlsError::Untrusted { ca_file: Some(ca), reason, .. }) = TlsError::find(&err) {
    ///     eprintln!("the node's certificate is not trusted by {}: {reason}", ca.display());
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn find(err: &Error) -> Option<&TlsError> {
        match err {
            Error::Io { source, .. } => source.get_ref()?.downcast_ref::<TlsError>(),
            Error::NoReachableNode {
                last: Some(last), ..
            } => TlsError::find(last),
            _ => None,
        }
    }

    fn io_kind(&self) -> io::ErrorKind {
        match self {
            TlsError::Settings { .. } | TlsError::File { .. } | TlsError::ServerName { .. } => {
                io::ErrorKind::InvalidInput
            }
            TlsError::Untrusted { .. } | TlsError::Handshake { .. } => io::ErrorKind::InvalidData,
        }
    }

    /// This error as a connection error for `addr`.
    pub(crate) fn into_error(self, addr: &str) -> Error {
        Error::Io {
            addr: addr.to_owned(),
            source: io::Error::new(self.io_kind(), self),
        }
    }

    fn file(key: &'static str, path: &Path, reason: impl Into<String>) -> TlsError {
        TlsError::File {
            key,
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Settings { key, reason } => write!(f, "{key}: {reason}"),
            TlsError::File { key, path, reason } => {
                write!(f, "{key}: {}: {reason}", path.display())
            }
            TlsError::ServerName { name } => write!(
                f,
                "`{name}` is not a valid TLS server name (a DNS name or an IP address); \
                 set tls.server_name to the name in the nodes' certificates"
            ),
            TlsError::Untrusted {
                ca_file,
                server_name,
                reason,
            } => {
                write!(
                    f,
                    "TLS handshake failed: the node's certificate was not trusted for \
                     `{server_name}` with "
                )?;
                match ca_file {
                    Some(ca_file) => write!(f, "the CA file {} (tls.ca_file)", ca_file.display())?,
                    None => f.write_str("the system's trust store (tls.ca_file is not set)")?,
                }
                write!(f, ": {reason}")
            }
            TlsError::Handshake { reason } => write!(f, "TLS handshake failed: {reason}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// What a connection needs for TLS: the trust anchors and client certificate read from the
/// `tls` section, ready to start handshakes. Cheap to clone (one shared `ClientConfig`).
///
/// `Debug` and `==` look at the settings (paths and names) only; the key's contents are never
/// printed.
///
/// # Examples
///
/// ```no_run
/// use slotline_client::conn::tls::TlsConnector;
/// use slotline_client::config::Tls;
///
/// let settings = Tls { enabled: true, ca_file: Some("ca.pem".into()), ..Tls::default() };
/// let connector = TlsConnector::new(&settings)?;
/// assert_eq!(connector.settings().ca_file.as_deref(), Some("ca.pem".as_ref()));
/// # Ok::<(), slotline_client::conn::tls::TlsError>(())
/// ```
#[derive(Clone)]
pub struct TlsConnector {
    settings: Tls,
    /// The rustls configuration, or why it could not be built (reported by every connect).
    client: Result<Arc<ClientConfig>, TlsError>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("ca_file", &self.settings.ca_file)
            .field("server_name", &self.settings.server_name)
            .field("client_cert_file", &self.settings.client_cert_file)
            .field("client_key_file", &self.settings.client_key_file)
            .field("ready", &self.client.is_ok())
            .finish()
    }
}

impl PartialEq for TlsConnector {
    fn eq(&self, other: &Self) -> bool {
        self.settings == other.settings
    }
}

impl Eq for TlsConnector {}

impl TlsConnector {
    /// Reads the CA file (and the client certificate and key, when set) and builds the
    /// rustls configuration. `settings.enabled` is not looked at: whether to use TLS is the
    /// caller's choice ([`Config::tls_enabled`](crate::Config::tls_enabled)).
    ///
    /// Without `ca_file`, the system's trust store is read instead.
    ///
    /// # Errors
    ///
    /// [`TlsError::Settings`] with only one of the client certificate and key, or without
    /// `ca_file` on a system whose trust store holds no certificate; [`TlsError::File`] for a
    /// file that cannot be read, holds no PEM item of the right kind, or a key that does not
    /// match its certificate; [`TlsError::ServerName`] for a `server_name` that is not a DNS
    /// name or IP address.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_client::conn::tls::{TlsConnector, TlsError};
    /// use slotline_client::config::Tls;
    ///
    /// let settings = Tls { server_name: Some("not a name".into()), ..Tls::default() };
    /// let err = TlsConnector::new(&settings).unwrap_err();
    /// assert!(matches!(err, TlsError::ServerName { .. }), "{err}");
    /// ```
    pub fn new(settings: &Tls) -> Result<TlsConnector, TlsError> {
        let client = build_client_config(settings)?;
        Ok(TlsConnector {
            settings: settings.clone(),
            client: Ok(Arc::new(client)),
        })
    }

    /// Like [`TlsConnector::new`], but a failure is kept and reported by every handshake
    /// instead of being returned (for `ConnOptions::from_config`, which cannot fail).
    pub(crate) fn new_or_deferred(settings: &Tls) -> TlsConnector {
        TlsConnector {
            settings: settings.clone(),
            client: build_client_config(settings).map(Arc::new),
        }
    }

    /// The settings this connector was built from.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use slotline_client::conn::tls::TlsConnector;
    /// # use slotline_client::config::Tls;
    /// let settings = Tls { ca_file: Some("ca.pem".into()), ..Tls::default() };
    /// assert_eq!(TlsConnector::new(&settings)?.settings(), &settings);
    /// # Ok::<(), slotline_client::conn::tls::TlsError>(())
    /// ```
    pub fn settings(&self) -> &Tls {
        &self.settings
    }

    /// A new rustls client session for the node at `host` (checked against `server_name`
    /// when set), for a connection that drives the handshake itself (non-blocking I/O).
    pub(crate) fn client_connection(
        &self,
        host: &str,
        addr: &str,
    ) -> Result<ClientConnection, Error> {
        let client = self.client.clone().map_err(|e| e.into_error(addr))?;
        let name = self.settings.server_name.as_deref().unwrap_or(host);
        let server_name = parse_server_name(name).map_err(|e| e.into_error(addr))?;
        ClientConnection::new(client, server_name).map_err(|e| {
            TlsError::Handshake {
                reason: e.to_string(),
            }
            .into_error(addr)
        })
    }

    /// Runs the handshake with the node at `host` over `tcp`, within `timeout`.
    ///
    /// On success the socket's timeouts are left at whatever the last step set; the caller
    /// sets its own.
    pub(crate) fn handshake(
        &self,
        mut tcp: TcpStream,
        host: &str,
        addr: &str,
        timeout: Duration,
    ) -> Result<TlsStream, Error> {
        let name = self.settings.server_name.as_deref().unwrap_or(host);
        let mut conn = self.client_connection(host, addr)?;
        let deadline = Instant::now() + timeout;
        while conn.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(handshake_timeout(addr));
            }
            let set = tcp
                .set_read_timeout(Some(left))
                .and_then(|()| tcp.set_write_timeout(Some(left)));
            if let Err(source) = set {
                return Err(Error::Io {
                    addr: addr.to_owned(),
                    source,
                });
            }
            if let Err(err) = conn.complete_io(&mut tcp) {
                return Err(self.handshake_error(err, name, addr));
            }
        }
        Ok(rustls::StreamOwned::new(conn, tcp))
    }

    /// A handshake error as the connection error to report: a certificate the node showed and
    /// we refused is [`TlsError::Untrusted`], naming the CA file and the name checked.
    fn handshake_error(&self, err: io::Error, server_name: &str, addr: &str) -> Error {
        if is_timeout(&err) {
            return handshake_timeout(addr);
        }
        if let Some(rustls::Error::InvalidCertificate(cert)) = rustls_error(&err) {
            return TlsError::Untrusted {
                ca_file: self.settings.ca_file.clone(),
                server_name: server_name.to_owned(),
                reason: describe_certificate_error(cert),
            }
            .into_error(addr);
        }
        match stream_error(&err, true) {
            Some(tls) => tls.into_error(addr),
            None => Error::Io {
                addr: addr.to_owned(),
                source: err,
            },
        }
    }
}

/// The [`TlsError`] an I/O error on a TLS stream stands for, if it is a TLS failure (an alert
/// from the node, a message that is not TLS) rather than a plain socket error. With TLS 1.3
/// a node that refuses the client's certificate says so after the client's side of the
/// handshake is done, so this is also checked on the first reads.
pub(crate) fn stream_error(err: &io::Error, handshaking: bool) -> Option<TlsError> {
    let reason = match rustls_error(err) {
        Some(rustls::Error::AlertReceived(alert)) => describe_alert(*alert),
        Some(
            rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. },
        ) if handshaking => "the node did not answer with TLS (is this its TLS port?)".into(),
        Some(other) => other.to_string(),
        None if handshaking && err.kind() == io::ErrorKind::UnexpectedEof => {
            "the node closed the connection during the handshake (is this its TLS port? does \
             it require a client certificate?)"
                .into()
        }
        None => return None,
    };
    Some(TlsError::Handshake { reason })
}

fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

fn handshake_timeout(addr: &str) -> Error {
    Error::Timeout {
        addr: addr.to_owned(),
        during: "TLS handshake",
    }
}

/// A blocking socket with a timeout reports it as `WouldBlock` (Unix) or `TimedOut` (Windows).
fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn parse_server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName {
        name: name.to_owned(),
    })
}

fn build_client_config(settings: &Tls) -> Result<ClientConfig, TlsError> {
    if let Some(name) = &settings.server_name {
        parse_server_name(name)?;
    }
    let roots = match settings.ca_file.as_deref() {
        Some(ca_file) => read_roots(ca_file)?,
        None => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Handshake {
            reason: format!("no usable TLS protocol version: {e}"),
        })?
        .with_root_certificates(roots);
    match (&settings.client_cert_file, &settings.client_key_file) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert_file), Some(key_file)) => {
            let chain = read_certificates("tls.client_cert_file", cert_file)?;
            let key = PrivateKeyDer::from_pem_file(key_file)
                .map_err(|e| TlsError::file("tls.client_key_file", key_file, pem_reason(&e)))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                TlsError::file(
                    "tls.client_key_file",
                    key_file,
                    format!("not usable with tls.client_cert_file: {e}"),
                )
            })
        }
        (Some(_), None) => Err(TlsError::Settings {
            key: "tls.client_key_file",
            reason: "is required when tls.client_cert_file is set".into(),
        }),
        (None, Some(_)) => Err(TlsError::Settings {
            key: "tls.client_cert_file",
            reason: "is required when tls.client_key_file is set".into(),
        }),
    }
}

fn read_certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::file(key, path, pem_reason(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::file(key, path, pem_reason(&e)))?;
    if certs.is_empty() {
        return Err(TlsError::file(
            key,
            path,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in read_certificates("tls.ca_file", path)?
        .into_iter()
        .enumerate()
    {
        roots.add(cert).map_err(|e| {
            TlsError::file(
                "tls.ca_file",
                path,
                format!("certificate #{} is not a usable CA certificate: {e}", i + 1),
            )
        })?;
    }
    Ok(roots)
}

/// The system's trust store; certificates it cannot parse are skipped, as browsers do.
fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(TlsError::Settings {
            key: "tls.ca_file",
            reason: format!(
                "is not set, and the system's trust store holds no CA certificate ({}); set it \
                 to the PEM file with the CA certificate(s) that signed the nodes' certificates",
                if errors.is_empty() {
                    "none found".to_owned()
                } else {
                    errors.join("; ")
                }
            ),
        });
    }
    Ok(roots)
}

fn pem_reason(err: &pem::Error) -> String {
    match err {
        pem::Error::Io(e) => format!("cannot read it: {e}"),
        pem::Error::NoItemsFound => "holds no PEM item of the expected kind".into(),
        other => format!("not valid PEM: {other}"),
    }
}

fn describe_certificate_error(err: &CertificateError) -> String {
    match err {
        CertificateError::UnknownIssuer => {
            "it is not signed by a CA in that file (unknown issuer)".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "it is not valid for this name ({}); set tls.server_name to a name it carries",
                rustls::Error::InvalidCertificate(err.clone())
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!(
                "it has expired ({})",
                rustls::Error::InvalidCertificate(err.clone())
            )
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!(
                "it is not valid yet ({})",
                rustls::Error::InvalidCertificate(err.clone())
            )
        }
        other => rustls::Error::InvalidCertificate(other.clone()).to_string(),
    }
}

fn describe_alert(alert: AlertDescription) -> String {
    let hint = match alert {
        AlertDescription::CertificateRequired
        | AlertDescription::BadCertificate
        | AlertDescription::UnknownCA
        | AlertDescription::HandshakeFailure => {
            " (does the node require a client certificate? set tls.client_cert_file and \
             tls.client_key_file, signed by a CA the node trusts)"
        }
        _ => "",
    };
    format!("the node refused it with the alert `{alert:?}`{hint}")
}
