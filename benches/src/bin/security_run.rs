//! `run` through the library with the security setup wired in, as
//! berth-runtime does: create (cgroups + ProcessSecurity: capabilities,
//! seccomp from the compile cache), start, wait, delete. Exits with the
//! container's status. Used by benches/scripts/security_run.sh against
//! `runc run` and `crun run` of the same bundle.
//!
//! Usage: security_run --root DIR --bundle DIR [--no-seccomp-cache] ID
//!        security_run --write-bundle DIR   (busybox /bin/true, the
//!        Docker-default-like seccomp fixture, a 256 MiB memory limit)

use std::path::PathBuf;
use std::process::ExitCode;

use libcontainer::cgroups::CgroupExtension;
use libcontainer::lsm::LsmHost;
use libcontainer::security::ProcessSecurity;
use libcontainer::ContainerBuilder;

const PROFILE: &str =
    include_str!("../../../libcontainer/tests/security_fixtures/docker-default.json");

fn write_bundle(dir: &str) -> Result<u8, Box<dyn std::error::Error>> {
    let mut spec = libcontainer::fixtures::default_spec();
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    linux.set_seccomp(Some(serde_json::from_str(PROFILE)?));
    linux.set_resources(Some(serde_json::from_value(serde_json::json!({
        "memory": {"limit": 256 * 1024 * 1024}
    }))?));
    libcontainer::fixtures::BusyboxBundle::new(dir)
        .spec(spec)
        .args(["/bin/true"])
        .write()?;
    Ok(0)
}

fn run() -> Result<u8, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut root, mut bundle, mut id, mut cache) = (None, None, None, true);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--root" => root = args.next().map(PathBuf::from),
            "--bundle" => bundle = args.next().map(PathBuf::from),
            "--no-seccomp-cache" => cache = false,
            "--write-bundle" => return write_bundle(&args.next().ok_or("--write-bundle DIR")?),
            _ => id = Some(a),
        }
    }
    let usage = "usage: security_run --root DIR --bundle DIR [--no-seccomp-cache] ID";
    let (root, bundle, id) = (root.ok_or(usage)?, bundle.ok_or(usage)?, id.ok_or(usage)?);
    let spec = libcontainer::builder::load_spec(&bundle.join("config.json"))?;
    let cache_dir = root.join("seccomp");
    let cache_dir = cache.then_some(cache_dir.as_path());
    let security = ProcessSecurity::from_spec(&spec, &bundle, &LsmHost::detect(), cache_dir)?;
    let mut container = ContainerBuilder::new(&id, &bundle)
        .root(&root)
        .spec(spec)
        .create_extension(Box::new(CgroupExtension::default()))
        .create_extension(security.create_extension())
        .init_extension(security.init_extension())
        .create()?;
    container.start()?;
    let code = container.wait()?;
    container.delete(false)?;
    Ok(u8::try_from(code).unwrap_or(1))
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("security_run: {e}");
            ExitCode::FAILURE
        }
    }
}
