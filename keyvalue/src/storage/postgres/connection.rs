//! From a `postgres://` URL to a pool of connections: the URL's options (libpq's names), TLS
//! through rustls, and the pool that reconnects on its own.
//!
//! tokio-postgres reads most of libpq's URL: several hosts (`host1:port1,host2:port2`) with
//! `target_session_attrs=read-write` (connect to whichever is the primary, so after a failover
//! the next connection reaches the promoted standby), `connect_timeout`, `application_name`,
//! `sslmode=disable|prefer|require`. This module adds what it lacks: `sslmode=verify-ca` and
//! `verify-full` (the server's certificate checked against `sslrootcert=PATH`, or the system's
//! roots) and libpq's meaning of `prefer`/`require` (encrypted, the certificate not checked).

use crate::storage::StorageError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::SslMode;

/// How long opening a connection may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verification {
    /// Not at all (libpq's `prefer` and `require`: encrypted against eavesdropping only).
    None,
    /// Signed by a trusted root (`verify-ca`).
    Chain,
    /// Signed by a trusted root and naming the host (`verify-full`).
    Full,
}

/// The connection options of `url`, and how to check certificates; an error names the problem
/// (never the password).
fn parse(
    url: &str,
) -> Result<(tokio_postgres::Config, Verification, Option<String>), StorageError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut verification = Verification::None;
    let mut root_file = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (name, value) {
            ("sslmode", "verify-ca") => verification = Verification::Chain,
            ("sslmode", "verify-full") => verification = Verification::Full,
            ("sslrootcert", path) => root_file = Some(percent_decoded(path)),
            _ => kept.push(pair),
        }
    }
    if verification != Verification::None {
        kept.push("sslmode=require");
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config: tokio_postgres::Config = url.parse().map_err(|error| {
        StorageError::Other(
            format!(
                "not a PostgreSQL URL tally can use ({}); the form is \
             postgres://USER@HOST[:PORT][,HOST2[:PORT2]...]/DATABASE[?OPTIONS], with libpq's \
             options (sslmode, target_session_attrs, connect_timeout, application_name...)",
                super::error::describe(&error).trim_start_matches("PostgreSQL: ")
            )
            .into(),
        )
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("tally");
    }
    let options = match config.get_options() {
        Some(given) => format!("{given} {PLANNER_OPTIONS}"),
        None => PLANNER_OPTIONS.to_string(),
    };
    config.options(&options);
    Ok((config, verification, root_file))
}

/// How tally's connections plan its statements.
///
/// The statements are few, prepared once per connection, and take arrays whose length changes
/// with every batch: planned afresh for each (PostgreSQL's default while the custom plans look
/// cheaper) they cost more server time than they run. So one generic plan each. A generic plan
/// is made once, though, often while tally's tables are still empty, and kept until the next
/// `ANALYZE`: on an empty table a sequential scan and a hash join look cheapest, and that plan
/// then read the whole table in every batch as it grew (measured: a batch of 16 increments on a
/// table of 10,000 counters kept the server's process 80% busy; 2,600 increments/s where the
/// same server did 11,300 before the names were added). Every statement on the counters, the
/// idempotency records and the notes finds its rows through an index (a key, or an expiry for
/// the purges), so the planner is told to prefer indexes whatever the statistics say; a table
/// with no index (the one-row schema version) is still scanned.
const PLANNER_OPTIONS: &str = "-c plan_cache_mode=force_generic_plan -c enable_seqscan=off \
     -c enable_hashjoin=off -c enable_mergejoin=off";

/// `%XX` escapes of a URL value undone (a path with spaces, say).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| text.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                at += 3;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A pool of connections to one server (or a primary and its standbys).
pub(super) struct Connections {
    /// The pool (no connection opened yet).
    pub(super) pool: Pool,
    /// How long opening one connection to one host may take.
    pub(super) connect_timeout: Duration,
}

/// A pool of at most `size` connections to `url` (none opened yet).
pub(super) fn pool(url: &str, size: usize) -> Result<Connections, StorageError> {
    let (config, verification, root_file) = parse(url)?;
    let connect_timeout = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(CONNECT_TIMEOUT);
    let hosts = u32::try_from(config.get_hosts().len().max(1)).unwrap_or(u32::MAX);
    let manager_config = ManagerConfig {
        // A connection that died (its server was killed or failed over) is noticed when it is
        // taken, and replaced.
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = if config.get_ssl_mode() == SslMode::Disable {
        Manager::from_config(config, tokio_postgres::NoTls, manager_config)
    } else {
        let tls = tls_config(verification, root_file.as_deref())?;
        Manager::from_config(
            config,
            tokio_postgres_rustls::MakeRustlsConnect::new(tls),
            manager_config,
        )
    };
    // libpq's connect_timeout bounds the whole connection to each host, the startup and the
    // login included; tokio-postgres bounds only the TCP connect. The pool's creation timeout
    // covers the rest: a server that takes the connection and never answers fails in time.
    let pool = Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(connect_timeout * hosts))
        .build()
        .map_err(|error| StorageError::Other(format!("PostgreSQL pool: {error}").into()))?;
    Ok(Connections {
        pool,
        connect_timeout,
    })
}

/// rustls's configuration for `verification`.
fn tls_config(
    verification: Verification,
    root_file: Option<&str>,
) -> Result<rustls::ClientConfig, StorageError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| StorageError::Other(format!("TLS: {error}").into()))?;
    let config = match verification {
        Verification::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth(),
        Verification::Chain | Verification::Full => {
            let roots = Arc::new(roots(root_file)?);
            let webpki =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|error| StorageError::Other(format!("TLS roots: {error}").into()))?;
            if verification == Verification::Full {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
                    .with_no_client_auth()
            }
        }
    };
    Ok(config)
}

/// The roots certificates are checked against: `sslrootcert`'s file, else the system's.
fn roots(root_file: Option<&str>) -> Result<rustls::RootCertStore, StorageError> {
    let mut roots = rustls::RootCertStore::empty();
    let certificates: Vec<CertificateDer<'static>> = match root_file {
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            CertificateDer::pem_file_iter(path)
                .and_then(|certificates| certificates.collect())
                .map_err(|error| {
                    StorageError::Other(
                        format!("cannot read the root certificates in sslrootcert={path}: {error}")
                            .into(),
                    )
                })?
        }
        None => rustls_native_certs::load_native_certs().certs,
    };
    let (added, _) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(StorageError::Other(format!(
            "no root certificate to verify the server with ({}); name a file with sslrootcert=PATH",
            root_file.map_or("the system has none".to_string(), |path| format!(
                "{path} holds none"
            ))
        ).into()));
    }
    Ok(roots)
}

/// libpq's `require`: any certificate, the handshake's signatures still checked.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// libpq's `verify-ca`: the chain checked, the host name not.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_modes_become_require_with_a_checker() {
        let (config, verification, root) =
            parse("postgres://u:p@h1:1,h2:2/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&target_session_attrs=read-write")
                .unwrap();
        assert_eq!(verification, Verification::Full);
        assert_eq!(root.as_deref(), Some("/tmp/ca.pem"));
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        assert_eq!(config.get_hosts().len(), 2);
        let (config, verification, _) = parse("postgres://h/db").unwrap();
        assert_eq!(verification, Verification::None);
        assert_eq!(config.get_ssl_mode(), SslMode::Prefer);
        assert_eq!(config.get_application_name(), Some("tally"));
        assert_eq!(config.get_options(), Some(PLANNER_OPTIONS));
        let (config, _, _) = parse("postgres://h/db?options=-c%20statement_timeout%3D5s").unwrap();
        assert_eq!(
            config.get_options(),
            Some(format!("-c statement_timeout=5s {PLANNER_OPTIONS}").as_str())
        );
    }

    #[test]
    fn bad_urls_never_show_the_password() {
        let error = parse("postgres://u:s3cret@h/db?bogus=1").unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }
}
