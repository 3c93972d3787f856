//! TLS for the fake's REST side: a test certificate for `discord.com` signed by a test CA that
//! exists only in this repository (never trust it outside tests), and an axum listener that
//! terminates TLS with it.
//!
//! Why TLS at all: serenity's `HttpBuilder::proxy` (the obvious seam) is ignored while its
//! ratelimiter is on, and production keeps the ratelimiter on. So the service keeps talking to
//! `https://discord.com`; the test resolves that name to the fake (`discord.rest_address`) and
//! trusts this CA (`discord.root_ca_file`), and serenity's ratelimiter runs as in production.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The test CA's certificate (PEM): what a client must trust to talk to the fake.
pub const TEST_CA_PEM: &str = include_str!("test-ca.pem");
const LEAF_PEM: &str = include_str!("test-discord-com.pem");
const LEAF_KEY_PEM: &str = include_str!("test-discord-com.key.pem");

/// A TLS acceptor presenting the test certificate for `discord.com`.
pub fn acceptor() -> io::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(LEAF_PEM.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(io::Error::other)?;
    let key = PrivateKeyDer::from_pem_slice(LEAF_KEY_PEM.as_bytes()).map_err(io::Error::other)?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// An axum listener that completes the TLS handshake before handing a connection over.
pub struct TlsListener {
    pub tcp: TcpListener,
    pub acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let handshake = self.acceptor.accept(stream);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
