//! The per-container monitor: a small process (berthd re-executed as
//! `berthd shim …`) that creates and starts one container with
//! libcontainer, reports `ok PID` or `err MESSAGE` on a ready socket, waits
//! for the container and exits with its exit code. Its stdio pipes are the
//! container's, so the daemon reads the container's output from them.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use libcontainer::builder::load_spec;
use libcontainer::cgroups::CgroupExtension;
use libcontainer::lsm::LsmHost;
use libcontainer::security::ProcessSecurity;
use libcontainer::ContainerBuilder;

/// The argument that selects shim mode in the berthd binary.
pub const SHIM_ARG: &str = "shim";

/// The shim's arguments, in order after [`SHIM_ARG`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimArgs {
    /// libcontainer's state root.
    pub state_root: PathBuf,
    /// The container id.
    pub id: String,
    /// The bundle directory (config.json).
    pub bundle: PathBuf,
    /// The socket to report readiness on.
    pub ready: PathBuf,
}

impl ShimArgs {
    /// The command-line form (after [`SHIM_ARG`]).
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        vec![
            self.state_root.clone().into(),
            self.id.clone().into(),
            self.bundle.clone().into(),
            self.ready.clone().into(),
        ]
    }

    /// Parses what [`ShimArgs::to_args`] made.
    pub fn parse(args: &[std::ffi::OsString]) -> Option<ShimArgs> {
        match args {
            [state_root, id, bundle, ready] => Some(ShimArgs {
                state_root: state_root.into(),
                id: id.to_str()?.to_string(),
                bundle: bundle.into(),
                ready: ready.into(),
            }),
            _ => None,
        }
    }
}

fn create_and_start(a: &ShimArgs) -> anyhow::Result<libcontainer::Container> {
    let spec = load_spec(&a.bundle.join("config.json"))?;
    let security = ProcessSecurity::from_spec(
        &spec,
        &a.bundle,
        &LsmHost::detect(),
        Some(&a.state_root.join(".seccomp")),
    )?;
    let mut c = ContainerBuilder::new(a.id.clone(), &a.bundle)
        .root(&a.state_root)
        .spec(spec)
        .create_extension(Box::new(CgroupExtension::default()))
        .create_extension(security.create_extension())
        .init_extension(security.init_extension())
        .create()?;
    if let Err(e) = c.start() {
        let _ = c.delete(true);
        return Err(e.into());
    }
    Ok(c)
}

/// Runs the shim; returns the process exit code (the container's, or 127
/// when it could not start).
pub fn run(a: &ShimArgs) -> i32 {
    let Ok(mut report) = UnixStream::connect(&a.ready) else {
        return 125;
    };
    match create_and_start(a) {
        Ok(mut c) => {
            if writeln!(report, "ok {}", c.pid()).is_err() {
                let _ = c.kill(libc::SIGKILL);
            }
            drop(report);
            let code = c.wait().unwrap_or(255);
            let _ = c.delete(true);
            code
        }
        Err(e) => {
            let _ = writeln!(report, "err {}", one_line(&format!("{e:#}")));
            127
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// The shim's ready socket for a container: short, in the state root
/// (a unix socket path must fit in 108 bytes).
pub fn ready_socket(state_root: &Path, id: &str) -> PathBuf {
    let short: String = id.chars().take(16).collect();
    state_root.join(format!("{short}.ready"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = ShimArgs {
            state_root: "/run/berth".into(),
            id: "abc".into(),
            bundle: "/var/lib/berth/containers/abc".into(),
            ready: "/var/lib/berth/containers/abc/ready.sock".into(),
        };
        assert_eq!(ShimArgs::parse(&a.to_args()), Some(a));
        assert_eq!(ShimArgs::parse(&[]), None);
    }
}
