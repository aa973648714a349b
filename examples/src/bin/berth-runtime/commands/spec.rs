//! `spec`: write a default config.json, like `runc spec`.

use std::path::PathBuf;

use crate::Globals;

/// Write a default config.json.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write config.json into.
    #[arg(long, short, default_value = ".")]
    pub bundle: PathBuf,
}

/// Run `spec`.
pub fn run(_g: &Globals, a: Args) -> anyhow::Result<u8> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        anyhow::bail!("File {} exists. Remove it first", path.display());
    }
    let mut spec = oci_spec::runtime::Spec::default();
    if let Some(root) = spec.root_mut() {
        root.set_path("rootfs".into());
        root.set_readonly(Some(true));
    }
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(true));
    }
    spec.set_hostname(Some("runc".into()));
    spec.save(&path)
        .map_err(|e| anyhow::anyhow!("write {}: {e}", path.display()))?;
    Ok(0)
}
