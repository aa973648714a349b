//! `delete`: remove a stopped (or, with --force, any) container.

use libcontainer::{Container, ContainerError};

use crate::Globals;

/// Delete a container.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kill it first if it still runs; no error if it does not exist.
    #[arg(long, short)]
    pub force: bool,
    /// The container id.
    pub id: String,
}

/// Run `delete`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    match Container::load(&g.root, &a.id) {
        Ok(c) => c.delete(a.force)?,
        Err(ContainerError::State(libcontainer::state::StateError::NotFound(_))) if a.force => {}
        Err(e) => return Err(e.into()),
    }
    Ok(0)
}
