//! `ps`: the processes of a container, as a `ps(1)` table or a JSON list
//! of pids.

use std::process::Command;

use crate::Globals;

/// Output format of `ps`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// `ps(1)` output filtered to the container's processes.
    Table,
    /// A JSON array of pids.
    Json,
}

/// List a container's processes.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, short, value_enum, default_value = "table")]
    pub format: Format,
    /// The container id.
    pub id: String,
    /// Options for ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// Keep the header and the lines whose PID column is one of `pids`.
pub fn filter_table(table: &str, pids: &[i32]) -> anyhow::Result<String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| anyhow::anyhow!("ps output has no PID column"))?;
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Run `ps`.
pub fn run(g: &Globals, a: Args) -> anyhow::Result<u8> {
    let (_, m) = super::pause::load(g, &a.id)?;
    let pids: Vec<i32> = m.pids()?.into_iter().map(|p| p.as_raw()).collect();
    match a.format {
        Format::Json => println!("{}", serde_json::to_string(&pids)?),
        Format::Table => {
            let args = if a.ps_args.is_empty() {
                vec!["-ef".to_string()]
            } else {
                a.ps_args
            };
            let out = Command::new("ps")
                .args(&args)
                .output()
                .map_err(|e| anyhow::anyhow!("running ps: {e}"))?;
            if !out.status.success() {
                anyhow::bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            print!(
                "{}",
                filter_table(&String::from_utf8_lossy(&out.stdout), &pids)?
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::filter_table;

    #[test]
    fn keeps_header_and_container_pids() {
        let t = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 init\nroot 42 1 0 10:01 ? 00:00:00 sleep 9\n";
        assert_eq!(
            filter_table(t, &[42]).unwrap(),
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:01 ? 00:00:00 sleep 9\n"
        );
        assert!(filter_table("USER COMMAND\n", &[1]).is_err());
    }
}
