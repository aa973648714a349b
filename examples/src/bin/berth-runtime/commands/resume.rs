//! `resume`: thaw a paused container.

use crate::Globals;

/// Resume (thaw) a paused container.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
}

/// Run `resume`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    let (_, m) = super::pause::load(g, &a.id)?;
    if !m.is_frozen()? {
        anyhow::bail!("container {} is not paused", a.id);
    }
    m.thaw()?;
    Ok(0)
}
