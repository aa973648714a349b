//! Root tests: a bad config.json gives a clear error naming the field and
//! leaves no state, process or mount behind.

mod core_common;

use core_common::{assert_no_children, assert_no_mounts_under, root_or_skip, Env};

fn check(env: &Env, id: &str, want: &[&str]) {
    let err = env.create(id).unwrap_err().to_string();
    for w in want {
        assert!(err.contains(w), "error {err:?} should mention {w:?}");
    }
    assert!(!env.state_dir(id).exists(), "no state left for {id}");
    assert_no_mounts_under(&env.rootfs());
    assert_no_children();
}

/// Edit config.json as raw JSON.
fn edit_json(env: &Env, f: impl FnOnce(&mut serde_json::Value)) {
    let path = env.bundle.config_path();
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn missing_fields() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new("true");
    edit_json(&env, |v| {
        v.as_object_mut().unwrap().remove("process");
    });
    check(&env, "noproc", &["process is missing"]);
    let env = Env::new("true");
    edit_json(&env, |v| {
        v.as_object_mut().unwrap().remove("root");
    });
    check(&env, "noroot", &["root is missing"]);
    let env = Env::new("true");
    edit_json(&env, |v| v["process"]["args"] = serde_json::json!([]));
    check(&env, "noargs", &["process.args"]);
    let env = Env::new("true");
    edit_json(&env, |v| {
        v["mounts"][0]
            .as_object_mut()
            .unwrap()
            .remove("destination")
            .map(drop)
            .unwrap_or(())
    });
    check(&env, "nodest", &["config.json", "destination"]);
}

#[test]
fn bad_paths() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new("true");
    edit_json(&env, |v| v["root"]["path"] = "no-such-rootfs".into());
    check(
        &env,
        "badroot",
        &["root.path", "no-such-rootfs", "No such file"],
    );
    let env = Env::new("true");
    edit_json(&env, |v| v["process"]["cwd"] = "relative/dir".into());
    check(&env, "badcwd", &["process.cwd"]);
    let env = Env::new("true");
    edit_json(&env, |v| v["process"]["cwd"] = "/no/such/dir".into());
    check(&env, "missingcwd", &["process.cwd", "No such file"]);
    let env = Env::new("true");
    edit_json(&env, |v| {
        v["process"]["args"] = serde_json::json!(["/no/such/binary"])
    });
    check(&env, "noexec", &["exec", "/no/such/binary"]);
    let env = Env::new("true");
    edit_json(&env, |v| {
        v["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/data", "type": "bind", "source": "/no/such/source", "options": ["rbind"]
        }))
    });
    check(&env, "badsrc", &["mounts[", "source", "/no/such/source"]);
}

#[test]
fn unknown_namespace_type_and_bad_values() {
    if !root_or_skip() {
        return;
    }
    let env = Env::new("true");
    edit_json(&env, |v| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "bogus"}))
    });
    check(&env, "badns", &["config.json", "bogus"]);
    let env = Env::new("true");
    edit_json(&env, |v| {
        v["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"destination": "/x", "type": "nosuchfs", "source": "none"}))
    });
    check(&env, "badfs", &["/x", "No such device"]);
    let env = Env::new("true");
    edit_json(&env, |v| {
        v["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "10"})
    });
    check(&env, "badsysctl", &["linux.sysctl[vm.swappiness]"]);
    let env = Env::new("true");
    edit_json(&env, |v| v["hostname"] = "h".into());
    edit_json(&env, |v| {
        let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "uts");
    });
    check(&env, "nouts", &["hostname", "UTS"]);
    let env = Env::new("true");
    std::fs::write(env.bundle.config_path(), "{ not json").unwrap();
    check(&env, "notjson", &["config.json"]);
}
