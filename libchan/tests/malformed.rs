//! A hostile or broken peer: garbage gives a clear error on the affected
//! channels, never a panic, a hang or a leaked fd.

use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use libchan::wire::{self, Hello, Kind};
use libchan::{Builder, Error, Fd, Receiver, Transport};

fn hello() -> Vec<u8> {
    wire::hello_frame(&Hello {
        version: wire::VERSION,
        fds: true,
        close_reasons: true,
        max_frame_size: 1 << 20,
    })
}

fn frame(kind: Kind, nfds: u8, nann: u16, chan: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    wire::put_header(&mut out, kind, nfds, nann, chan, body.len() as u32);
    out.extend_from_slice(body);
    out
}

/// Starts a libchan server on one end and returns the raw other end.
fn server<T: libchan::Message>() -> (
    libchan::Connection,
    Receiver<T>,
    std::os::unix::net::UnixStream,
) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let t = Transport::unix(libchan::unix::into_tokio(a).unwrap());
    let (conn, _tx, rx) = Builder::new()
        .max_frame_size(1 << 16)
        .server::<(), T>(t)
        .unwrap();
    (conn, rx, b)
}

async fn expect_protocol_error<T: libchan::Message + std::fmt::Debug>(
    rx: &mut Receiver<T>,
    what: &str,
) {
    let r = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("hang");
    match r {
        Err(Error::Protocol(m)) => assert!(m.contains(what), "{m} does not mention {what}"),
        other => panic!("expected a protocol error about {what}, got {other:?}"),
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test]
async fn truncated_frame_then_eof() {
    let (_c, mut rx, mut raw) = server::<u32>();
    let mut bytes = hello();
    bytes.extend_from_slice(&frame(Kind::Msg, 0, 0, wire::ROOT_TO_SERVER, &[1, 2, 3, 4])[..10]);
    raw.write_all(&bytes).unwrap();
    raw.shutdown(std::net::Shutdown::Write).unwrap();
    expect_protocol_error(&mut rx, "middle of a frame").await;
}

#[tokio::test]
async fn oversized_length() {
    let (_c, mut rx, mut raw) = server::<u32>();
    let mut bytes = hello();
    let mut h = Vec::new();
    wire::put_header(&mut h, Kind::Msg, 0, 0, wire::ROOT_TO_SERVER, 1 << 30);
    bytes.extend_from_slice(&h);
    raw.write_all(&bytes).unwrap();
    expect_protocol_error(&mut rx, "exceeds max_frame_size").await;
}

#[tokio::test]
async fn unknown_channel_id() {
    let (_c, mut rx, mut raw) = server::<u32>();
    let mut bytes = hello();
    bytes.extend_from_slice(&frame(Kind::Msg, 0, 0, 1_000_002, &[1]));
    raw.write_all(&bytes).unwrap();
    expect_protocol_error(&mut rx, "unknown channel id 1000002").await;
}

#[tokio::test]
async fn missing_hello_and_wrong_version() {
    let (_c, mut rx, mut raw) = server::<u32>();
    raw.write_all(&frame(Kind::Msg, 0, 0, wire::ROOT_TO_SERVER, &[1]))
        .unwrap();
    expect_protocol_error(&mut rx, "not HELLO").await;

    let (_c, mut rx, mut raw) = server::<u32>();
    let mut h = hello();
    h[wire::HEADER_LEN + 4] = 99;
    raw.write_all(&h).unwrap();
    expect_protocol_error(&mut rx, "version 99").await;
}

#[tokio::test]
async fn garbage_payload_is_a_decode_error_and_the_channel_survives() {
    let (_c, mut rx, mut raw) = server::<String>();
    let mut bytes = hello();
    bytes.extend_from_slice(&frame(
        Kind::Msg,
        0,
        0,
        wire::ROOT_TO_SERVER,
        &[200, 200, 200],
    ));
    let good = postcard::to_allocvec(&"ok".to_string()).unwrap();
    bytes.extend_from_slice(&frame(Kind::Msg, 0, 0, wire::ROOT_TO_SERVER, &good));
    raw.write_all(&bytes).unwrap();
    let r = rx.recv().await;
    assert!(matches!(r, Err(Error::Decode(_))), "{r:?}");
    assert_eq!(rx.recv().await.unwrap().as_deref(), Some("ok"));
}

#[tokio::test]
async fn credit_overrun_is_a_protocol_error() {
    let (_c, mut rx, mut raw) = server::<u8>();
    let mut bytes = hello();
    for _ in 0..=wire::ROOT_WINDOW {
        bytes.extend_from_slice(&frame(Kind::Msg, 0, 0, wire::ROOT_TO_SERVER, &[7]));
    }
    raw.write_all(&bytes).unwrap();
    let mut n = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("hang")
        {
            Ok(Some(7)) => n += 1,
            Err(Error::Protocol(m)) => {
                assert!(m.contains("credit"), "{m}");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(n <= wire::ROOT_WINDOW as usize);
}

fn send_fds(sock: &std::os::unix::net::UnixStream, data: &[u8], fds: &[OwnedFd]) {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(data)],
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .unwrap();
}

fn devnull() -> OwnedFd {
    std::fs::File::open("/dev/null").unwrap().into()
}

#[tokio::test]
async fn fd_count_mismatch_closes_everything() {
    let before = open_fds();
    {
        let (c, mut rx, raw) = server::<(Fd, Fd)>();
        let body = postcard::to_allocvec(&(0u32, 1u32)).unwrap();
        let mut bytes = hello();
        bytes.extend_from_slice(&frame(Kind::Msg, 2, 0, wire::ROOT_TO_SERVER, &body));
        // Declares two fds, passes one.
        send_fds(&raw, &bytes, &[devnull()]);
        expect_protocol_error(&mut rx, "declares 2 fds but 1 arrived").await;
        c.closed().await;
        drop(raw);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(open_fds(), before, "fds leaked");
}

#[tokio::test]
async fn unclaimed_and_surplus_fds_are_closed() {
    let before = open_fds();
    {
        // The receiver's type has no fds: the two that come with the
        // message must be closed, and so must one sent with no frame at all.
        let (c, mut rx, raw) = server::<u32>();
        let mut bytes = hello();
        bytes.extend_from_slice(&frame(Kind::Msg, 2, 0, wire::ROOT_TO_SERVER, &[5]));
        send_fds(&raw, &bytes, &[devnull(), devnull()]);
        assert_eq!(rx.recv().await.unwrap(), Some(5));
        send_fds(&raw, &frame(Kind::Close, 0, 0, 999_999, &[]), &[devnull()]);
        drop(raw);
        let r = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap();
        assert!(matches!(r, Err(Error::Disconnected(_))), "{r:?}");
        c.closed().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(open_fds(), before, "fds leaked");
}

#[tokio::test]
async fn announcement_in_the_wrong_id_space_is_rejected() {
    let (_c, mut rx, mut raw) = server::<libchan::Sender<u8>>();
    let mut body = postcard::to_allocvec(&0u32).unwrap();
    // The server allocates odd ids; the client may not announce one.
    wire::put_announcement(
        &mut body,
        &wire::Announcement {
            id: 3,
            kind: wire::AnnKind::Sender,
            window: 4,
        },
    );
    let mut bytes = hello();
    bytes.extend_from_slice(&frame(Kind::Msg, 0, 1, wire::ROOT_TO_SERVER, &body));
    raw.write_all(&bytes).unwrap();
    expect_protocol_error(&mut rx, "id space").await;
}

/// Every file of the fuzz corpus goes through the frame decoder and through
/// a live connection without panicking or hanging.
#[tokio::test]
async fn fuzz_corpus_never_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let _ = wire::decode_all(&data, 1 << 16);
        let (_c, mut rx, mut raw) = server::<(u32, Option<libchan::Sender<u8>>)>();
        raw.write_all(&hello()).unwrap();
        raw.write_all(&data).unwrap();
        drop(raw);
        // Messages and decode errors may come; the stream must then end.
        while let Ok(Some(_)) | Err(Error::Decode(_)) =
            tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("hang")
        {}
        n += 1;
    }
    assert!(n >= 10, "corpus has only {n} files");
}

/// A receiver fed by one connection and sent on over another: when the
/// first connection dies, the far end sees an error after the messages
/// that got through, not a clean end of stream.
#[tokio::test]
async fn a_forwarded_receiver_reports_its_upstream_dying() {
    // X (raw) -> A over conn1; A sends its root receiver on to C (conn2).
    let (_conn1, a_rx, mut x) = server::<u32>();
    let (a_sock, c_sock) = std::os::unix::net::UnixStream::pair().unwrap();
    let (_conn2, a_tx, _) = Builder::new()
        .client::<Receiver<u32>, ()>(Transport::unix(libchan::unix::into_tokio(a_sock).unwrap()))
        .unwrap();
    let (_c_conn, _, mut c_rx) = Builder::new()
        .server::<(), Receiver<u32>>(Transport::unix(libchan::unix::into_tokio(c_sock).unwrap()))
        .unwrap();
    a_tx.send(a_rx).await.unwrap();
    let mut got = c_rx.recv().await.unwrap().unwrap();

    let mut bytes = hello();
    for v in [1u8, 2] {
        bytes.extend_from_slice(&frame(Kind::Msg, 0, 0, wire::ROOT_TO_SERVER, &[v]));
    }
    x.write_all(&bytes).unwrap();
    assert_eq!(within(got.recv()).await.unwrap(), Some(1));
    assert_eq!(within(got.recv()).await.unwrap(), Some(2));
    // Conn1 dies without X closing the channel.
    drop(x);
    match within(got.recv()).await {
        Err(Error::Disconnected(m)) => assert!(m.contains("sender failed"), "{m}"),
        other => panic!("expected the upstream failure, got {other:?}"),
    }
    assert_eq!(within(got.recv()).await.unwrap(), None);
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .expect("hang")
}

/// A peer whose HELLO does not accept CLOSE reasons gets a plain CLOSE.
#[tokio::test]
async fn peers_without_close_reasons_get_a_plain_close() {
    let (_conn1, a_rx, x) = server::<u32>();
    let (a_sock, mut c) = std::os::unix::net::UnixStream::pair().unwrap();
    let (_conn2, a_tx, _) = Builder::new()
        .client::<Receiver<u32>, ()>(Transport::unix(libchan::unix::into_tokio(a_sock).unwrap()))
        .unwrap();
    c.write_all(&wire::hello_frame(&Hello {
        version: wire::VERSION,
        fds: true,
        close_reasons: false,
        max_frame_size: 1 << 20,
    }))
    .unwrap();
    // Let A read that HELLO before anything fails.
    tokio::time::sleep(Duration::from_millis(50)).await;
    a_tx.send(a_rx).await.unwrap();
    drop(x);
    // Read what A sends C until the CLOSE of the forwarded channel.
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let close = tokio::task::spawn_blocking(move || {
        let dec = wire::FrameDecoder::new(1 << 20);
        let mut buf = bytes::BytesMut::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                if f.kind == Kind::Close && f.chan != wire::ROOT_TO_SERVER {
                    return f;
                }
            }
            let n = std::io::Read::read(&mut c, &mut chunk).expect("no CLOSE came");
            assert!(n > 0, "connection ended without a CLOSE");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .unwrap();
    assert_eq!(close.close_reason().unwrap(), None);
}
