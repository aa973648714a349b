//! Compiling seccomp profiles to BPF, and the errors for bad profiles. No
//! root needed.

mod security_common;

use libcontainer::seccomp::{validate_raw, SeccompError, SeccompProgram};
use security_common::{profile, DOCKER_DEFAULT};
use serde_json::json;

fn compile(v: serde_json::Value) -> Result<SeccompProgram, SeccompError> {
    SeccompProgram::compile(&profile(v))
}

fn err(v: serde_json::Value) -> String {
    compile(v).unwrap_err().to_string()
}

#[test]
fn docker_default_profile_compiles_to_bpf() {
    let spec: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(DOCKER_DEFAULT).unwrap();
    let names: usize = spec
        .syscalls()
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| s.names().len())
        .sum();
    assert!(names > 300, "fixture has {names} names");
    let program = SeccompProgram::compile(&spec).unwrap();
    // Three architectures, hundreds of syscalls: a long but legal program.
    assert!(
        (500..=4096).contains(&program.instructions()),
        "{} instructions",
        program.instructions()
    );
    assert!(program.listener().is_none());
    // No `flags` in the profile: SPEC_ALLOW when the kernel has it.
    assert_eq!(program.flags(), 1 << 2);
}

#[test]
fn more_architectures_make_a_longer_program() {
    let base = json!({"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]});
    let mut multi = base.clone();
    multi["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"]);
    let one = compile(base).unwrap().instructions();
    let three = compile(multi).unwrap().instructions();
    assert!(three > one, "{three} vs {one}");
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let with = compile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid", "no_such_syscall_at_all"], "action": "SCMP_ACT_ERRNO"}]}))
    .unwrap();
    let without = compile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]}))
    .unwrap();
    assert_eq!(with.instructions(), without.instructions());
}

#[test]
fn rules_with_the_default_action_are_skipped() {
    let plain = compile(json!({"defaultAction": "SCMP_ACT_ALLOW"})).unwrap();
    let same = compile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ALLOW"}]}))
    .unwrap();
    assert_eq!(plain.instructions(), same.instructions());
}

#[test]
fn every_action_and_operator_compiles() {
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_LOG",
    ] {
        compile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getppid"], "action": action, "errnoRet": 5}]}))
        .unwrap_or_else(|e| panic!("{action}: {e}"));
    }
    for op in [
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ] {
        compile(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 0xff, "valueTwo": 3, "op": op}]}]}))
        .unwrap_or_else(|e| panic!("{op}: {e}"));
    }
}

#[test]
fn flags_are_passed_through() {
    let p = compile(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"]}))
    .unwrap();
    assert_eq!(p.flags(), 1 | 2);
    let p = compile(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": []})).unwrap();
    assert_eq!(p.flags(), 0);
}

#[test]
fn notify_needs_a_listener_and_sets_new_listener() {
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}));
    assert_eq!(
        e,
        "linux.seccomp.listenerPath: required when a rule uses SCMP_ACT_NOTIFY"
    );
    let p = compile(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock", "listenerMetadata": "meta",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}))
    .unwrap();
    assert_eq!(p.flags(), (1 << 5) | (1 << 3));
    let l = p.listener().unwrap();
    assert_eq!(l.path, std::path::Path::new("/run/agent.sock"));
    assert_eq!(l.metadata.as_deref(), Some("meta"));
    let e = err(json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}));
    assert_eq!(
        e,
        "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"
    );
}

#[test]
fn bad_typed_input_names_the_field() {
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}));
    assert_eq!(
        e,
        "linux.seccomp.syscalls[1].args[0].index: 6 is out of range: syscalls have arguments 0 to 5"
    );
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}));
    assert!(
        e.starts_with("linux.seccomp.syscalls[0].errnoRet: 70000"),
        "{e}"
    );
    let e = err(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}));
    assert!(e.starts_with("linux.seccomp.defaultErrnoRet: 70000"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": [], "action": "SCMP_ACT_ERRNO"}]}));
    assert_eq!(
        e,
        "linux.seccomp.syscalls[0].names: at least one syscall name is required"
    );
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getpid", ""], "action": "SCMP_ACT_ERRNO"}]}));
    assert_eq!(e, "linux.seccomp.syscalls[0].names[1]: empty syscall name");
}

#[test]
fn raw_validation_names_unknown_actions_ops_arches_flags() {
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_EXPLODE"}),
            "linux.seccomp.defaultAction: unknown seccomp action \"SCMP_ACT_EXPLODE\"",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]}),
            "linux.seccomp.architectures[1]: unknown seccomp architecture \"SCMP_ARCH_Z80\"",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}),
            "linux.seccomp.flags[0]: unknown seccomp filter flag \"SECCOMP_FILTER_FLAG_FAST\"",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ROUGHLY"}]}]}),
            "linux.seccomp.syscalls[0].args[0].op: unknown seccomp operator \"SCMP_CMP_ROUGHLY\"",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]}),
            "linux.seccomp.syscalls[0].names: must be a non-empty list of syscall names",
        ),
        (
            json!({"syscalls": []}),
            "linux.seccomp.defaultAction: missing",
        ),
    ];
    for (seccomp, want) in cases {
        let config = json!({"ociVersion": "1.0.2", "linux": {"seccomp": seccomp.clone()}});
        // Typed parsing rejects these too, but without naming the field.
        assert!(serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(seccomp).is_err());
        assert_eq!(validate_raw(&config).unwrap_err().to_string(), want);
    }
    let fixture: serde_json::Value = serde_json::from_str(DOCKER_DEFAULT).unwrap();
    validate_raw(&json!({"linux": {"seccomp": fixture}})).unwrap();
    validate_raw(&json!({"process": {}})).unwrap();
}
