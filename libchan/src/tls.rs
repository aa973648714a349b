//! TLS over TCP with rustls (ring provider).
//!
//! Build the rustls configs as usual (use
//! `rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))`
//! to be independent of the process default provider) and wrap the
//! handshaken stream with these helpers.

use std::sync::Arc;

use tokio::net::TcpStream;

use crate::error::{Error, Result};
use crate::transport::Transport;

pub use rustls;
pub use tokio_rustls;

/// Runs a TLS client handshake for `server_name` over `tcp`.
pub async fn connect(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> Result<Transport> {
    let _ = tcp.set_nodelay(true);
    let name =
        rustls::pki_types::ServerName::try_from(server_name.to_owned()).map_err(|e| Error::Io {
            context: "TLS server name",
            message: format!("{server_name:?}: {e}"),
        })?;
    let s = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| Error::io("TLS handshake", e))?;
    Ok(Transport::io(s))
}

/// Runs a TLS server handshake over `tcp`.
pub async fn accept(tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> Result<Transport> {
    let _ = tcp.set_nodelay(true);
    let s = tokio_rustls::TlsAcceptor::from(config)
        .accept(tcp)
        .await
        .map_err(|e| Error::io("TLS handshake", e))?;
    Ok(Transport::io(s))
}
