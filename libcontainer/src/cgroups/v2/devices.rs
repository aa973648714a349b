//! v2 devices: the rules compiled into a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program and attached to the cgroup. The program returns 1 (allow) or 0
//! (deny) for a `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }`, where `access_type` is `access << 16 | type`. Rules are
//! tested last to first, so the last matching rule wins as on v1.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::cgroups::devices::{DeviceKind, DeviceRule, ACCESS_MKNOD, ACCESS_READ, ACCESS_WRITE};
use crate::cgroups::error::{CgroupError, Result};

use super::bpf::{self, and32, exit, jeq, jne, ldx_w, mov32_reg, mov64_imm, rsh32, Insn};

const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;
const ALL_ACCESS: u32 = ACCESS_READ | ACCESS_WRITE | ACCESS_MKNOD;

/// One rule's test; jumps to the end of the block when it does not match.
/// The flag says the rule matches every access (nothing after it can run).
fn rule_block(rule: &DeviceRule) -> (Vec<Insn>, bool) {
    // Conditions as (instructions before the jump, jump builder).
    let mut conds: Vec<Vec<Insn>> = Vec::new();
    match rule.kind {
        DeviceKind::All => {}
        DeviceKind::Block => conds.push(vec![jne(2, BPF_DEVCG_DEV_BLOCK, 0)]),
        DeviceKind::Char => conds.push(vec![jne(2, BPF_DEVCG_DEV_CHAR, 0)]),
    }
    if rule.access & ALL_ACCESS != ALL_ACCESS {
        if rule.allow {
            // Allow only if every requested bit is granted:
            // (req & !granted) == 0.
            conds.push(vec![
                mov32_reg(1, 3),
                and32(1, (!rule.access & ALL_ACCESS) as i32),
                jne(1, 0, 0),
            ]);
        } else {
            // Deny if any requested bit is denied: (req & denied) != 0.
            conds.push(vec![
                mov32_reg(1, 3),
                and32(1, rule.access as i32),
                jeq(1, 0, 0),
            ]);
        }
    }
    if let Some(m) = rule.major {
        conds.push(vec![jne(4, m as i32, 0)]);
    }
    if let Some(m) = rule.minor {
        conds.push(vec![jne(5, m as i32, 0)]);
    }
    let unconditional = conds.is_empty();
    let mut out: Vec<Insn> = conds.into_iter().flatten().collect();
    out.push(mov64_imm(0, i32::from(rule.allow)));
    out.push(exit());
    // Point every conditional jump at the end of the block.
    let len = out.len();
    for (i, insn) in out.iter_mut().enumerate() {
        if insn.code == 0x55 || insn.code == 0x15 {
            insn.off = (len - i - 1) as i16;
        }
    }
    (out, unconditional)
}

/// Compile the rules into a device program.
pub fn compile(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut prog = vec![
        ldx_w(2, 0),
        and32(2, 0xffff), // r2 = device type
        ldx_w(3, 0),
        rsh32(3, 16), // r3 = requested access
        ldx_w(4, 4),  // r4 = major
        ldx_w(5, 8),  // r5 = minor
    ];
    for rule in rules.iter().rev() {
        let (block, unconditional) = rule_block(rule);
        prog.extend(block);
        // The verifier rejects unreachable instructions: stop after a rule
        // that matches everything.
        if unconditional {
            return prog;
        }
    }
    // Nothing matched: deny.
    prog.push(mov64_imm(0, 0));
    prog.push(exit());
    prog
}

/// Load the rules as a program, attach it to `cgroup_dir` and drop the
/// programs attached there before (an `update` replaces the rules).
pub(crate) fn apply(cgroup_dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    tracing::debug!(dir = %cgroup_dir.display(), rules = rules.len(), "attaching device program");
    let dir: OwnedFd = std::fs::File::open(cgroup_dir)
        .map_err(|e| CgroupError::io("open", cgroup_dir, e))?
        .into();
    let old = bpf::attached_device_programs(dir.as_fd())?;
    let prog = bpf::load_device_program(&compile(rules))?;
    bpf::attach_device_program(dir.as_fd(), prog.as_fd())?;
    for p in old {
        bpf::detach_device_program(dir.as_fd(), p.as_fd())?;
    }
    Ok(())
}

/// Evaluate a compiled program for one access, as the kernel would: a tiny
/// interpreter for exactly the instructions [`compile`] emits, so the
/// compiler can be unit-tested without root.
pub fn evaluate(prog: &[Insn], dev_type: i32, access: u32, major: u32, minor: u32) -> Option<u64> {
    let mut r = [0u64; 11];
    let ctx = [(access << 16) | dev_type as u32, major, minor];
    let mut pc = 0usize;
    for _ in 0..10_000 {
        let i = *prog.get(pc)?;
        let (d, s) = (usize::from(i.dst), usize::from(i.src));
        let mut next = pc + 1;
        match i.code {
            0x61 => r[d] = u64::from(*ctx.get(i.off as usize / 4)?),
            0x54 => r[d] = (r[d] as u32 & i.imm as u32) as u64,
            0x74 => r[d] = ((r[d] as u32) >> i.imm) as u64,
            0xbc => r[d] = r[s] as u32 as u64,
            0xb7 => r[d] = i.imm as i64 as u64,
            0x55 if r[d] != i.imm as i64 as u64 => next = pc + 1 + i.off as usize,
            0x15 if r[d] == i.imm as i64 as u64 => next = pc + 1 + i.off as usize,
            0x55 | 0x15 => {}
            0x95 => return Some(r[0]),
            _ => return None,
        }
        pc = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::devices::container_rules;

    const CHAR: i32 = BPF_DEVCG_DEV_CHAR;
    const BLOCK: i32 = BPF_DEVCG_DEV_BLOCK;

    #[test]
    fn default_rules_allow_null_and_deny_disks() {
        let prog = compile(&container_rules(None, None).unwrap());
        let rw = ACCESS_READ | ACCESS_WRITE;
        assert_eq!(evaluate(&prog, CHAR, rw, 1, 3), Some(1), "/dev/null");
        assert_eq!(evaluate(&prog, CHAR, rw, 136, 4), Some(1), "/dev/pts/4");
        assert_eq!(
            evaluate(&prog, BLOCK, ACCESS_READ, 8, 0),
            Some(0),
            "/dev/sda"
        );
        assert_eq!(
            evaluate(&prog, BLOCK, ACCESS_MKNOD, 8, 0),
            Some(1),
            "mknod is allowed"
        );
        assert_eq!(evaluate(&prog, CHAR, rw, 10, 229), Some(0), "/dev/fuse");
    }

    #[test]
    fn last_rule_wins_and_access_is_checked() {
        use crate::cgroups::devices::DeviceKind::*;
        let rules = vec![
            DeviceRule::allow(All, None, None, "rwm"),
            DeviceRule {
                allow: false,
                kind: Char,
                major: Some(1),
                minor: Some(3),
                access: ACCESS_WRITE,
            },
            DeviceRule::allow(Char, Some(1), Some(5), "r"),
        ];
        let prog = compile(&rules);
        assert_eq!(
            evaluate(&prog, CHAR, ACCESS_READ, 1, 3),
            Some(1),
            "read of null"
        );
        assert_eq!(
            evaluate(&prog, CHAR, ACCESS_READ | ACCESS_WRITE, 1, 3),
            Some(0),
            "rw of null"
        );
        assert_eq!(
            evaluate(&prog, BLOCK, ACCESS_WRITE, 8, 1),
            Some(1),
            "anything else"
        );
        // The allow-r rule does not match rw, so the earlier allow-all decides.
        assert_eq!(
            evaluate(&prog, CHAR, ACCESS_WRITE | ACCESS_READ, 1, 5),
            Some(1)
        );
        let only_read = vec![DeviceRule::allow(Char, Some(1), Some(5), "r")];
        let prog = compile(&only_read);
        assert_eq!(evaluate(&prog, CHAR, ACCESS_READ, 1, 5), Some(1));
        assert_eq!(
            evaluate(&prog, CHAR, ACCESS_READ | ACCESS_WRITE, 1, 5),
            Some(0)
        );
    }

    #[test]
    fn empty_rules_deny_everything() {
        let prog = compile(&[]);
        assert_eq!(evaluate(&prog, CHAR, ACCESS_READ, 1, 3), Some(0));
    }
}
