//! Websocket transport (tokio-tungstenite): frames in binary messages.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{Error, Result};
use crate::transport::Transport;

pub use tokio_tungstenite;

/// Runs the client handshake for `url` (e.g. `ws://host/chan`) over an
/// already connected stream.
pub async fn connect<S>(stream: S, url: &str) -> Result<Transport>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ws, _resp) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| Error::Io {
            context: "websocket handshake",
            message: e.to_string(),
        })?;
    Ok(Transport::websocket(ws))
}

/// Runs the server handshake over an accepted stream.
pub async fn accept<S>(stream: S) -> Result<Transport>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws = tokio_tungstenite::accept_async(stream)
        .await
        .map_err(|e| Error::Io {
            context: "websocket handshake",
            message: e.to_string(),
        })?;
    Ok(Transport::websocket(ws))
}
