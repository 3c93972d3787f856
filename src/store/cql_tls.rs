//! TLS for the CQL driver: the rustls client configuration (ring provider, like every other TLS
//! client of the service) built from `[store]`'s files.
//!
//! - Trust: the CA certificates of `store.scylla_ca_file` (PEM), or the public roots of
//!   `webpki-roots` when no CA file is given. Nothing else: a node whose certificate does not
//!   chain to them fails the handshake.
//! - Name: the driver connects to nodes by IP address and checks the certificate against that
//!   address. With `store.scylla_tls_server_name` the certificate is checked against that name
//!   instead (clusters whose certificates name a host, not addresses); the chain, validity and
//!   signatures are checked as always.
//! - Mutual TLS: `store.scylla_client_cert_file` + `store.scylla_client_key_file`, presented to
//!   nodes that require a client certificate.
//!
//! Every failure is a [`StoreError::Config`] naming the key and the file.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{StoreError, StoreResult};
use crate::config::StoreConfig;

/// Longest PEM file read (a CA bundle is far smaller).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The client configuration `[store]` asks for (call only with `scylla_tls` on).
pub fn client_config(config: &StoreConfig) -> StoreResult<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match &config.scylla_ca_file {
        Some(path) => {
            for cert in certificates(path, "store.scylla_ca_file")? {
                roots.add(cert).map_err(|e| {
                    bad(
                        "store.scylla_ca_file",
                        path,
                        format!("not a usable CA certificate: {e}"),
                    )
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let webpki =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .map_err(|e| StoreError::Config(format!("store.scylla_ca_file: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if config.scylla_tls_server_name.is_empty() {
        webpki
    } else {
        let name = ServerName::try_from(config.scylla_tls_server_name.clone()).map_err(|_| {
            StoreError::Config(format!(
                "store.scylla_tls_server_name: {:?} is not a DNS name or IP address",
                config.scylla_tls_server_name
            ))
        })?;
        Arc::new(NamedVerifier {
            inner: webpki,
            name,
        })
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("store.scylla_tls: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let client = match (
        &config.scylla_client_cert_file,
        &config.scylla_client_key_file,
    ) {
        (Some(cert_path), Some(key_path)) => {
            let chain = certificates(cert_path, "store.scylla_client_cert_file")?;
            let key = private_key(key_path)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                bad(
                    "store.scylla_client_key_file",
                    key_path,
                    format!("does not go with the client certificate: {e}"),
                )
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(StoreError::Config(
            "store.scylla_client_cert_file and store.scylla_client_key_file: set both or neither"
                .into(),
        )),
    };
    Ok(Arc::new(client))
}

fn bad(key: &str, path: &Path, why: impl std::fmt::Display) -> StoreError {
    StoreError::Config(format!("{key} {}: {why}", path.display()))
}

/// Reads a PEM file (a regular file, bounded).
fn read_pem(path: &Path, key: &str) -> StoreResult<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| bad(key, path, e))?;
    let meta = file.metadata().map_err(|e| bad(key, path, e))?;
    if !meta.is_file() {
        return Err(bad(key, path, "not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(key, path, e))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(bad(key, path, format!("longer than {MAX_PEM_BYTES} bytes")));
    }
    Ok(bytes)
}

/// The certificates of a PEM file: at least one.
fn certificates(path: &Path, key: &str) -> StoreResult<Vec<CertificateDer<'static>>> {
    let bytes = read_pem(path, key)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(key, path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad(key, path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The private key of a PEM file (the first one).
fn private_key(path: &Path) -> StoreResult<PrivateKeyDer<'static>> {
    let key = "store.scylla_client_key_file";
    let bytes = read_pem(path, key)?;
    // The error texts of the PEM parser never include the key's bytes.
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| bad(key, path, format!("no PEM private key in it: {e}")))
}

/// Checks the node's certificate against a configured name instead of the address the driver
/// connected to; everything else is the standard WebPKI check.
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _connected_to: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_config(dir: &Path) -> StoreConfig {
        StoreConfig {
            scylla_tls: true,
            scylla_ca_file: Some(dir.join("ca.pem")),
            ..StoreConfig::default()
        }
    }

    #[test]
    fn files_that_are_not_what_they_should_be_fail_naming_key_and_file() {
        let dir = tempfile::tempdir().expect("dir");
        let config = tls_config(dir.path());
        let missing = client_config(&config).expect_err("no file");
        assert!(
            missing.to_string().contains("store.scylla_ca_file")
                && missing.to_string().contains("ca.pem"),
            "{missing}"
        );
        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").expect("write");
        let empty = client_config(&config).expect_err("no certificate");
        assert!(
            empty.to_string().contains("holds no PEM certificate"),
            "{empty}"
        );
        std::fs::write(
            dir.path().join("ca.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let garbage = client_config(&config).expect_err("garbage certificate");
        assert!(
            garbage.to_string().contains("store.scylla_ca_file"),
            "{garbage}"
        );
    }

    #[test]
    fn without_a_ca_file_the_public_roots_are_trusted() {
        let config = StoreConfig {
            scylla_tls: true,
            ..StoreConfig::default()
        };
        assert!(client_config(&config).is_ok());
    }
}
