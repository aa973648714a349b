//! Hands a listening TCP socket to another process over a unix socketpair
//! (SCM_RIGHTS). The parent binds, the child accepts and serves; the parent
//! then connects to its own address and is answered by the child.
//!
//! ```sh
//! cargo run -p libchan --example pass_listener
//! ```

use std::process::Command;

use anyhow::{Context, Result};
use libchan::{Builder, Fd, Sender, Transport};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VAR: &str = "PASS_LISTENER_FD";

#[derive(Serialize, Deserialize)]
struct Handover {
    listener: Fd,
    /// The child reports how many connections it served.
    done: Sender<u32>,
}

async fn child() -> Result<()> {
    let sock = libchan::unix::from_env(VAR)?;
    let (conn, _tx, mut rx) = Builder::new().server::<(), Handover>(Transport::unix(sock))?;
    let h = rx.recv().await?.context("parent sent nothing")?;
    let std_listener = std::net::TcpListener::from(h.listener.into_owned()?);
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let (mut s, _) = listener.accept().await?;
    s.write_all(format!("hello from child pid {}\n", std::process::id()).as_bytes())
        .await?;
    h.done.send(1).await?;
    conn.flush().await?;
    Ok(())
}

async fn parent() -> Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (mine, theirs) = libchan::unix::socketpair()?;
    let mut cmd = Command::new(std::env::current_exe()?);
    libchan::unix::pass_to_child(&mut cmd, theirs, VAR);
    let mut proc = cmd.spawn()?;
    drop(cmd);
    let (conn, tx, _rx) =
        Builder::new().client::<Handover, ()>(Transport::unix(libchan::unix::into_tokio(mine)?))?;
    let (done, mut done_rx) = libchan::channel(1);
    tx.send(Handover {
        listener: Fd::new(listener),
        done,
    })
    .await?;
    // The listener now lives only in the child; connecting reaches it.
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).await?;
    print!("parent {} got: {reply}", std::process::id());
    let served = done_rx.recv().await?.context("child died")?;
    println!("child served {served} connection(s)");
    drop(tx);
    conn.close().await;
    proc.wait()?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    if std::env::var_os(VAR).is_some() {
        child().await
    } else {
        parent().await
    }
}
