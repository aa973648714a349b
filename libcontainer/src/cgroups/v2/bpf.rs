//! The handful of eBPF instructions and `bpf(2)` commands a device filter
//! needs, written out so we need neither libbpf nor an assembler crate.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::cgroups::error::{CgroupError, Result};

/// One eBPF instruction (`struct bpf_insn`), encoded little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// Destination register.
    pub dst: u8,
    /// Source register.
    pub src: u8,
    /// Jump offset or memory offset.
    pub off: i16,
    /// Immediate.
    pub imm: i32,
}

impl Insn {
    /// The kernel's 8-byte layout.
    pub fn encode(self) -> u64 {
        u64::from(self.code)
            | u64::from((self.dst & 0xf) | ((self.src & 0xf) << 4)) << 8
            | u64::from(self.off as u16) << 16
            | u64::from(self.imm as u32) << 32
    }
}

// Opcodes (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// Load the u32 at `off` of the context (r1) into `dst`.
pub fn ldx_w(dst: u8, off: i16) -> Insn {
    Insn {
        code: LDX_MEM_W,
        dst,
        src: 1,
        off,
        imm: 0,
    }
}
/// `dst &= imm` (32-bit).
pub fn and32(dst: u8, imm: i32) -> Insn {
    Insn {
        code: ALU32_AND_K,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}
/// `dst >>= imm` (32-bit).
pub fn rsh32(dst: u8, imm: i32) -> Insn {
    Insn {
        code: ALU32_RSH_K,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}
/// `dst = src` (32-bit).
pub fn mov32_reg(dst: u8, src: u8) -> Insn {
    Insn {
        code: ALU32_MOV_X,
        dst,
        src,
        off: 0,
        imm: 0,
    }
}
/// `dst = imm` (64-bit).
pub fn mov64_imm(dst: u8, imm: i32) -> Insn {
    Insn {
        code: ALU64_MOV_K,
        dst,
        src: 0,
        off: 0,
        imm,
    }
}
/// `if dst != imm goto +off`.
pub fn jne(dst: u8, imm: i32, off: i16) -> Insn {
    Insn {
        code: JNE_K,
        dst,
        src: 0,
        off,
        imm,
    }
}
/// `if dst == imm goto +off`.
pub fn jeq(dst: u8, imm: i32, off: i16) -> Insn {
    Insn {
        code: JEQ_K,
        dst,
        src: 0,
        off,
        imm,
    }
}
/// `return r0`.
pub fn exit() -> Insn {
    Insn {
        code: EXIT,
        dst: 0,
        src: 0,
        off: 0,
        imm: 0,
    }
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The `BPF_PROG_LOAD` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// The `BPF_PROG_ATTACH`/`DETACH` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The `BPF_PROG_QUERY` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

/// The `BPF_PROG_GET_FD_BY_ID` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> nix::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, initialised `repr(C)` prefix of
    // `union bpf_attr` for `cmd`, and we pass its exact size; pointers inside
    // it point to buffers that outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(nix::Error::last())
    } else {
        Ok(ret)
    }
}

/// Load a `BPF_PROG_TYPE_CGROUP_DEVICE` program; on a verifier error the
/// message includes the verifier log.
pub fn load_device_program(insns: &[Insn]) -> Result<OwnedFd> {
    let code: Vec<u64> = insns.iter().map(|i| i.encode()).collect();
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: code.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: BPF_PROG_LOAD returned a new file descriptor we own.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            Err(CgroupError::BpfLoad {
                source: e,
                log: text.trim().lines().last().unwrap_or_default().to_string(),
            })
        }
    }
}

/// Attach a device program to a cgroup directory (multi-attach, so it adds
/// to the programs of parent cgroups instead of replacing them).
pub fn attach_device_program(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map(drop)
        .map_err(|e| CgroupError::sys("attaching the eBPF device program", e))
}

/// File descriptors of the device programs attached directly to a cgroup.
pub fn attached_device_programs(cgroup: BorrowedFd<'_>) -> Result<Vec<OwnedFd>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)
        .map_err(|e| CgroupError::sys("querying eBPF device programs", e))?;
    ids.truncate(attr.prog_cnt as usize);
    let mut fds = Vec::with_capacity(ids.len());
    for id in ids {
        let mut a = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let fd = bpf(BPF_PROG_GET_FD_BY_ID, &mut a)
            .map_err(|e| CgroupError::sys("opening an attached eBPF program", e))?;
        // SAFETY: BPF_PROG_GET_FD_BY_ID returned a new descriptor we own.
        fds.push(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    }
    Ok(fds)
}

/// Detach one device program from a cgroup.
pub fn detach_device_program(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_DETACH, &mut attr)
        .map(drop)
        .map_err(|e| CgroupError::sys("detaching an eBPF device program", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_kernel_layout() {
        // r2 = *(u32 *)(r1 + 4)
        assert_eq!(ldx_w(2, 4).encode(), 0x0000_0000_0004_1261);
        // if r4 != 1 goto +3
        assert_eq!(jne(4, 1, 3).encode(), 0x0000_0001_0003_0455);
        // r0 = 1
        assert_eq!(mov64_imm(0, 1).encode(), 0x0000_0001_0000_00b7);
        assert_eq!(exit().encode(), 0x95);
        // r1 = r3 (32-bit)
        assert_eq!(mov32_reg(1, 3).encode(), 0x31bc);
        // negative offsets are two's complement
        assert_eq!(jeq(1, 0, -1).encode() >> 16 & 0xffff, 0xffff);
    }
}
