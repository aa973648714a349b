//! Remote exec over libchan: the client sends a command with stdin, stdout
//! and stderr byte streams and gets the exit status on a return channel.
//!
//! ```sh
//! cargo run -p libchan --example remote_exec -- serve unix /tmp/exec.sock &
//! echo hi | cargo run -p libchan --example remote_exec -- run unix /tmp/exec.sock tr a-z A-Z
//! cargo run -p libchan --example remote_exec -- serve tcp 127.0.0.1:7070 &
//! cargo run -p libchan --example remote_exec -- run tcp 127.0.0.1:7070 sh -c 'echo out; echo err >&2; exit 3'
//! cargo run -p libchan --example remote_exec -- demo   # both transports, in one process
//! ```

use std::process::Stdio;

use anyhow::{bail, Context, Result};
use libchan::{pipe, Builder, ByteStream, Sender, Transport};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

#[derive(Serialize, Deserialize)]
struct Exec {
    argv: Vec<String>,
    stdin: ByteStream,
    stdout: ByteStream,
    stderr: ByteStream,
    /// Exit code, or -signal.
    status: Sender<i32>,
}

/// Serves exec requests on one connection.
async fn serve_conn(t: Transport) -> Result<()> {
    let (_conn, _tx, mut rx) = Builder::new().server::<(), Exec>(t)?;
    while let Some(req) = rx.recv().await? {
        tokio::spawn(async move {
            if let Err(e) = run_one(req).await {
                eprintln!("exec failed: {e:#}");
            }
        });
    }
    Ok(())
}

async fn run_one(req: Exec) -> Result<()> {
    let Exec {
        argv,
        mut stdin,
        mut stdout,
        mut stderr,
        status,
    } = req;
    let Some((prog, args)) = argv.split_first() else {
        bail!("empty command");
    };
    let mut child = match tokio::process::Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            stderr
                .write_all(format!("{prog}: {e}\n").as_bytes())
                .await?;
            status.send(127).await?;
            return Ok(());
        }
    };
    let mut cin = child.stdin.take().context("stdin")?;
    let mut cout = child.stdout.take().context("stdout")?;
    let mut cerr = child.stderr.take().context("stderr")?;
    let feed = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut stdin, &mut cin).await;
    });
    let (o, e) = tokio::join!(
        copy_close(&mut cout, &mut stdout),
        copy_close(&mut cerr, &mut stderr)
    );
    o?;
    e?;
    let st = child.wait().await?;
    feed.abort();
    use std::os::unix::process::ExitStatusExt;
    let code = st.code().unwrap_or_else(|| -st.signal().unwrap_or(0));
    status.send(code).await?;
    Ok(())
}

async fn copy_close<R, W>(r: &mut R, w: &mut W) -> Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    tokio::io::copy(r, w).await?;
    w.shutdown().await?;
    Ok(())
}

/// Runs `argv` remotely with this process's stdio; returns the exit code.
async fn run_remote(
    t: Transport,
    argv: Vec<String>,
    input: impl AsyncRead + Unpin + Send + 'static,
) -> Result<(i32, Vec<u8>, Vec<u8>)> {
    let (conn, tx, _rx) = Builder::new().client::<Exec, ()>(t)?;
    let (mut stdin, r_in) = pipe();
    let (mut stdout, r_out) = pipe();
    let (mut stderr, r_err) = pipe();
    let (status, mut status_rx) = libchan::channel(1);
    tx.send(Exec {
        argv,
        stdin: r_in,
        stdout: r_out,
        stderr: r_err,
        status,
    })
    .await?;
    let mut input = input;
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut input, &mut stdin).await;
        let _ = stdin.shutdown().await;
    });
    let mut out = Vec::new();
    let mut err = Vec::new();
    let (a, b) = tokio::join!(
        tokio::io::copy(&mut stdout, &mut out),
        tokio::io::copy(&mut stderr, &mut err)
    );
    a?;
    b?;
    let code = status_rx
        .recv()
        .await?
        .context("server dropped the status channel")?;
    drop(tx);
    conn.close().await;
    Ok((code, out, err))
}

async fn connect(kind: &str, addr: &str) -> Result<Transport> {
    Ok(match kind {
        "unix" => Transport::unix(tokio::net::UnixStream::connect(addr).await?),
        "tcp" => Transport::tcp(tokio::net::TcpStream::connect(addr).await?),
        _ => bail!("transport must be unix or tcp, not {kind:?}"),
    })
}

async fn serve(kind: &str, addr: &str) -> Result<()> {
    match kind {
        "unix" => {
            let _ = std::fs::remove_file(addr);
            let l = tokio::net::UnixListener::bind(addr)?;
            loop {
                let (s, _) = l.accept().await?;
                tokio::spawn(serve_conn(Transport::unix(s)));
            }
        }
        "tcp" => {
            let l = tokio::net::TcpListener::bind(addr).await?;
            loop {
                let (s, _) = l.accept().await?;
                tokio::spawn(serve_conn(Transport::tcp(s)));
            }
        }
        _ => bail!("transport must be unix or tcp, not {kind:?}"),
    }
}

async fn demo() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("exec.sock");
    let sock = sock.to_str().context("path")?.to_owned();
    let s2 = sock.clone();
    tokio::spawn(async move { serve("unix", &s2).await });
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let tcp_addr = tcp.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((s, _)) = tcp.accept().await {
            tokio::spawn(serve_conn(Transport::tcp(s)));
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    for (kind, addr) in [("unix", sock.as_str()), ("tcp", tcp_addr.as_str())] {
        let argv = ["sh", "-c", "tr a-z A-Z; echo to-stderr >&2; exit 3"]
            .map(String::from)
            .to_vec();
        let (code, out, err) = run_remote(
            connect(kind, addr).await?,
            argv,
            &b"hello over libchan\n"[..],
        )
        .await?;
        println!(
            "{kind}: exit {code}, stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        );
        if code != 3 || out != b"HELLO OVER LIBCHAN\n" || err != b"to-stderr\n" {
            bail!("unexpected result over {kind}");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", kind, addr] => serve(kind, addr).await,
        ["run", kind, addr, cmd @ ..] if !cmd.is_empty() => {
            let argv = cmd.iter().map(|s| s.to_string()).collect();
            let (code, out, err) =
                run_remote(connect(kind, addr).await?, argv, tokio::io::stdin()).await?;
            tokio::io::stdout().write_all(&out).await?;
            tokio::io::stderr().write_all(&err).await?;
            std::process::exit(code);
        }
        ["demo"] => demo().await,
        _ => bail!("usage: remote_exec serve unix|tcp ADDR | run unix|tcp ADDR CMD... | demo"),
    }
}
