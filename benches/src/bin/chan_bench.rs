//! libchan against servo's ipc-channel, remoc and the raw socket, across
//! two processes (this binary re-invokes itself as the child).
//!
//! ```sh
//! cargo build --release -p benches --bin chan_bench
//! target/release/chan_bench [rounds] [section]
//! ```
//!
//! Every measurement spawns a fresh child; the libraries are interleaved
//! within each round and the table reports the median and minimum over the
//! rounds, plus CPU time (parent + child, user + system) per message.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnix;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const FD_VAR: &str = "CHAN_BENCH_FD";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Lib {
    Raw,
    /// The raw loop over SOCK_SEQPACKET (what ipc-channel uses; rtt only).
    RawSeqpacket,
    Libchan,
    /// libchan with busy polling off (`Builder::busy_poll(ZERO)`); the
    /// `libchan` row uses the default, or CHAN_BENCH_SPIN_US if set.
    LibchanNoSpin,
    Ipc,
    Remoc,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Net {
    Unix,
    Tcp,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Test {
    /// Small-message round trips; records every latency.
    Rtt(usize),
    /// One-way small messages.
    Tput(usize),
    /// One-way messages of `size` bytes, `count` of them.
    Bulk(usize, usize),
    /// Messages each carrying a freshly created channel.
    NewChan(usize),
    /// Messages each carrying one fd (raw: one fd per sendmsg).
    Fds(usize),
    /// Raw only: fds in batches of 64 per sendmsg.
    FdsBatched(usize),
}

impl Test {
    fn encode(&self) -> String {
        match *self {
            Test::Rtt(n) => format!("rtt:{n}"),
            Test::Tput(n) => format!("tput:{n}"),
            Test::Bulk(s, n) => format!("bulk:{s}:{n}"),
            Test::NewChan(n) => format!("newchan:{n}"),
            Test::Fds(n) => format!("fds:{n}"),
            Test::FdsBatched(n) => format!("fdsb:{n}"),
        }
    }
    fn decode(s: &str) -> Option<Test> {
        let p: Vec<&str> = s.split(':').collect();
        let n = |i: usize| p.get(i).and_then(|x| x.parse().ok());
        Some(match p[0] {
            "rtt" => Test::Rtt(n(1)?),
            "tput" => Test::Tput(n(1)?),
            "bulk" => Test::Bulk(n(1)?, n(2)?),
            "newchan" => Test::NewChan(n(1)?),
            "fds" => Test::Fds(n(1)?),
            "fdsb" => Test::FdsBatched(n(1)?),
            _ => return None,
        })
    }
    fn count(&self) -> usize {
        match *self {
            Test::Rtt(n)
            | Test::Tput(n)
            | Test::NewChan(n)
            | Test::Fds(n)
            | Test::FdsBatched(n) => n,
            Test::Bulk(_, n) => n,
        }
    }
}

/// Result of one measurement.
#[derive(Debug, Clone, Default)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    lat: Vec<Duration>,
}

fn cpu_time(who: i32) -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer, valid `who`.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn lib_name(l: Lib) -> &'static str {
    match l {
        Lib::Raw => "raw",
        Lib::RawSeqpacket => "raw-seqpacket",
        Lib::Libchan => "libchan",
        Lib::LibchanNoSpin => "libchan-nospin",
        Lib::Ipc => "ipc",
        Lib::Remoc => "remoc",
    }
}

fn parse_lib(s: &str) -> Option<Lib> {
    Some(match s {
        "raw" => Lib::Raw,
        "raw-seqpacket" => Lib::RawSeqpacket,
        "libchan" => Lib::Libchan,
        "libchan-nospin" => Lib::LibchanNoSpin,
        "ipc" => Lib::Ipc,
        "remoc" => Lib::Remoc,
        _ => return None,
    })
}

fn rt() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("runtime: {e}"),
    }
}

/// CHAN_BENCH_WORK_US: how long the raw and libchan rtt children compute
/// before each reply (a peer that answers after some work; default 0).
fn work_us() -> u64 {
    std::env::var("CHAN_BENCH_WORK_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Spins for `us` microseconds (the child's simulated work).
fn work(us: u64) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_micros(us) {
        std::hint::spin_loop();
    }
}

/// What the parent hands to the spawned child.
enum Link {
    Unix(StdUnix),
    Tcp(std::net::TcpStream),
    /// ipc-channel's one-shot server.
    Ipc(Box<ipc_channel::ipc::IpcOneShotServer<ipc_child::Boot>>),
}

struct ChildGuard(Child);
impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(lib: Lib, net: Net, test: Test) -> Res<(ChildGuard, Link)> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("child").arg(lib_name(lib)).arg(match net {
        Net::Unix => "unix",
        Net::Tcp => "tcp",
    });
    cmd.arg(test.encode());
    if lib == Lib::Ipc {
        let (server, name) = ipc_channel::ipc::IpcOneShotServer::<ipc_child::Boot>::new()?;
        cmd.arg(name);
        let child = cmd.spawn()?;
        return Ok((ChildGuard(child), Link::Ipc(Box::new(server))));
    }
    match net {
        Net::Unix => {
            let (mine, theirs) = if lib == Lib::RawSeqpacket {
                seqpacket_pair()?
            } else {
                StdUnix::pair()?
            };
            libchan::unix::pass_to_child(&mut cmd, theirs, FD_VAR);
            let child = cmd.spawn()?;
            drop(cmd);
            Ok((ChildGuard(child), Link::Unix(mine)))
        }
        Net::Tcp => {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            cmd.arg(l.local_addr()?.to_string());
            let child = cmd.spawn()?;
            let (s, _) = l.accept()?;
            s.set_nodelay(true)?;
            Ok((ChildGuard(child), Link::Tcp(s)))
        }
    }
}

/// A connected SOCK_SEQPACKET pair, used through std's stream type (its
/// `read`/`write` are plain syscalls that work on any connected socket).
fn seqpacket_pair() -> Res<(StdUnix, StdUnix)> {
    let mut fds = [0i32; 2];
    // SAFETY: socketpair writes two new descriptors into `fds`.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: both descriptors are new and owned by nobody else.
    Ok(unsafe { (StdUnix::from_raw_fd(fds[0]), StdUnix::from_raw_fd(fds[1])) })
}

/// Runs one measurement: spawns the child, runs the parent side, waits for
/// the child, and adds the child's CPU time.
fn measure(lib: Lib, net: Net, test: Test) -> Res<Sample> {
    let cpu0 = cpu_time(libc::RUSAGE_SELF);
    let ch0 = cpu_time(libc::RUSAGE_CHILDREN);
    let (mut child, link) = spawn(lib, net, test)?;
    let mut s = match lib {
        Lib::Raw | Lib::RawSeqpacket => raw::parent(link, test)?,
        Lib::Libchan => lc::parent(link, test, lc::builder(true))?,
        Lib::LibchanNoSpin => lc::parent(link, test, lc::builder(false))?,
        Lib::Ipc => ipc_child::parent(link, test)?,
        Lib::Remoc => rm::parent(link, test)?,
    };
    let status = child.0.wait()?;
    if !status.success() {
        return Err(format!("{lib:?} {net:?} {test:?}: child failed: {status}").into());
    }
    s.cpu = (cpu_time(libc::RUSAGE_SELF) - cpu0) + (cpu_time(libc::RUSAGE_CHILDREN) - ch0);
    Ok(s)
}

fn child_main(args: &[String]) -> Res<()> {
    let lib = parse_lib(&args[0]).ok_or("lib")?;
    let net = if args[1] == "unix" {
        Net::Unix
    } else {
        Net::Tcp
    };
    let test = Test::decode(&args[2]).ok_or("test")?;
    let link = if lib == Lib::Ipc {
        return ipc_child::child(&args[3], test);
    } else {
        match net {
            Net::Unix => {
                let raw: i32 = std::env::var(FD_VAR)?.parse()?;
                // SAFETY: the parent passed us this descriptor (see spawn).
                Link::Unix(unsafe { StdUnix::from_raw_fd(raw) })
            }
            Net::Tcp => {
                let s = std::net::TcpStream::connect(&args[3])?;
                s.set_nodelay(true)?;
                Link::Tcp(s)
            }
        }
    };
    match lib {
        Lib::Raw | Lib::RawSeqpacket => raw::child(link, test),
        Lib::Libchan => lc::child(link, test, lc::builder(true)),
        Lib::LibchanNoSpin => lc::child(link, test, lc::builder(false)),
        Lib::Remoc => rm::child(link, test),
        Lib::Ipc => Ok(()),
    }
}

mod raw {
    use super::*;

    fn stream(link: Link) -> Box<dyn RW> {
        match link {
            Link::Unix(s) => Box::new(s),
            Link::Tcp(s) => Box::new(s),
            Link::Ipc(_) => unreachable!(),
        }
    }
    pub trait RW: Read + Write + AsRawFd {}
    impl<T: Read + Write + AsRawFd> RW for T {}

    pub fn parent(link: Link, test: Test) -> Res<Sample> {
        let mut s = stream(link);
        let mut out = Sample::default();
        let mut b8 = [0u8; 8];
        let t0 = Instant::now();
        match test {
            Test::Rtt(n) => {
                out.lat.reserve(n);
                for i in 0..n as u64 {
                    let t = Instant::now();
                    s.write_all(&i.to_le_bytes())?;
                    s.read_exact(&mut b8)?;
                    out.lat.push(t.elapsed());
                }
            }
            Test::Bulk(size, n) => {
                let buf = vec![7u8; size];
                for _ in 0..n {
                    s.write_all(&buf)?;
                }
                s.read_exact(&mut b8[..1])?;
            }
            Test::Fds(n) | Test::FdsBatched(n) => {
                let batch = if matches!(test, Test::FdsBatched(_)) {
                    64
                } else {
                    1
                };
                let null = std::fs::File::open("/dev/null")?;
                let mut sent = 0;
                while sent < n {
                    let k = batch.min(n - sent);
                    let dups: Vec<OwnedFd> = (0..k)
                        .map(|_| null.try_clone().map(OwnedFd::from))
                        .collect::<Result<_, _>>()?;
                    send_fds(s.as_raw_fd(), &dups)?;
                    sent += k;
                }
                s.read_exact(&mut b8[..1])?;
            }
            _ => return Err("raw: unsupported test".into()),
        }
        out.wall = t0.elapsed();
        Ok(out)
    }

    pub fn child(link: Link, test: Test) -> Res<()> {
        let mut s = stream(link);
        let mut b8 = [0u8; 8];
        match test {
            Test::Rtt(n) => {
                let work_us = super::work_us();
                for _ in 0..n {
                    s.read_exact(&mut b8)?;
                    super::work(work_us);
                    s.write_all(&b8)?;
                }
            }
            Test::Bulk(size, n) => {
                let mut left = size * n;
                let mut buf = vec![0u8; 1 << 20];
                while left > 0 {
                    let k = s.read(&mut buf[..left.min(1 << 20)])?;
                    if k == 0 {
                        return Err("eof".into());
                    }
                    left -= k;
                }
                s.write_all(&[1])?;
            }
            Test::Fds(n) | Test::FdsBatched(n) => {
                let mut got = 0;
                while got < n {
                    got += recv_fds(s.as_raw_fd())?;
                }
                s.write_all(&[1])?;
            }
            _ => {}
        }
        Ok(())
    }

    fn send_fds(sock: i32, fds: &[OwnedFd]) -> Res<()> {
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let space = unsafe_cmsg_space(raw.len());
        let mut control = vec![0u64; space.div_ceil(8)];
        let iov = [IoSlice::new(&[0u8])];
        // SAFETY: plain C structs pointing at live local buffers.
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = space as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN((raw.len() * 4) as u32) as _;
            std::ptr::copy_nonoverlapping(raw.as_ptr(), libc::CMSG_DATA(c) as *mut i32, raw.len());
            if libc::sendmsg(sock, &msg, 0) < 0 {
                return Err(std::io::Error::last_os_error().into());
            }
        }
        Ok(())
    }

    fn recv_fds(sock: i32) -> Res<usize> {
        let space = unsafe_cmsg_space(253);
        let mut control = vec![0u64; space.div_ceil(8)];
        let mut b = [0u8; 1];
        let mut iov = [IoSliceMut::new(&mut b)];
        let mut n = 0;
        // SAFETY: plain C structs pointing at live local buffers; fds the
        // kernel installed are ours to close.
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = iov.as_mut_ptr() as *mut libc::iovec;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = space as _;
            if libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) <= 0 {
                return Err("recvmsg".into());
            }
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                let k = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                let data = libc::CMSG_DATA(c) as *const i32;
                for i in 0..k {
                    drop(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
                n += k;
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok(n)
    }

    fn unsafe_cmsg_space(n: usize) -> usize {
        // SAFETY: pure size computation.
        unsafe { libc::CMSG_SPACE((n * 4) as u32) as usize }
    }
}

mod lc {
    use super::*;
    use libchan::{Builder, Fd, Sender, Transport};

    #[derive(Serialize, Deserialize)]
    pub enum Msg {
        Ping(u64),
        Data(ByteBuf),
        Chan(Sender<u64>),
        Fd(Fd),
        Done,
    }

    fn transport(link: Link) -> Res<Transport> {
        Ok(match link {
            Link::Unix(s) => Transport::unix(libchan::unix::into_tokio(s)?),
            Link::Tcp(s) => {
                s.set_nonblocking(true)?;
                Transport::tcp(tokio::net::TcpStream::from_std(s)?)
            }
            Link::Ipc(_) => unreachable!(),
        })
    }

    /// The connection builder; `spin` false turns busy polling off, true
    /// keeps the default or sets CHAN_BENCH_SPIN_US.
    pub fn builder(spin: bool) -> Builder {
        if !spin {
            return Builder::new().busy_poll(Duration::ZERO);
        }
        match std::env::var("CHAN_BENCH_SPIN_US")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            Some(us) => Builder::new().busy_poll(Duration::from_micros(us)),
            None => Builder::new(),
        }
    }

    pub fn parent(link: Link, test: Test, b: Builder) -> Res<Sample> {
        rt().block_on(async move {
            let (conn, tx, mut rx) = b.client::<Msg, Msg>(transport(link)?)?;
            let mut out = Sample::default();
            let t0 = Instant::now();
            match test {
                Test::Rtt(n) => {
                    out.lat.reserve(n);
                    for i in 0..n as u64 {
                        let t = Instant::now();
                        tx.send(Msg::Ping(i)).await?;
                        rx.recv().await?.ok_or("eof")?;
                        out.lat.push(t.elapsed());
                    }
                }
                Test::Tput(n) => {
                    for i in 0..n as u64 {
                        tx.send(Msg::Ping(i)).await?;
                    }
                }
                Test::Bulk(size, n) => {
                    let buf = vec![7u8; size];
                    for _ in 0..n {
                        tx.send(Msg::Data(ByteBuf::from(buf.clone()))).await?;
                    }
                }
                Test::NewChan(n) => {
                    for _ in 0..n {
                        let (ctx, _crx) = libchan::channel::<u64>(1);
                        tx.send(Msg::Chan(ctx)).await?;
                    }
                }
                Test::Fds(n) => {
                    let null = std::fs::File::open("/dev/null")?;
                    for _ in 0..n {
                        tx.send(Msg::Fd(Fd::new(null.try_clone()?))).await?;
                    }
                }
                _ => return Err("libchan: unsupported test".into()),
            }
            if !matches!(test, Test::Rtt(_)) {
                tx.send(Msg::Done).await?;
                rx.recv().await?.ok_or("eof")?;
            }
            out.wall = t0.elapsed();
            report_spins("parent", &conn);
            drop(tx);
            conn.close().await;
            Ok(out)
        })
    }

    /// CHAN_BENCH_STATS=1: how busy polling fared, on stderr.
    fn report_spins(who: &str, conn: &libchan::Connection) {
        if std::env::var_os("CHAN_BENCH_STATS").is_some() {
            eprintln!("{who}: {:?}", conn.busy_poll_stats());
        }
    }

    pub fn child(link: Link, _test: Test, b: Builder) -> Res<()> {
        let work_us = work_us();
        rt().block_on(async move {
            let (conn, tx, mut rx) = b.server::<Msg, Msg>(transport(link)?)?;
            while let Ok(Some(m)) = rx.recv().await {
                match m {
                    Msg::Ping(i) => {
                        if matches!(_test, Test::Rtt(_)) {
                            work(work_us);
                            tx.send(Msg::Ping(i)).await?
                        }
                    }
                    Msg::Data(_) | Msg::Chan(_) => {}
                    Msg::Fd(f) => drop(f.into_owned()?),
                    Msg::Done => {
                        tx.send(Msg::Done).await?;
                        conn.flush().await?;
                    }
                }
            }
            report_spins("child", &conn);
            Ok(())
        })
    }
}

mod rm {
    use super::*;
    use remoc::rch::{base, mpsc};

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Msg {
        Ping(u64),
        Data(ByteBuf),
        Chan(mpsc::Sender<u64, Codec>),
        Done,
    }

    type Codec = remoc::codec::Postcard;

    fn cfg() -> remoc::Cfg {
        // remoc 0.20 flushes as soon as it has nothing more to send (0.18.3
        // waited 20 ms, and a zero flush_delay still rounds to the 1 ms
        // timer tick), so the defaults are fair.
        remoc::Cfg::default()
    }

    async fn connect(link: Link) -> Res<(base::Sender<Msg, Codec>, base::Receiver<Msg, Codec>)> {
        macro_rules! go {
            ($r:expr, $w:expr) => {{
                let (conn, tx, rx) =
                    remoc::Connect::io::<_, _, Msg, Msg, Codec>(cfg(), $r, $w).await?;
                tokio::spawn(conn);
                (tx, rx)
            }};
        }
        Ok(match link {
            Link::Unix(s) => {
                let (r, w) = libchan::unix::into_tokio(s)?.into_split();
                go!(r, w)
            }
            Link::Tcp(s) => {
                s.set_nonblocking(true)?;
                let (r, w) = tokio::net::TcpStream::from_std(s)?.into_split();
                go!(r, w)
            }
            Link::Ipc(_) => unreachable!(),
        })
    }

    pub fn parent(link: Link, test: Test) -> Res<Sample> {
        rt().block_on(async move {
            let (mut tx, mut rx) = connect(link).await?;
            let mut out = Sample::default();
            let t0 = Instant::now();
            match test {
                Test::Rtt(n) => {
                    out.lat.reserve(n);
                    for i in 0..n as u64 {
                        let t = Instant::now();
                        tx.send(Msg::Ping(i)).await?;
                        rx.recv().await?.ok_or("eof")?;
                        out.lat.push(t.elapsed());
                    }
                }
                Test::Tput(n) => {
                    for i in 0..n as u64 {
                        tx.send(Msg::Ping(i)).await?;
                    }
                }
                Test::Bulk(size, n) => {
                    let buf = vec![7u8; size];
                    for _ in 0..n {
                        tx.send(Msg::Data(ByteBuf::from(buf.clone()))).await?;
                    }
                }
                Test::NewChan(n) => {
                    for _ in 0..n {
                        let (ctx, _crx) = mpsc::channel::<u64, Codec>();
                        tx.send(Msg::Chan(ctx)).await?;
                    }
                }
                _ => return Err("remoc: unsupported test".into()),
            }
            if !matches!(test, Test::Rtt(_)) {
                tx.send(Msg::Done).await?;
                rx.recv().await?.ok_or("eof")?;
            }
            out.wall = t0.elapsed();
            Ok(out)
        })
    }

    pub fn child(link: Link, test: Test) -> Res<()> {
        rt().block_on(async move {
            let (mut tx, mut rx) = connect(link).await?;
            while let Ok(Some(m)) = rx.recv().await {
                match m {
                    Msg::Ping(i) => {
                        if matches!(test, Test::Rtt(_)) {
                            tx.send(Msg::Ping(i)).await?
                        }
                    }
                    Msg::Data(_) | Msg::Chan(_) => {}
                    Msg::Done => {
                        tx.send(Msg::Done).await?;
                        // Let the connection flush before exiting.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        return Ok(());
                    }
                }
            }
            Ok(())
        })
    }
}

mod ipc_child {
    use super::*;
    use ipc_channel::ipc::{self, IpcSender};

    #[derive(Serialize, Deserialize)]
    pub enum Msg {
        Ping(u64),
        Data(ByteBuf),
        Chan(IpcSender<u64>),
        Done,
    }

    /// The child's first message: where the parent sends to.
    #[derive(Serialize, Deserialize)]
    pub struct Boot {
        to_child: IpcSender<Msg>,
    }

    pub fn parent(link: Link, test: Test) -> Res<Sample> {
        let Link::Ipc(server) = link else {
            unreachable!()
        };
        let (from_child, boot) = server.accept()?;
        let tx = boot.to_child;
        let rx: ipc::IpcReceiver<Msg> = {
            // The boot channel doubles as the child's reply channel.
            let r: ipc::IpcReceiver<Boot> = from_child;
            // Retype the channel through its opaque form (no unsafe).
            r.to_opaque().to()
        };
        let mut out = Sample::default();
        let t0 = Instant::now();
        match test {
            Test::Rtt(n) => {
                out.lat.reserve(n);
                for i in 0..n as u64 {
                    let t = Instant::now();
                    tx.send(Msg::Ping(i))?;
                    rx.recv()?;
                    out.lat.push(t.elapsed());
                }
            }
            Test::Tput(n) => {
                for i in 0..n as u64 {
                    tx.send(Msg::Ping(i))?;
                }
            }
            Test::Bulk(size, n) => {
                let buf = vec![7u8; size];
                for _ in 0..n {
                    tx.send(Msg::Data(ByteBuf::from(buf.clone())))?;
                }
            }
            Test::NewChan(n) => {
                for _ in 0..n {
                    let (ctx, _crx) = ipc::channel::<u64>()?;
                    tx.send(Msg::Chan(ctx))?;
                }
            }
            _ => return Err("ipc: unsupported test".into()),
        }
        if !matches!(test, Test::Rtt(_)) {
            tx.send(Msg::Done)?;
            rx.recv()?;
        }
        out.wall = t0.elapsed();
        Ok(out)
    }

    pub fn child(name: &str, test: Test) -> Res<()> {
        let boot_tx: IpcSender<Boot> = IpcSender::connect(name.to_string())?;
        let (to_child, rx) = ipc::channel::<Msg>()?;
        boot_tx.send(Boot { to_child })?;
        let reply: IpcSender<Msg> = boot_tx.to_opaque().to();
        loop {
            // The parent hanging up ends the run (rtt sends no Done).
            let Ok(m) = rx.recv() else { return Ok(()) };
            match m {
                Msg::Ping(i) => {
                    if matches!(test, Test::Rtt(_)) {
                        reply.send(Msg::Ping(i))?
                    }
                }
                Msg::Data(_) | Msg::Chan(_) => {}
                Msg::Done => {
                    reply.send(Msg::Done)?;
                    return Ok(());
                }
            }
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn pct(lat: &mut [Duration], p: f64) -> f64 {
    lat.sort();
    let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
    lat[i].as_secs_f64() * 1e6
}

struct Row {
    name: String,
    /// Per round: the headline figure (µs or rate).
    vals: Vec<f64>,
    p99: Vec<f64>,
    cpu_per_msg_us: Vec<f64>,
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        return child_main(&args[1..]);
    }
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let only: Option<String> = args.get(1).cloned();
    let combos = |libs: &[Lib], nets: &[Net]| -> Vec<(Lib, Net)> {
        let mut v = Vec::new();
        for &n in nets {
            for &l in libs {
                if l == Lib::Ipc && n == Net::Tcp {
                    continue; // ipc-channel is local only
                }
                v.push((l, n));
            }
        }
        // CHAN_BENCH_LIBS=libchan,raw limits a run to those libraries
        // (for profiling one of them).
        if let Ok(keep) = std::env::var("CHAN_BENCH_LIBS") {
            v.retain(|(l, _)| keep.split(',').any(|k| k == lib_name(*l)));
        }
        v
    };
    let all = [
        Lib::Raw,
        Lib::Libchan,
        Lib::LibchanNoSpin,
        Lib::Ipc,
        Lib::Remoc,
    ];
    let libs3 = [Lib::Libchan, Lib::LibchanNoSpin, Lib::Ipc, Lib::Remoc];
    let both = [Net::Unix, Net::Tcp];
    type Section = (&'static str, Test, Vec<(Lib, Net)>);
    let sections: Vec<Section> = vec![
        (
            "rtt",
            Test::Rtt(20_000),
            [
                combos(&[Lib::Raw, Lib::RawSeqpacket], &[Net::Unix]),
                combos(&all[1..], &[Net::Unix]),
                combos(&all, &[Net::Tcp]),
            ]
            .concat(),
        ),
        ("tput", Test::Tput(200_000), combos(&libs3, &both)),
        ("bulk64k", Test::Bulk(64 << 10, 2048), combos(&all, &both)),
        ("bulk1m", Test::Bulk(1 << 20, 256), combos(&all, &both)),
        ("bulk16m", Test::Bulk(16 << 20, 16), combos(&all, &both)),
        ("newchan", Test::NewChan(20_000), combos(&libs3, &both)),
        (
            "fds",
            Test::Fds(50_000),
            combos(&[Lib::Raw, Lib::Libchan], &[Net::Unix]),
        ),
        (
            "fdsbatched",
            Test::FdsBatched(50_000),
            combos(&[Lib::Raw], &[Net::Unix]),
        ),
    ];
    for (title, test, combos) in sections {
        if only.as_deref().is_some_and(|o| o != title) {
            continue;
        }
        let mut rows: Vec<Row> = combos
            .iter()
            .map(|(l, n)| Row {
                name: format!(
                    "{} {}",
                    lib_name(*l),
                    if *n == Net::Unix { "unix" } else { "tcp" }
                ),
                vals: vec![],
                p99: vec![],
                cpu_per_msg_us: vec![],
            })
            .collect();
        for _ in 0..rounds {
            for (i, (l, n)) in combos.iter().enumerate() {
                let mut s = match measure(*l, *n, test) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("{title} {:?} {:?}: {e}", l, n);
                        continue;
                    }
                };
                let count = test.count() as f64;
                rows[i]
                    .cpu_per_msg_us
                    .push(s.cpu.as_secs_f64() * 1e6 / count);
                match test {
                    Test::Rtt(_) => {
                        rows[i].vals.push(pct(&mut s.lat, 0.5));
                        rows[i].p99.push(pct(&mut s.lat, 0.99));
                    }
                    Test::Bulk(size, n) => rows[i]
                        .vals
                        .push((size * n) as f64 / s.wall.as_secs_f64() / 1e9),
                    Test::NewChan(_) => rows[i].vals.push(s.wall.as_secs_f64() * 1e6 / count),
                    _ => rows[i].vals.push(count / s.wall.as_secs_f64()),
                }
            }
        }
        let unit = match test {
            Test::Rtt(_) => "p50 µs",
            Test::Bulk(..) => "GB/s",
            Test::NewChan(_) => "µs per channel",
            Test::Tput(_) => "msgs/s",
            _ => "fds/s",
        };
        println!("\n### {title}: {test:?}, {rounds} rounds\n");
        if matches!(test, Test::Rtt(_)) {
            println!("| library | p50 µs median | p50 µs min | p99 µs median | p99 µs min | CPU µs/msg median |");
            println!("|---|---|---|---|---|---|");
        } else {
            println!("| library | {unit} median | {unit} best | CPU µs/msg median |");
            println!("|---|---|---|---|");
        }
        for r in &mut rows {
            if r.vals.is_empty() {
                println!("| {} | failed | | |", r.name);
                continue;
            }
            let best = if matches!(test, Test::Rtt(_) | Test::NewChan(_)) {
                r.vals.iter().cloned().fold(f64::MAX, f64::min)
            } else {
                r.vals.iter().cloned().fold(0.0, f64::max)
            };
            let cpu = median(&mut r.cpu_per_msg_us.clone());
            let med = median(&mut r.vals.clone());
            let fmt = |x: f64| {
                if x >= 1000.0 {
                    format!("{:.0}", x)
                } else {
                    format!("{:.2}", x)
                }
            };
            if matches!(test, Test::Rtt(_)) {
                let p99min = r.p99.iter().cloned().fold(f64::MAX, f64::min);
                println!(
                    "| {} | {} | {} | {} | {} | {:.2} |",
                    r.name,
                    fmt(med),
                    fmt(best),
                    fmt(median(&mut r.p99.clone())),
                    fmt(p99min),
                    cpu
                );
            } else {
                println!("| {} | {} | {} | {:.2} |", r.name, fmt(med), fmt(best), cpu);
            }
        }
    }
    Ok(())
}
