//! [`TlsFiles`]: the PEM files a TLS server is started with, the `tls` section its clients
//! need, and the helpers' own TLS connector.

use std::path::PathBuf;

use slotline_client::config::Tls;
use slotline_client::TlsConnector;

use crate::LocalError;

/// The PEM files of a TLS server: its certificate and key, and the CA that signed them.
///
/// The server trusts `ca_file` for client certificates, and cluster nodes present their own
/// certificate when they connect to each other (cluster bus, replication), so the certificate
/// must allow both server and client authentication (no extended key usage, or both), carry
/// `127.0.0.1` as an IP subject alternative name, and be signed by the CA in `ca_file`.
///
/// # Examples
///
/// ```no_run
/// use slotline_testkit::{LocalServer, TlsFiles};
///
/// let files = TlsFiles::new("ca.pem", "server.pem", "server.key");
/// let server = LocalServer::builder().tls(&files).start()?;
/// assert!(server.tls().is_some());
/// # Ok::<(), slotline_testkit::LocalError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate (PEM) that signed `cert_file`; the server trusts it for clients.
    pub ca_file: PathBuf,
    /// The server's certificate (PEM).
    pub cert_file: PathBuf,
    /// The server's private key (PEM).
    pub key_file: PathBuf,
    /// `tls-auth-clients yes`: clients must present a certificate signed by `ca_file`.
    /// Default false (`tls-auth-clients no`).
    pub auth_clients: bool,
}

impl TlsFiles {
    /// The three files, with client certificates not required.
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_testkit::TlsFiles;
    ///
    /// let files = TlsFiles::new("ca.pem", "server.pem", "server.key");
    /// assert!(!files.auth_clients);
    /// ```
    pub fn new(
        ca_file: impl Into<PathBuf>,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> TlsFiles {
        TlsFiles {
            ca_file: ca_file.into(),
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            auth_clients: false,
        }
    }

    /// The `tls` section a client of these servers needs: TLS on, `ca_file`, and, when the
    /// servers require client certificates, the server's own certificate and key as the
    /// client's (they are signed by the trusted CA).
    ///
    /// # Examples
    ///
    /// ```
    /// use slotline_testkit::TlsFiles;
    ///
    /// let mut files = TlsFiles::new("ca.pem", "server.pem", "server.key");
    /// assert!(files.client_settings().client_cert_file.is_none());
    /// files.auth_clients = true;
    /// assert_eq!(files.client_settings().client_key_file, Some("server.key".into()));
    /// ```
    pub fn client_settings(&self) -> Tls {
        Tls {
            enabled: true,
            ca_file: Some(self.ca_file.clone()),
            server_name: None,
            client_cert_file: self.auth_clients.then(|| self.cert_file.clone()),
            client_key_file: self.auth_clients.then(|| self.key_file.clone()),
        }
    }

    /// `redis-server` arguments for a TLS-only server on `port`.
    pub(crate) fn server_args(&self, port: u16, cluster: bool) -> Vec<String> {
        let mut args = vec![
            "--port".to_owned(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            self.cert_file.display().to_string(),
            "--tls-key-file".into(),
            self.key_file.display().to_string(),
            "--tls-ca-cert-file".into(),
            self.ca_file.display().to_string(),
            "--tls-auth-clients".into(),
            if self.auth_clients { "yes" } else { "no" }.into(),
        ];
        if cluster {
            args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from));
        }
        args
    }

    /// `redis-cli` arguments to reach a server started with these files.
    pub(crate) fn cli_args(&self) -> Vec<String> {
        vec![
            "--tls".to_owned(),
            "--cacert".into(),
            self.ca_file.display().to_string(),
            "--cert".into(),
            self.cert_file.display().to_string(),
            "--key".into(),
            self.key_file.display().to_string(),
        ]
    }
}

/// The helpers' own TLS: the files, and a connector that presents the server's certificate

#[derive(Clone, Debug)]
pub(crate) struct LocalTls {
    pub(crate) files: TlsFiles,
    pub(crate) connector: TlsConnector,
}

impl LocalTls {
    pub(crate) fn new(files: &TlsFiles) -> Result<LocalTls, LocalError> {
        let mut settings = files.client_settings();
        settings.client_cert_file = Some(files.cert_file.clone());
        settings.client_key_file = Some(files.key_file.clone());
        let connector = TlsConnector::new(&settings).map_err(LocalError::Tls)?;
        Ok(LocalTls {
            files: files.clone(),
            connector,
        })
    }
}
