//! `start`: run the user process of a created container.

use libcontainer::Container;

use crate::Globals;

/// Start a created container.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
}

/// Run `start`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    Container::load(&g.root, &a.id)?.start()?;
    Ok(0)
}
