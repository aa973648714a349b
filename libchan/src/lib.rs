//! Go-channel-like typed message passing across processes and hosts.
//!
//! - [`channel`] makes a typed, bounded channel: [`Sender<T>`] and
//!   [`Receiver<T>`] for any serde type, with async and blocking send and
//!   receive and tokio-mpsc close semantics (all senders dropped ends the
//!   stream; a dropped receiver makes sends fail). In memory, values move
//!   without serialization.
//! - A [`Connection`] multiplexes many channels over one byte stream (unix
//!   socket, TCP, TLS, websocket, anything `AsyncRead + AsyncWrite`) with
//!   per-channel credit flow control, so one slow receiver stalls nobody
//!   else.
//! - Messages may carry channel handles ([`Sender`], [`Receiver`]) of any
//!   type, byte pipes ([`ByteStream`]) and, on unix sockets, file
//!   descriptors ([`Fd`]). Sending a new channel needs no round trip.
//!
//! The wire protocol is described in `PROTOCOL.md` next to this crate.
//!
//! ```
//! use libchan::{Builder, Receiver, Sender, Transport};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Request { n: u32, reply: Sender<u32> }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let (a, b) = tokio::io::duplex(64 * 1024);
//! let (_c1, to_server, _) = Builder::new().client::<Request, ()>(Transport::io(a)).unwrap();
//! let (_c2, _, mut requests) = Builder::new().server::<(), Request>(Transport::io(b)).unwrap();
//! tokio::spawn(async move {
//!     while let Ok(Some(req)) = requests.recv().await {
//!         let _ = req.reply.send(req.n * 2).await;
//!     }
//! });
//! let (reply, mut replies) = libchan::channel(1);
//! to_server.send(Request { n: 21, reply }).await.unwrap();
//! assert_eq!(replies.recv().await.unwrap(), Some(42));
//! # });
//! ```

mod chan;
mod conn;
mod ctx;
mod error;
mod fd;
mod stream;
mod transport;

pub mod tls;
pub mod unix;
pub mod wire;
pub mod ws;

pub use chan::{channel, Message, Receiver, Sender, TrySendError, DEFAULT_CAPACITY};
pub use conn::{Builder, BusyPollStats, Config, Connection, Role};
pub use error::{Error, Result};
pub use fd::Fd;
pub use stream::{pipe, ByteStream};
pub use transport::Transport;
