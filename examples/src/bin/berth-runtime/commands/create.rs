//! `create`: set up a container from a bundle; its process waits for `start`.

use std::path::{Path, PathBuf};

use libcontainer::builder::load_spec;
use libcontainer::cgroups::CgroupExtension;
use libcontainer::console::Console;
use libcontainer::lsm::LsmHost;
use libcontainer::security::ProcessSecurity;
use libcontainer::ContainerBuilder;

use crate::tty::MasterReceiver;
use crate::Globals;

/// Create a container.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle directory (holding config.json).
    #[arg(long, short, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's pid to this file.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the terminal's master to (process.terminal).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// The container id.
    pub id: String,
}

/// runc's refusal of a terminal nobody would receive.
pub const DETACHED_TTY: &str = "process.terminal: cannot allocate tty if runc will detach without setting console socket (--console-socket)";

/// Build the builder both `create` and `run` use: cgroups from
/// linux.resources (made before clone, removed by `delete`), and the
/// process security (capabilities, LSM labels, seccomp compiled before fork
/// and cached under `<root>/.seccomp`). A `foreground` run of a
/// process.terminal spec without a console socket gets a socket pair:
/// berth-runtime receives the master and proxies (`crate::tty`).
pub fn builder(
    g: &Globals,
    bundle: &Path,
    pid_file: Option<&PathBuf>,
    console_socket: Option<&PathBuf>,
    foreground: bool,
    id: &str,
) -> anyhow::Result<(ContainerBuilder, Option<MasterReceiver>)> {
    let spec = load_spec(&bundle.join("config.json"))?;
    let abs_bundle = bundle
        .canonicalize()
        .unwrap_or_else(|_| bundle.to_path_buf());
    let security = ProcessSecurity::from_spec(
        &spec,
        &abs_bundle,
        &LsmHost::detect(),
        Some(&g.root.join(".seccomp")),
    )?;
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    let console_size = spec
        .process()
        .as_ref()
        .and_then(|p| p.console_size())
        .map(|s| (s.height(), s.width()));
    let mut b = ContainerBuilder::new(id, bundle)
        .root(&g.root)
        .spec(spec)
        .create_extension(Box::new(CgroupExtension::default()))
        .create_extension(security.create_extension())
        .init_extension(security.init_extension());
    if let Some(p) = pid_file {
        b = b.pid_file(p);
    }
    let size = console_size.map(|(h, w)| {
        (
            u16::try_from(h).unwrap_or(u16::MAX),
            u16::try_from(w).unwrap_or(u16::MAX),
        )
    });
    let mut receiver = None;
    if terminal {
        let console = match console_socket {
            Some(sock) => Console::to_socket(sock)?,
            None if foreground => {
                let (console, ours) = crate::tty::console_pair(size)?;
                receiver = Some(ours);
                console
            }
            None => anyhow::bail!(DETACHED_TTY),
        };
        b = b.console(match size {
            Some((h, w)) if console_socket.is_some() => console.size(h, w),
            // The pair's console already has the caller's or the spec's size.
            _ => console,
        });
    }
    Ok((b, receiver))
}

/// Run `create`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    builder(
        g,
        &a.bundle,
        a.pid_file.as_ref(),
        a.console_socket.as_ref(),
        false,
        &a.id,
    )?
    .0
    .create()?;
    Ok(0)
}
