//! `pause`: freeze every process of a running container.

use libcontainer::cgroups::CgroupManager;
use libcontainer::{Container, Status};

use crate::Globals;

/// Pause (freeze) a container.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
}

/// A container and the cgroups its create recorded.
pub fn load(g: &Globals, id: &str) -> anyhow::Result<(Container, CgroupManager)> {
    let c = Container::load(&g.root, id)?;
    let m = CgroupManager::from_container(&c)?.ok_or_else(|| {
        anyhow::anyhow!("container {id} has no cgroups (it was created without them)")
    })?;
    Ok((c, m))
}

/// Run `pause`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    let (mut c, m) = load(g, &a.id)?;
    let status = c.status();
    if status != Status::Running {
        anyhow::bail!("container {} is {status}, not running", a.id);
    }
    m.freeze()?;
    Ok(0)
}
