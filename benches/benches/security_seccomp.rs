//! Seccomp costs on the container start path: compiling a Docker-default-
//! like profile to BPF before fork (parse + compile, 1 and 3 arches, a cache
//! hit), and the child-side load as fork+load+exit against fork+exit.

use criterion::{criterion_group, criterion_main, Criterion};
use libcontainer::seccomp::SeccompProgram;
use oci_spec::runtime::LinuxSeccomp;

const PROFILE: &str =
    include_str!("../../libcontainer/tests/security_fixtures/docker-default.json");

fn native_only() -> LinuxSeccomp {
    let mut v: serde_json::Value = serde_json::from_str(PROFILE).expect("fixture");
    v["architectures"] = serde_json::json!(["SCMP_ARCH_X86_64"]);
    serde_json::from_value(v).expect("fixture")
}

/// Forks a child that optionally loads `program` (after no_new_privs) and
/// exits; waits for it.
fn fork_and_exit(program: Option<&SeccompProgram>) {
    // SAFETY: the child only makes syscalls and _exits.
    match unsafe { libc::fork() } {
        0 => {
            let code = match program {
                None => 0,
                Some(p) => {
                    // SAFETY: prctl with integer arguments.
                    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
                    i32::from(p.load().is_err())
                }
            };
            // SAFETY: leave the child without running destructors.
            unsafe { libc::_exit(code) }
        }
        pid if pid > 0 => {
            let mut status = 0;
            // SAFETY: reaping our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            assert_eq!(status, 0, "child failed to load the filter");
        }
        _ => panic!("fork failed"),
    }
}

fn bench(c: &mut Criterion) {
    let three_arch: LinuxSeccomp = serde_json::from_str(PROFILE).expect("fixture");
    let one_arch = native_only();
    eprintln!(
        "docker-default-like profile: {} BPF instructions for 3 arches, {} for x86_64",
        SeccompProgram::compile(&three_arch)
            .expect("compile")
            .instructions(),
        SeccompProgram::compile(&one_arch)
            .expect("compile")
            .instructions(),
    );
    let mut g = c.benchmark_group("seccomp_compile");
    g.bench_function("parse_and_compile_docker_default_3_arches", |b| {
        b.iter(|| {
            let spec: LinuxSeccomp = serde_json::from_str(PROFILE).expect("fixture");
            SeccompProgram::compile(&spec).expect("compile")
        })
    });
    g.bench_function("compile_docker_default_3_arches", |b| {
        b.iter(|| SeccompProgram::compile(&three_arch).expect("compile"))
    });
    g.bench_function("compile_docker_default_x86_64", |b| {
        b.iter(|| SeccompProgram::compile(&one_arch).expect("compile"))
    });
    let cache = std::env::temp_dir().join(format!("berth-bench-seccomp-{}", std::process::id()));
    SeccompProgram::compile_cached(&three_arch, &cache).expect("compile");
    g.bench_function("compile_cached_hit_docker_default_3_arches", |b| {
        b.iter(|| SeccompProgram::compile_cached(&three_arch, &cache).expect("compile"))
    });
    let _ = std::fs::remove_dir_all(&cache);
    g.finish();

    let program = SeccompProgram::compile(&three_arch).expect("compile");
    let mut g = c.benchmark_group("seccomp_load");
    g.bench_function("fork_exit", |b| b.iter(|| fork_and_exit(None)));
    g.bench_function("fork_load_docker_default_exit", |b| {
        b.iter(|| fork_and_exit(Some(&program)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
