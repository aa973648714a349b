//! cgroup v2 (unified hierarchy) controllers: one file per controller.

pub(crate) mod bpf;
pub(crate) mod cpu;
pub(crate) mod devices;
pub(crate) mod freeze;
pub(crate) mod io;
pub(crate) mod memory;
pub(crate) mod stats;
pub(crate) mod unified;
