//! berth-cni: a CNI 1.1 plugin (ADD, DEL, CHECK, VERSION, STATUS, GC) over
//! libnetwork's bridge driver and IPAM.
//!
//! Install it in a CNI bin directory and reference it with
//! `"type": "berth-cni"`; the configuration is described in
//! `libnetwork::cni`. The runtime runs it in the host's network namespace,
//! with the network configuration on stdin and the CNI_* variables set.

use std::io::Read;

use libnetwork::cni::{answer_version, run, CniEnv};

fn main() {
    let env = CniEnv::from_process();
    let mut stdin = String::new();
    if env.command != "VERSION" {
        if let Err(e) = std::io::stdin().read_to_string(&mut stdin) {
            println!(
                "{}",
                serde_json::json!({ "cniVersion": "1.1.0", "code": 999, "msg": format!("read stdin: {e}") })
            );
            std::process::exit(1);
        }
    }
    let version = answer_version(&stdin);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!(
                "{}",
                serde_json::json!({ "cniVersion": version, "code": 999, "msg": format!("runtime: {e}") })
            );
            std::process::exit(1);
        }
    };
    match rt.block_on(run(&env, &stdin, None)) {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
        }
        Err(e) => {
            println!("{}", e.to_json(&version));
            std::process::exit(1);
        }
    }
}
