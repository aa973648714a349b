//! Attach/detach latency of libnetwork's bridge driver against netavark
//! (nftables firewall driver), in the same run, each inside a fake host
//! network namespace made for the purpose.
//!
//! Run as root: `cargo bench -p benches --bench network_join`
//! Environment: NETAVARK (path to the netavark binary; the netavark side is
//! skipped when it is missing), ITER (samples per case, default 30),
//! BACKGROUND (sandboxes with 2 ports attached before the second round,
//! default 200).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libnetwork::{
    Controller, ControllerConfig, EndpointConfig, NetNs, NetworkConfig, PortMapping, Proto,
    SandboxConfig,
};

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct FakeHost {
    name: String,
    dir: tempfile::TempDir,
}

impl FakeHost {
    fn new(tag: &str) -> Self {
        let name = format!("bnbench{}-{tag}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ip netns add {name}");
        let _ = Command::new("ip")
            .args(["-n", &name, "link", "set", "lo", "up"])
            .status();
        FakeHost {
            name,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
    fn new_netns(&self, i: usize) -> PathBuf {
        let p = self.dir.path().join(format!("sb{i}"));
        NetNs::create(&p).expect("create sandbox netns");
        p
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.dir.path()) {
            for e in rd.flatten() {
                let _ = NetNs::remove_pinned(e.path());
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ports(base: u16, n: usize) -> Vec<PortMapping> {
    (0..n as u16)
        .map(|k| {
            PortMapping::new(
                if k % 2 == 0 { Proto::Tcp } else { Proto::Udp },
                base + k,
                80 + k,
            )
        })
        .collect()
}

#[derive(Default)]
struct Samples {
    attach: Vec<Duration>,
    detach: Vec<Duration>,
    // our leave returns before the veth is gone; this is how long the
    // background deletion took after it (not part of detach)
    background: Vec<Duration>,
}

fn pct(v: &[Duration], p: f64) -> f64 {
    let mut v: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn ours(iter: usize, background: usize) -> Vec<(String, Samples)> {
    let fh = FakeHost::new("ours");
    let state = fh.dir.path().join("state");
    let ctl: Arc<Controller> = Controller::new(
        ControllerConfig::new(&state)
            .host_netns(fh.path())
            .dns_upstreams(vec![]),
    )
    .await
    .expect("controller");
    ctl.create_network(
        NetworkConfig::builder("bench", "bridge")
            .subnet("10.90.0.0/16".parse().unwrap())
            .build(),
    )
    .await
    .expect("network");
    let mut out = Vec::new();
    let mut next = 0usize;
    let mut sandbox_create = Vec::new();
    let round = |label: String| (label, Samples::default());
    let measure = |ctl: Arc<Controller>, nports: usize, label: String, next: &mut usize| {
        let fh_paths: Vec<PathBuf> = (0..iter)
            .map(|_| {
                *next += 1;
                fh.new_netns(*next)
            })
            .collect();
        let mut r = round(label);
        async move {
            let mut creates = Vec::new();
            for (i, p) in fh_paths.into_iter().enumerate() {
                let t = Instant::now();
                let sb = ctl
                    .create_sandbox(SandboxConfig::new(format!("m{}", p.display())).netns_path(&p))
                    .await
                    .expect("sandbox");
                creates.push(t.elapsed());
                let cfg = EndpointConfig::builder(format!("m{i}")).build();
                let cfg = EndpointConfig {
                    ports: ports(30000 + 10 * i as u16, nports),
                    ..cfg
                };
                let t = Instant::now();
                let ep = ctl.attach("bench", &sb.id, cfg).await.expect("attach");
                r.1.attach.push(t.elapsed());
                let t = Instant::now();
                ctl.detach(&ep.id).await.expect("detach");
                r.1.detach.push(t.elapsed());
                // Let the veth deletion finish before the next attach, as
                // netavark's teardown does before returning: a deletion in
                // flight holds the kernel's rtnl lock and would be charged
                // to the next attach instead.
                let t = Instant::now();
                ctl.settle().await;
                r.1.background.push(t.elapsed());
                ctl.delete_sandbox(&sb.id).await.expect("delete sandbox");
            }
            ctl.settle().await;
            (r, creates)
        }
    };
    for nports in [0, 2] {
        let (r, c) = measure(
            ctl.clone(),
            nports,
            format!("{nports} ports, 0 existing"),
            &mut next,
        )
        .await;
        sandbox_create.extend(c);
        out.push(r);
    }
    let t = Instant::now();
    for i in 0..background {
        next += 1;
        let p = fh.new_netns(next);
        let sb = ctl
            .create_sandbox(SandboxConfig::new(format!("bg{i}")).netns_path(&p))
            .await
            .expect("sandbox");
        let cfg = EndpointConfig {
            ports: ports(10000 + 2 * i as u16, 2),
            ..EndpointConfig::builder(format!("bg{i}")).build()
        };
        ctl.attach("bench", &sb.id, cfg)
            .await
            .expect("attach background");
    }
    eprintln!(
        "ours: {background} background sandboxes attached in {:?}",
        t.elapsed()
    );
    for nports in [0, 2] {
        let (r, c) = measure(
            ctl.clone(),
            nports,
            format!("{nports} ports, {background} existing"),
            &mut next,
        )
        .await;
        sandbox_create.extend(c);
        out.push(r);
    }
    eprintln!(
        "ours: create_sandbox (netns given, lo up, resolver bound) p50 {:.2} ms",
        pct(&sandbox_create, 0.5)
    );
    drop(ctl);
    out
}

fn netavark_json(idx: usize, nports: usize, base_port: u16) -> String {
    let ip = format!("10.88.{}.{}", 1 + idx / 250, 2 + idx % 250);
    let pm: Vec<String> = (0..nports)
        .map(|k| {
            let proto = if k % 2 == 0 { "tcp" } else { "udp" };
            format!(
                r#"{{"host_ip":"","container_port":{},"host_port":{},"range":1,"protocol":"{proto}"}}"#,
                80 + k,
                base_port as usize + k
            )
        })
        .collect();
    format!(
        r#"{{"container_id":"{id:0>64}","container_name":"c{idx}","port_mappings":[{pm}],
"networks":{{"bench":{{"interface_name":"eth0","static_ips":["{ip}"]}}}},
"network_info":{{"bench":{{"name":"bench","id":"{nid:0>64}","driver":"bridge","network_interface":"nvbench0",
"subnets":[{{"subnet":"10.88.0.0/16","gateway":"10.88.0.1"}}],"ipv6_enabled":false,"internal":false,"dns_enabled":false}}}}}}"#,
        id = idx,
        nid = 1,
        pm = pm.join(",")
    )
}

fn run_netavark(
    bin: &Path,
    host: &NetNs,
    config: &Path,
    cmd: &str,
    netns: &Path,
    json: &str,
) -> Duration {
    let fd = host.raw_fd();
    let t = Instant::now();
    let mut c = Command::new(bin);
    c.args(["--firewall-driver", "nftables", "--config"])
        .arg(config)
        .args(["--rootless", "false", cmd])
        .arg(netns)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setns is async-signal-safe; the child enters the fake host's
    // namespace before exec, so netavark sees it as its host.
    unsafe {
        c.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = c.spawn().expect("spawn netavark");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(json.as_bytes())
            .expect("write netavark config");
    }
    let out = child.wait_with_output().expect("wait netavark");
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "netavark {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

fn netavark(bin: &Path, iter: usize, background: usize) -> Vec<(String, Samples)> {
    let fh = FakeHost::new("netavark");
    let host = NetNs::open(fh.path()).expect("open fake host");
    let config = fh.dir.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let mut out = Vec::new();
    let mut next = 0usize;
    let measure = |label: String, nports: usize, next: &mut usize| {
        let mut s = Samples::default();
        for i in 0..iter {
            *next += 1;
            let p = fh.new_netns(*next);
            let json = netavark_json(1000 + *next, nports, 30000 + 10 * i as u16);
            s.attach
                .push(run_netavark(bin, &host, &config, "setup", &p, &json));
            s.detach
                .push(run_netavark(bin, &host, &config, "teardown", &p, &json));
            let _ = NetNs::remove_pinned(&p);
        }
        (label, s)
    };
    for nports in [0, 2] {
        out.push(measure(
            format!("{nports} ports, 0 existing"),
            nports,
            &mut next,
        ));
    }
    let t = Instant::now();
    for i in 0..background {
        next += 1;
        let p = fh.new_netns(next);
        run_netavark(
            bin,
            &host,
            &config,
            "setup",
            &p,
            &netavark_json(i, 2, 10000 + 2 * i as u16),
        );
    }
    eprintln!(
        "netavark: {background} background containers set up in {:?}",
        t.elapsed()
    );
    for nports in [0, 2] {
        out.push(measure(
            format!("{nports} ports, {background} existing"),
            nports,
            &mut next,
        ));
    }
    out
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: the network benchmark needs root");
        return;
    }
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let iter = env_usize("ITER", 30);
    let background = env_usize("BACKGROUND", 200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ours = rt.block_on(ours(iter, background));
    let bin = PathBuf::from(std::env::var("NETAVARK").unwrap_or_else(|_| "netavark".into()));
    let theirs = if Command::new(&bin)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
    {
        Some(netavark(&bin, iter, background))
    } else {
        eprintln!(
            "netavark not found at {}: only our side is measured",
            bin.display()
        );
        None
    };
    println!("| case | berth attach p50 / p90 (ms) | netavark setup p50 / p90 (ms) | ratio p50 | berth detach p50 / p90 (ms) | netavark teardown p50 / p90 (ms) | ratio p50 | berth background veth deletion p50 (ms) |");
    println!("|---|---|---|---|---|---|---|---|");
    for (i, (label, s)) in ours.iter().enumerate() {
        let (na, nd) = match &theirs {
            Some(t) => (
                format!(
                    "{:.1} / {:.1}",
                    pct(&t[i].1.attach, 0.5),
                    pct(&t[i].1.attach, 0.9)
                ),
                format!(
                    "{:.1} / {:.1}",
                    pct(&t[i].1.detach, 0.5),
                    pct(&t[i].1.detach, 0.9)
                ),
            ),
            None => ("-".into(), "-".into()),
        };
        let (ra, rd) = match &theirs {
            Some(t) => (
                format!("{:.1}x", pct(&t[i].1.attach, 0.5) / pct(&s.attach, 0.5)),
                format!("{:.1}x", pct(&t[i].1.detach, 0.5) / pct(&s.detach, 0.5)),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {label} | {:.2} / {:.2} | {na} | {ra} | {:.2} / {:.2} | {nd} | {rd} | {:.1} |",
            pct(&s.attach, 0.5),
            pct(&s.attach, 0.9),
            pct(&s.detach, 0.5),
            pct(&s.detach, 0.9),
            pct(&s.background, 0.5)
        );
    }
}
