//! `features`: print the OCI features document (runtime-spec features.md),
//! like `runc features`.

use crate::Globals;

/// Print what this runtime supports as JSON.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run `features`.
pub fn run(_g: &Globals, _a: Args) -> anyhow::Result<u8> {
    println!("{}", libcontainer::features::features_json()?);
    Ok(0)
}
