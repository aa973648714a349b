//! `state`: print the OCI state JSON.

use libcontainer::Container;

use crate::Globals;

/// Print a container's state.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
}

/// Run `state`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    let state = Container::load(&g.root, &a.id)?.state();
    println!("{}", serde_json::to_string_pretty(&state)?);
    Ok(0)
}
