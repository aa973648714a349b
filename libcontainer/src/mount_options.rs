//! The `options` of a config.json mount, parsed into mount(2) flags,
//! propagation changes and the filesystem's data string (runc's table).

/// Parsed mount options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// MS_* flags to set.
    pub flags: libc::c_ulong,
    /// MS_* flags the options explicitly clear (`rw`, `suid`, …), so a
    /// read-only bind remount knows what was asked.
    pub cleared: libc::c_ulong,
    /// Propagation changes applied after the mount, in order.
    pub propagation: Vec<libc::c_ulong>,
    /// Options passed to the filesystem (`mode=755`, `size=…`).
    pub data: Vec<String>,
    /// `bind` or `rbind` was given.
    pub bind: Option<Recursive>,
    /// `idmap` or `ridmap` was given (an idmapped bind mount).
    pub idmap: Option<Recursive>,
}

/// Whether a bind mount is recursive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recursive {
    /// `bind`.
    No,
    /// `rbind`.
    Yes,
}

/// Parse the options of one mount.
pub fn parse(options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    for opt in options {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "suid" => (0, libc::MS_NOSUID),
            "nosuid" => (libc::MS_NOSUID, 0),
            "dev" => (0, libc::MS_NODEV),
            "nodev" => (libc::MS_NODEV, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "noexec" => (libc::MS_NOEXEC, 0),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "bind" => {
                out.bind.get_or_insert(Recursive::No);
                continue;
            }
            "rbind" => {
                out.bind = Some(Recursive::Yes);
                continue;
            }
            "idmap" => {
                out.idmap.get_or_insert(Recursive::No);
                continue;
            }
            "ridmap" => {
                out.idmap = Some(Recursive::Yes);
                continue;
            }
            other => {
                if let Some(p) = propagation(other) {
                    out.propagation.push(p);
                } else if !other.is_empty() && !other.starts_with("x-") && other != "tmpcopyup" {
                    out.data.push(other.to_string());
                }
                continue;
            }
        };
        out.flags = (out.flags | set) & !clear;
        out.cleared = (out.cleared | clear) & !set;
    }
    out
}

/// The MS_* flags of a propagation name (`rslave`, `private`, …).
pub fn propagation(name: &str) -> Option<libc::c_ulong> {
    Some(match name {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_propagation() {
        let o = p(&[
            "nosuid",
            "noexec",
            "mode=755",
            "size=65536k",
            "rslave",
            "ro",
        ]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_RDONLY);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert_eq!(o.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
        assert_eq!(o.bind, None);
    }

    #[test]
    fn later_options_win() {
        let o = p(&["ro", "rw", "rbind", "bind"]);
        assert_eq!(o.flags & libc::MS_RDONLY, 0);
        assert_eq!(o.cleared, libc::MS_RDONLY);
        assert_eq!(
            o.bind,
            Some(Recursive::Yes),
            "rbind is not downgraded by a later bind"
        );
    }

    #[test]
    fn runtime_only_options_are_not_fs_data() {
        assert!(p(&["x-systemd.automount", "tmpcopyup"]).data.is_empty());
        let o = p(&["idmap", "rbind"]);
        assert!(o.data.is_empty(), "idmap is ours, not the filesystem's");
        assert_eq!(o.idmap, Some(Recursive::No));
        assert_eq!(p(&["ridmap", "idmap"]).idmap, Some(Recursive::Yes));
    }
}
