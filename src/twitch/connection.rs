//! Opening the chat connection: plain TCP (the simulator) or TLS (real Twitch), with a timeout.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// A byte stream to the chat server, plain or TLS.
pub trait ChatStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ChatStream for T {}

/// Connects to `server` (`host:port`), with TLS when `tls`, giving up after `timeout`.
pub async fn connect(
    server: &str,
    tls: bool,
    timeout: Duration,
) -> std::io::Result<Box<dyn ChatStream>> {
    let attempt = async {
        let tcp = TcpStream::connect(server).await?;
        tcp.set_nodelay(true)?;
        if !tls {
            return Ok(Box::new(tcp) as Box<dyn ChatStream>);
        }
        let host = server
            .rsplit_once(':')
            .map_or(server, |(h, _)| h)
            .to_string();
        let name = ServerName::try_from(host)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let stream = tls_connector().connect(name, tcp).await?;
        Ok(Box::new(stream) as Box<dyn ChatStream>)
    };
    tokio::time::timeout(timeout, attempt).await.map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connecting to {server} timed out"),
        )
    })?
}

fn tls_connector() -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    match config {
        Ok(config) => TlsConnector::from(Arc::new(config)),
        // The ring provider supports the default protocol versions; this branch is unreachable
        // in practice, and a connector without roots would fail every handshake loudly.
        Err(_) => TlsConnector::from(Arc::new(
            ClientConfig::builder()
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth(),
        )),
    }
}
