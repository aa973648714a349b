//! Streams and fds across a real process boundary: the test binary
//! re-invokes itself as a child connected through an inherited socketpair.

use std::io::{Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use libchan::{channel, pipe, Builder, ByteStream, Fd, Sender, Transport};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FD_VAR: &str = "LIBCHAN_TEST_CHILD_FD";

#[derive(Serialize, Deserialize)]
enum Req {
    /// Upper-cases everything read from the stream and writes it back.
    Upper { io: ByteStream },
    /// Writes `text` into `fd`, then replies with a new fd holding `text`
    /// reversed.
    Fds {
        fd: Fd,
        text: String,
        reply: Sender<Fd>,
    },
    /// Exits at once without closing anything.
    Die,
}

/// The child's side. Runs only when the parent re-invokes this binary.
#[test]
fn child_main() {
    if std::env::var(FD_VAR).is_err() {
        return; // normal test run: nothing to do
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sock = libchan::unix::from_env(FD_VAR).unwrap();
        let (conn, _tx, mut rx) = Builder::new()
            .server::<(), Req>(Transport::unix(sock))
            .unwrap();
        while let Ok(Some(req)) = rx.recv().await {
            match req {
                Req::Upper { mut io } => {
                    let mut buf = Vec::new();
                    io.read_to_end(&mut buf).await.unwrap();
                    io.write_all(&buf.to_ascii_uppercase()).await.unwrap();
                    io.shutdown().await.unwrap();
                }
                Req::Fds { fd, text, reply } => {
                    let mut f = std::fs::File::from(fd.into_owned().unwrap());
                    f.write_all(text.as_bytes()).unwrap();
                    drop(f);
                    let mut t = tempfile::tempfile().unwrap();
                    t.write_all(text.chars().rev().collect::<String>().as_bytes())
                        .unwrap();
                    t.rewind().unwrap();
                    reply.send(Fd::new(t)).await.unwrap();
                }
                Req::Die => std::process::exit(0),
            }
        }
        conn.flush().await.unwrap();
    });
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child() -> (Child, tokio::net::UnixStream) {
    let (parent, child) = libchan::unix::socketpair().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_main", "--exact", "--nocapture", "--test-threads=1"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    libchan::unix::pass_to_child(&mut cmd, child, FD_VAR);
    let proc = cmd.spawn().unwrap();
    drop(cmd); // closes the parent's copy of the child's end
    (Child(proc), libchan::unix::into_tokio(parent).unwrap())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_stream_to_a_child_process() {
    let (_child, sock) = spawn_child();
    let (conn, tx, _rx) = Builder::new()
        .client::<Req, ()>(Transport::unix(sock))
        .unwrap();
    let (mut mine, theirs) = pipe();
    tx.send(Req::Upper { io: theirs }).await.unwrap();
    let text = "hello across processes ".repeat(10_000);
    mine.write_all(text.as_bytes()).await.unwrap();
    mine.shutdown().await.unwrap();
    let mut back = String::new();
    tokio::time::timeout(Duration::from_secs(20), mine.read_to_string(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, text.to_uppercase());
    drop(tx);
    conn.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fds_both_ways_with_a_child_process_and_no_leak() {
    let before = open_fds();
    {
        let (_child, sock) = spawn_child();
        let (conn, tx, _rx) = Builder::new()
            .client::<Req, ()>(Transport::unix(sock))
            .unwrap();
        for i in 0..20 {
            let (r, w) = nix::unistd::pipe().unwrap();
            let (reply, mut replies) = channel::<Fd>(1);
            let text = format!("message {i}");
            tx.send(Req::Fds {
                fd: Fd::new(w),
                text: text.clone(),
                reply,
            })
            .await
            .unwrap();
            let got: OwnedFd = replies.recv().await.unwrap().unwrap().into_owned().unwrap();
            // The child wrote into our pipe through the passed write end
            // (and closed it, so read_to_string ends).
            let mut s = String::new();
            std::fs::File::from(r).read_to_string(&mut s).unwrap();
            assert_eq!(s, text);
            // And the fd it sent back is a file with the reversed text.
            let mut s = String::new();
            std::fs::File::from(got).read_to_string(&mut s).unwrap();
            assert_eq!(s, text.chars().rev().collect::<String>());
        }
        drop(tx);
        conn.close().await;
    }
    assert_eq!(open_fds(), before, "fds leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_death_is_reported_on_open_channels() {
    let (_child, sock) = spawn_child();
    let (conn, tx, _rx) = Builder::new()
        .client::<Req, ()>(Transport::unix(sock))
        .unwrap();
    let (reply, mut replies) = channel::<Fd>(1);
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    tx.send(Req::Die).await.unwrap();
    let _ = tx
        .send(Req::Fds {
            fd: Fd::new(w),
            text: "x".into(),
            reply,
        })
        .await;
    let got = tokio::time::timeout(Duration::from_secs(20), replies.recv())
        .await
        .unwrap();
    assert!(
        matches!(got, Err(libchan::Error::Disconnected(_)) | Ok(None)),
        "{got:?}"
    );
    let err = tokio::time::timeout(Duration::from_secs(20), conn.closed())
        .await
        .unwrap();
    assert!(matches!(err, libchan::Error::Disconnected(_)), "{err}");
}
