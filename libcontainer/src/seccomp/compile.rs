//! Compiling `linux.seccomp` into a BPF program with libseccomp (parent side).

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

use super::SeccompError;

/// `SECCOMP_FILTER_FLAG_*` from linux/seccomp.h.
pub(crate) mod flag {
    pub const TSYNC: u32 = 1 << 0;
    pub const LOG: u32 = 1 << 1;
    pub const SPEC_ALLOW: u32 = 1 << 2;
    pub const NEW_LISTENER: u32 = 1 << 3;
    pub const TSYNC_ESRCH: u32 = 1 << 4;
    pub const WAIT_KILLABLE_RECV: u32 = 1 << 5;
}

/// The kernel's limit on the length of one filter (BPF_MAXINSNS).
const BPF_MAXINSNS: usize = 4096;

/// Where the notify fd goes (`linux.seccomp.listenerPath` and
/// `listenerMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompListener {
    /// The seccomp agent's unix socket, a host path.
    pub path: PathBuf,
    /// Opaque data passed to the agent with the fd.
    pub metadata: Option<String>,
}

/// A seccomp filter compiled to BPF: plain data, safe to carry across fork.
pub struct SeccompProgram {
    filter: Vec<libc::sock_filter>,
    flags: u32,
    listener: Option<SeccompListener>,
}

impl fmt::Debug for SeccompProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeccompProgram")
            .field("instructions", &self.filter.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("listener", &self.listener)
            .finish()
    }
}

impl SeccompProgram {
    /// Compiles `linux.seccomp` to BPF. Call it before fork.
    ///
    /// Syscall names unknown on this architecture are skipped (with a
    /// `tracing` debug line), as runc and crun do, so one profile serves
    /// several kernels and architectures. Rules whose action equals the
    /// default action are skipped too. When `flags` is absent,
    /// `SECCOMP_FILTER_FLAG_SPEC_ALLOW` is used if the kernel has it (runc's
    /// default); an empty list means no flags.
    ///
    /// ```
    /// use libcontainer::seccomp::SeccompProgram;
    /// let seccomp: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(r#"{
    ///     "defaultAction": "SCMP_ACT_ALLOW",
    ///     "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    /// }"#)?;
    /// let program = SeccompProgram::compile(&seccomp)?;
    /// assert!(program.instructions() > 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compile(spec: &LinuxSeccomp) -> Result<Self, SeccompError> {
        let default = scmp_action(
            spec.default_action(),
            spec.default_errno_ret(),
            "linux.seccomp.defaultAction",
        )?;
        if default == ScmpAction::Notify {
            return Err(SeccompError::invalid(
                "linux.seccomp.defaultAction",
                "SCMP_ACT_NOTIFY cannot be the default action",
            ));
        }
        let lib = |field: String| move |source| SeccompError::Libseccomp { field, source };
        let mut ctx =
            ScmpFilterContext::new(default).map_err(lib("linux.seccomp.defaultAction".into()))?;
        // We load the program ourselves; libseccomp must not touch no_new_privs.
        ctx.set_ctl_nnp(false)
            .map_err(lib("linux.seccomp".into()))?;

        for (i, arch) in spec.architectures().iter().flatten().enumerate() {
            let field = format!("linux.seccomp.architectures[{i}]");
            let scmp = scmp_arch(*arch);
            if scmp == ScmpArch::native() || scmp == ScmpArch::Native {
                continue; // a new context already holds the native arch
            }
            ctx.add_arch(scmp).map_err(lib(field))?;
        }

        let mut uses_notify = false;
        for (i, rule) in spec.syscalls().iter().flatten().enumerate() {
            let field = format!("linux.seccomp.syscalls[{i}]");
            let action = scmp_action(rule.action(), rule.errno_ret(), &format!("{field}.action"))?;
            let conditions = rule
                .args()
                .iter()
                .flatten()
                .enumerate()
                .map(|(j, arg)| condition(arg, &format!("{field}.args[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            let mut per_arg = [0usize; 6];
            for arg in rule.args().iter().flatten() {
                per_arg[arg.index()] += 1; // index checked by `condition`
            }
            let one_comparison_per_arg = per_arg.iter().all(|&n| n <= 1);
            if rule.names().is_empty() {
                return Err(SeccompError::invalid(
                    format!("{field}.names"),
                    "at least one syscall name is required",
                ));
            }
            if action == default {
                tracing::debug!(rule = i, "seccomp rule has the default action, skipped");
                continue;
            }
            uses_notify |= action == ScmpAction::Notify;
            for (k, name) in rule.names().iter().enumerate() {
                if name.is_empty() {
                    return Err(SeccompError::invalid(
                        format!("{field}.names[{k}]"),
                        "empty syscall name",
                    ));
                }
                let Ok(nr) = ScmpSyscall::from_name(name) else {
                    tracing::debug!(syscall = %name, "seccomp: syscall unknown on this architecture, skipped");
                    continue;
                };
                add_rule(&mut ctx, nr, action, &conditions, one_comparison_per_arg)
                    .map_err(lib(format!("{field}.names[{k}] ({name})")))?;
            }
        }

        let filter = export(&ctx)?;
        Self::assemble(spec, filter, uses_notify)
    }

    /// Builds the program around an exported `filter` (also used for cache
    /// hits): the listener, the flags and the length check.
    pub(super) fn assemble(
        spec: &LinuxSeccomp,
        filter: Vec<libc::sock_filter>,
        uses_notify: bool,
    ) -> Result<Self, SeccompError> {
        let listener = match (uses_notify, spec.listener_path()) {
            (false, _) => None,
            (true, None) => {
                return Err(SeccompError::invalid(
                    "linux.seccomp.listenerPath",
                    "required when a rule uses SCMP_ACT_NOTIFY",
                ))
            }
            (true, Some(path)) => Some(SeccompListener {
                path: path.clone(),
                metadata: spec.listener_metadata().clone(),
            }),
        };
        let flags = filter_flags(spec.flags().as_deref(), uses_notify);
        if filter.len() > BPF_MAXINSNS {
            return Err(SeccompError::invalid(
                "linux.seccomp",
                format!(
                    "the compiled filter has {} instructions, the kernel allows {BPF_MAXINSNS}",
                    filter.len()
                ),
            ));
        }
        Ok(SeccompProgram {
            filter,
            flags,
            listener,
        })
    }

    /// Number of BPF instructions.
    pub fn instructions(&self) -> usize {
        self.filter.len()
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits `load` passes to `seccomp(2)`.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The notify listener, when a rule uses `SCMP_ACT_NOTIFY`.
    pub fn listener(&self) -> Option<&SeccompListener> {
        self.listener.as_ref()
    }

    /// The BPF instructions.
    pub fn filter(&self) -> &[libc::sock_filter] {
        &self.filter
    }
}

/// Whether any rule uses `SCMP_ACT_NOTIFY` (the default action cannot).
pub(super) fn uses_notify(spec: &LinuxSeccomp) -> bool {
    spec.syscalls()
        .iter()
        .flatten()
        .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify)
}

/// libseccomp may add a rule on several arguments of one syscall only when
/// each argument is compared once; several comparisons of one argument are
/// taken as alternatives, one rule each (runc's semantics).
fn add_rule(
    ctx: &mut ScmpFilterContext,
    nr: ScmpSyscall,
    action: ScmpAction,
    conditions: &[ScmpArgCompare],
    one_comparison_per_arg: bool,
) -> Result<(), libseccomp::error::SeccompError> {
    if conditions.is_empty() {
        ctx.add_rule(action, nr)?;
        return Ok(());
    }
    if !one_comparison_per_arg {
        for c in conditions {
            ctx.add_rule_conditional(action, nr, std::slice::from_ref(c))?;
        }
    } else {
        ctx.add_rule_conditional(action, nr, conditions)?;
    }
    Ok(())
}

fn condition(arg: &LinuxSeccompArg, field: &str) -> Result<ScmpArgCompare, SeccompError> {
    if arg.index() > 5 {
        return Err(SeccompError::invalid(
            format!("{field}.index"),
            format!(
                "{} is out of range: syscalls have arguments 0 to 5",
                arg.index()
            ),
        ));
    }
    let index = arg.index() as u32;
    let (op, datum) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        // The spec: `value` is the mask, `valueTwo` the value compared with.
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(index, op, datum))
}

pub(crate) fn scmp_action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    field: &str,
) -> Result<ScmpAction, SeccompError> {
    let ret = |default: i32| -> Result<i32, SeccompError> {
        match errno_ret {
            None => Ok(default),
            Some(v) if v <= u32::from(u16::MAX) => Ok(v as i32),
            Some(v) => Err(SeccompError::invalid(
                field
                    .replace("action", "errnoRet")
                    .replace("defaultAction", "defaultErrnoRet"),
                format!("{v} does not fit the 16-bit seccomp return value"),
            )),
        }
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(ret(libc::EPERM)?),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret(libc::EPERM)? as u16),
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
    })
}

pub(crate) fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

fn filter_flags(requested: Option<&[LinuxSeccompFilterFlag]>, uses_notify: bool) -> u32 {
    let mut flags = match requested {
        None if kernel_supports_flag(flag::SPEC_ALLOW) => flag::SPEC_ALLOW,
        None => 0,
        Some(list) => list.iter().fold(0, |acc, f| acc | flag_bit(*f)),
    };
    if uses_notify {
        flags |= flag::NEW_LISTENER;
        // TSYNC with a listener needs TSYNC_ESRCH to tell the two errors apart.
        if flags & flag::TSYNC != 0 {
            flags |= flag::TSYNC_ESRCH;
        }
    } else if flags & flag::WAIT_KILLABLE_RECV != 0 {
        tracing::debug!("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV without SCMP_ACT_NOTIFY, dropped");
        flags &= !flag::WAIT_KILLABLE_RECV;
    }
    flags
}

pub(crate) fn flag_bit(f: LinuxSeccompFilterFlag) -> u32 {
    match f {
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => flag::LOG,
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => flag::TSYNC,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => flag::SPEC_ALLOW,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => flag::WAIT_KILLABLE_RECV,
    }
}

/// Whether the running kernel knows a filter flag: with a NULL program, the
/// kernel answers EFAULT after accepting the flags and EINVAL otherwise.
pub(crate) fn kernel_supports_flag(bit: u32) -> bool {
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    // WAIT_KILLABLE_RECV is only valid together with NEW_LISTENER.
    let bit = if bit == flag::WAIT_KILLABLE_RECV {
        bit | flag::NEW_LISTENER
    } else {
        bit
    };
    // SAFETY: a NULL program pointer is never dereferenced by a successful
    // call; the kernel validates flags first and then fails to copy the
    // program with EFAULT, installing nothing.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(bit),
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    rc < 0 && nix::errno::Errno::last() == nix::errno::Errno::EFAULT
}

/// Exports the program through a memfd (libseccomp 2.5 can only write to an
/// fd; a pipe could fill up and block).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    // SAFETY: memfd_create with a valid NUL-terminated name; on success we
    // own the returned fd.
    let raw = unsafe { libc::memfd_create(c"berth-seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(SeccompError::Export(std::io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) });
    ctx.export_bpf(&file)
        .map_err(|source| SeccompError::Libseccomp {
            field: "linux.seccomp".into(),
            source,
        })?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(SeccompError::Export)?;
    from_bytes(&bytes)
}

/// Decodes native-endian `struct sock_filter`s.
pub(super) fn from_bytes(bytes: &[u8]) -> Result<Vec<libc::sock_filter>, SeccompError> {
    const INSN: usize = std::mem::size_of::<libc::sock_filter>();
    if bytes.len() % INSN != 0 {
        return Err(SeccompError::Export(std::io::Error::other(format!(
            "{} bytes is not a whole number of BPF instructions",
            bytes.len()
        ))));
    }
    Ok(bytes
        .chunks_exact(INSN)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_default_to_spec_allow_when_supported() {
        let f = filter_flags(None, false);
        assert_eq!(f & !flag::SPEC_ALLOW, 0);
        assert_eq!(filter_flags(Some(&[]), false), 0);
    }

    #[test]
    fn notify_adds_listener_and_tsync_esrch() {
        let f = filter_flags(
            Some(&[LinuxSeccompFilterFlag::SeccompFilterFlagTsync]),
            true,
        );
        assert_eq!(f, flag::TSYNC | flag::NEW_LISTENER | flag::TSYNC_ESRCH);
        let f = filter_flags(
            Some(&[LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv]),
            false,
        );
        assert_eq!(f, 0);
    }
}
