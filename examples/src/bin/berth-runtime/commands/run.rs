//! `run`: create, start, wait, delete; exit with the container's status.

use std::path::PathBuf;

use crate::Globals;

/// Create and run a container.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle directory (holding config.json).
    #[arg(long, short, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's pid to this file.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Do not wait: leave the container running.
    #[arg(long, short)]
    pub detach: bool,
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

/// Run `run`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    let mut c = super::create::builder(g, &a.bundle, a.pid_file.as_ref(), &a.id)?.create()?;
    if let Err(e) = c.start() {
        let _ = c.delete(true);
        return Err(e.into());
    }
    if a.detach {
        return Ok(0);
    }
    let code = c.wait()?;
    c.delete(true)?;
    Ok(u8::try_from(code).unwrap_or(255))
}
