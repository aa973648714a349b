//! `list`: the containers under --root, as runc's table or JSON.

use clap::ValueEnum;
use libcontainer::Container;

use crate::Globals;

/// Output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// runc's table.
    Table,
    /// A JSON array.
    Json,
}

/// List containers.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    pub format: Format,
    /// Only ids.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Run `list`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    let mut states: Vec<_> = Container::list(&g.root)?
        .iter_mut()
        .map(|c| c.state())
        .collect();
    states.sort_by(|a, b| a.id.cmp(&b.id));
    if a.quiet {
        for s in &states {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    match a.format {
        Format::Json => {
            let list: Vec<_> = states
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "ociVersion": s.oci_version, "id": s.id, "pid": s.pid,
                        "status": s.status, "bundle": s.bundle, "rootfs": s.rootfs,
                        "created": s.created, "owner": s.owner,
                        "annotations": s.annotations,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string(&list)?);
        }
        Format::Table => {
            let rows: Vec<[String; 6]> = states
                .iter()
                .map(|s| {
                    let pid = if s.status == libcontainer::Status::Stopped {
                        0
                    } else {
                        s.pid
                    };
                    [
                        s.id.clone(),
                        pid.to_string(),
                        s.status.to_string(),
                        s.bundle.display().to_string(),
                        s.created.clone(),
                        if s.owner.is_empty() {
                            "root".into()
                        } else {
                            s.owner.clone()
                        },
                    ]
                })
                .collect();
            let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut width = [0usize; 6];
            for r in std::iter::once(&head).chain(&rows) {
                for (w, c) in width.iter_mut().zip(r) {
                    *w = (*w).max(c.len());
                }
            }
            for r in std::iter::once(&head).chain(&rows) {
                let line: Vec<String> = r
                    .iter()
                    .zip(width)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                println!("{}", line.join("   ").trim_end());
            }
        }
    }
    Ok(0)
}
