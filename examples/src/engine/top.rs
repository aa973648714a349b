//! `docker top`: the host's `ps` (with the client's `ps_args`, `-ef` by
//! default, as Docker) filtered to the processes in the container's cgroup.

use std::path::Path;

use libswarm::models::ContainerTopResponse;
use libswarm::Error;

use super::stats;

/// The container's processes as `ps ARGS` shows them.
pub async fn top(
    state_dir: &Path,
    id: &str,
    ps_args: Option<&str>,
) -> Result<ContainerTopResponse, Error> {
    let pids = {
        let (dir, id) = (state_dir.to_path_buf(), id.to_string());
        tokio::task::spawn_blocking(move || -> Result<Vec<i32>, Error> {
            let cg = stats::cgroup(&dir, &id)
                .map_err(|_| Error::conflict(format!("Container {id} is not running")))?;
            let pids = cg
                .pids()
                .map_err(|e| Error::internal(format!("listing the processes of {id}: {e}")))?;
            Ok(pids.into_iter().map(|p| p.as_raw()).collect())
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??
    };
    let args: Vec<&str> = ps_args
        .filter(|a| !a.trim().is_empty())
        .unwrap_or("-ef")
        .split_whitespace()
        .collect();
    let out = tokio::process::Command::new("ps")
        .args(&args)
        .output()
        .await
        .map_err(|e| Error::internal(format!("running ps: {e}")))?;
    if !out.status.success() {
        return Err(Error::internal(format!(
            "ps: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
}

/// Keeps the `ps` lines whose PID column is one of `pids`. The last column
/// (the command) may hold spaces: it takes the rest of the line.
pub fn parse_ps(output: &str, pids: &[i32]) -> Result<ContainerTopResponse, Error> {
    let mut lines = output.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::bad_request("Couldn't find PID field in ps output"))?;
    let mut processes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let last = titles.len() - 1;
        let mut row: Vec<String> = fields[..last].iter().map(|f| f.to_string()).collect();
        row.push(fields[last..].join(" "));
        processes.push(row);
    }
    Ok(ContainerTopResponse {
        titles: Some(titles),
        processes: Some(processes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_output_is_filtered_by_pid() {
        let out = "UID  PID  PPID  C STIME TTY TIME CMD\n\
                   root 1    0     0 10:00 ?   00:00:01 /sbin/init\n\
                   root 4242 4200  0 10:01 ?   00:00:00 sleep 1000\n";
        let top = parse_ps(out, &[4242]).unwrap();
        let procs = top.processes.unwrap();
        assert_eq!(procs.len(), 1);
        assert_eq!(procs[0][1], "4242");
        assert_eq!(procs[0][7], "sleep 1000");
        assert_eq!(top.titles.unwrap().len(), 8);
        let e = parse_ps("USER COMMAND\n", &[1]).unwrap_err();
        assert!(e.message.contains("PID"), "{}", e.message);
    }
}
