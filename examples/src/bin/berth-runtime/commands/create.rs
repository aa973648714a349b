//! `create`: set up a container from a bundle; its process waits for `start`.

use std::path::PathBuf;

use libcontainer::cgroups::CgroupExtension;
use libcontainer::ContainerBuilder;

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
    /// Unix socket to send a terminal master to (terminals are not supported yet).
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

/// Build the builder both `create` and `run` use: the container's cgroups
/// come from linux.resources (made before clone, removed by `delete`).
pub fn builder(
    g: &Globals,
    bundle: &PathBuf,
    pid_file: Option<&PathBuf>,
    id: &str,
) -> ContainerBuilder {
    let mut b = ContainerBuilder::new(id, bundle)
        .root(&g.root)
        .create_extension(Box::new(CgroupExtension::default()));
    if let Some(p) = pid_file {
        b = b.pid_file(p);
    }
    b
}

/// Run `create`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    builder(g, &a.bundle, a.pid_file.as_ref(), &a.id).create()?;
    Ok(0)
}
