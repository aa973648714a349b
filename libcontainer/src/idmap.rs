//! Idmapped bind mounts (`mounts[].uidMappings`/`gidMappings`, the `idmap`
//! and `ridmap` options), the way runc and crun make them.
//!
//! Before fork, the mappings are validated into an [`IdmapPlan`] (every
//! error names its field). Still in the runtime, [`prepare`] creates a user
//! namespace holding each distinct mapping (a short-lived child in a new
//! user namespace), clones the source with `open_tree(OPEN_TREE_CLONE)` and
//! idmaps the detached copy with `mount_setattr(MOUNT_ATTR_IDMAP)`. The
//! init inherits the fds and only `move_mount`s each tree onto its target
//! inside the rootfs. Doing the idmapping in the runtime matters: the
//! kernel wants CAP_SYS_ADMIN over the filesystem's own user namespace,
//! which an init in a user namespace of its own does not have.
//!
//! A mapping line reads like one of `linux.uidMappings` and is written to
//! the helper namespace as is (runc's semantics): a file owned by
//! `containerID + n` on disk is seen through the mount as owned by
//! `hostID + n`, and a file created through the mount as `hostID + n` is
//! stored as `containerID + n`. In a container with its own user namespace
//! the seen ID is then shown through that namespace's maps.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use oci_spec::runtime::{LinuxIdMapping, Mount};

use crate::mount_options::{MountOptions, Recursive};
use crate::plan::{InitPlan, MountKind, MountOp, PlanError};
use crate::syscall::{MountAttr, Syscall};

/// The most lines a uid_map/gid_map may hold (Linux 4.15+).
const MAX_LINES: usize = 340;

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
/// MOUNT_ATTR_IDMAP (Linux 5.12).
pub const MOUNT_ATTR_IDMAP: u64 = 0x10_0000;

/// How to idmap one bind mount, decided before fork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdmapPlan {
    /// Text for the helper namespace's `uid_map`.
    pub uid_map: Vec<u8>,
    /// Text for its `gid_map`.
    pub gid_map: Vec<u8>,
    /// `ridmap`: idmap every mount of an rbind tree, not only its top.
    pub recursive: bool,
    /// MOUNT_ATTR_* set and cleared together with MOUNT_ATTR_IDMAP (the
    /// mount's `ro`, `nosuid`, … options; no remount is needed).
    pub attr_set: u64,
    /// MOUNT_ATTR_* cleared.
    pub attr_clr: u64,
}

fn invalid(field: String, reason: impl Into<String>) -> PlanError {
    PlanError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Validate `maps` (the field `field`) into map-file text. The kernel's
/// rules: 1 to 340 lines, no empty or wrapping range, no overlap on
/// either side.
pub fn map_text(field: &str, maps: &[LinuxIdMapping]) -> Result<Vec<u8>, PlanError> {
    if maps.is_empty() {
        return Err(invalid(field.into(), "must not be empty"));
    }
    if maps.len() > MAX_LINES {
        return Err(invalid(
            field.into(),
            format!("has {} entries, the kernel allows {MAX_LINES}", maps.len()),
        ));
    }
    let mut text = String::new();
    for (j, m) in maps.iter().enumerate() {
        let entry = format!("{field}[{j}]");
        if m.size() == 0 {
            return Err(invalid(format!("{entry}.size"), "must not be 0"));
        }
        for (name, start) in [("containerID", m.container_id()), ("hostID", m.host_id())] {
            // The last ID of the range must stay below u32::MAX ((uid_t)-1).
            if u64::from(start) + u64::from(m.size()) > u64::from(u32::MAX) {
                return Err(invalid(
                    format!("{entry}.size"),
                    format!("{name} {start} + size {} overflows 32-bit IDs", m.size()),
                ));
            }
        }
        for (k, other) in maps[..j].iter().enumerate() {
            for (name, a, b) in [
                ("containerID", m.container_id(), other.container_id()),
                ("hostID", m.host_id(), other.host_id()),
            ] {
                if a < b.saturating_add(other.size()) && b < a.saturating_add(m.size()) {
                    return Err(invalid(
                        entry.clone(),
                        format!("its {name} range overlaps {field}[{k}]"),
                    ));
                }
            }
        }
        text.push_str(&format!(
            "{} {} {}\n",
            m.container_id(),
            m.host_id(),
            m.size()
        ));
    }
    Ok(text.into_bytes())
}

/// MS_* flags of a bind mount's options as mount_setattr attributes.
fn attrs(flags: libc::c_ulong) -> (u64, u64) {
    let mut set = 0;
    let mut clr = 0;
    for (ms, attr) in [
        (libc::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (libc::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (libc::MS_NODEV, MOUNT_ATTR_NODEV),
        (libc::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
        (libc::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
    ] {
        if flags & ms != 0 {
            set |= attr;
        }
    }
    // The atime mode is one value of a 3-bit field: clear the field to set it.
    for (ms, attr) in [
        (libc::MS_NOATIME, MOUNT_ATTR_NOATIME),
        (libc::MS_STRICTATIME, MOUNT_ATTR_STRICTATIME),
        (libc::MS_RELATIME, 0),
    ] {
        if flags & ms != 0 {
            set = (set & !MOUNT_ATTR_ATIME_MASK) | attr;
            clr |= MOUNT_ATTR_ATIME_MASK;
        }
    }
    (set, clr)
}

/// The idmapping of mount `field` (`mounts[i]`), if it asks for one.
/// `userns` holds `linux.uidMappings`/`gidMappings` when the container
/// gets a new user namespace: `idmap` without mappings of its own uses them.
pub fn plan(
    field: &str,
    m: &Mount,
    opts: &MountOptions,
    is_bind: bool,
    userns: Option<(&[LinuxIdMapping], &[LinuxIdMapping])>,
) -> Result<Option<IdmapPlan>, PlanError> {
    let (uids, gids) = match (m.uid_mappings(), m.gid_mappings()) {
        (None, None) if opts.idmap.is_none() => return Ok(None),
        (None, None) => userns.ok_or_else(|| {
            invalid(
                format!("{field}.options"),
                "idmap/ridmap without uidMappings and gidMappings needs a new user \
                 namespace with linux.uidMappings and linux.gidMappings",
            )
        })?,
        (Some(u), Some(g)) => (u.as_slice(), g.as_slice()),
        (Some(_), None) => {
            return Err(invalid(
                format!("{field}.gidMappings"),
                "missing (uidMappings needs gidMappings too)",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                format!("{field}.uidMappings"),
                "missing (gidMappings needs uidMappings too)",
            ))
        }
    };
    if !is_bind {
        let which = if m.uid_mappings().is_some() {
            "uidMappings"
        } else {
            "options"
        };
        return Err(invalid(
            format!("{field}.{which}"),
            "only bind mounts can be idmapped",
        ));
    }
    let (attr_set, attr_clr) = attrs(opts.flags);
    Ok(Some(IdmapPlan {
        uid_map: map_text(&format!("{field}.uidMappings"), uids)?,
        gid_map: map_text(&format!("{field}.gidMappings"), gids)?,
        recursive: opts.idmap == Some(Recursive::Yes),
        attr_set,
        attr_clr,
    }))
}

/// Preparing an idmapped mount in the runtime failed.
#[derive(Debug, thiserror::Error)]
#[error("{field}: idmapped mount of {source_path}: {step}: {error}{hint}")]
pub struct IdmapError {
    /// The mount, `mounts[i]`.
    pub field: String,
    /// Its source on the host.
    pub source_path: String,
    /// The step that failed.
    pub step: &'static str,
    /// Why.
    pub error: io::Error,
    /// A hint for the common cause.
    hint: &'static str,
}

/// The idmapped, detached mount trees of a plan, by mount index. The init
/// inherits the fds and moves each tree onto its target.
#[derive(Debug, Default)]
pub struct IdmappedTrees {
    trees: Vec<Option<OwnedFd>>,
    /// Trees whose mappings are the container's own: idmapped with the
    /// container's user namespace by [`IdmappedTrees::finish`] once it
    /// exists (the init shares these open trees, so it sees the result).
    deferred: Vec<usize>,
}

impl IdmappedTrees {
    /// The prepared tree of `plan.mounts[i]`.
    pub fn get(&self, i: usize) -> Option<BorrowedFd<'_>> {
        self.trees.get(i)?.as_ref().map(AsFd::as_fd)
    }

    /// Some trees wait for the container's user namespace.
    pub fn needs_container_userns(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Idmap the deferred trees with `userns`, the container's new user
    /// namespace (its maps written); before the init is told to go on.
    pub fn finish<S: Syscall>(
        &self,
        s: &S,
        plan: &InitPlan,
        userns: BorrowedFd<'_>,
    ) -> Result<(), IdmapError> {
        for &i in &self.deferred {
            if let (Some(m), Some(tree)) = (plan.mounts.get(i), self.get(i)) {
                set_idmap(s, i, m, tree, userns)?;
            }
        }
        Ok(())
    }
}

fn error(i: usize, m: &MountOp, step: &'static str, error: io::Error) -> IdmapError {
    let hint = if step == "mount_setattr" && error.raw_os_error() == Some(libc::EINVAL) {
        " (does the source's filesystem support idmapped mounts?)"
    } else {
        ""
    };
    IdmapError {
        field: format!("mounts[{i}]"),
        source_path: m.source.to_string_lossy().into_owned(),
        step,
        error,
        hint,
    }
}

fn is_rbind(m: &MountOp) -> bool {
    matches!(
        m.kind,
        MountKind::Bind {
            recursive: true,
            ..
        }
    )
}

/// mount_setattr(MOUNT_ATTR_IDMAP | options) on the tree of mount `i`.
fn set_idmap<S: Syscall>(
    s: &S,
    i: usize,
    m: &MountOp,
    tree: BorrowedFd<'_>,
    userns: BorrowedFd<'_>,
) -> Result<(), IdmapError> {
    let Some(idmap) = &m.idmap else {
        return Ok(());
    };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP | idmap.attr_set,
        attr_clr: idmap.attr_clr,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    s.mount_setattr(tree, idmap.recursive && is_rbind(m), &attr)
        .map_err(|e| error(i, m, "mount_setattr", e))
}

/// Make the idmapped trees of every idmapped mount of `plan`. One helper
/// user namespace per distinct mapping; the namespaces live on only as
/// long as the mounts that use them. `container_maps` are the uid_map and
/// gid_map texts of the container's new user namespace: a mount with
/// exactly those is only cloned here and idmapped later with that
/// namespace ([`IdmappedTrees::finish`]), sparing a helper.
pub fn prepare<S: Syscall>(
    s: &S,
    plan: &InitPlan,
    container_maps: Option<(&[u8], &[u8])>,
) -> Result<IdmappedTrees, IdmapError> {
    let mut out = IdmappedTrees::default();
    if plan.mounts.iter().all(|m| m.idmap.is_none()) {
        return Ok(out);
    }
    let mut namespaces: Vec<(&[u8], &[u8], OwnedFd)> = Vec::new();
    for (i, m) in plan.mounts.iter().enumerate() {
        let Some(idmap) = &m.idmap else {
            out.trees.push(None);
            continue;
        };
        let tree = s
            .open_tree(&m.source, is_rbind(m))
            .map_err(|e| error(i, m, "open_tree", e))?;
        let maps = (idmap.uid_map.as_slice(), idmap.gid_map.as_slice());
        if container_maps == Some(maps) {
            out.deferred.push(i);
            out.trees.push(Some(tree));
            continue;
        }
        let known = namespaces.iter().position(|(u, g, _)| (*u, *g) == maps);
        let userns = match known {
            Some(k) => &namespaces[k].2,
            None => {
                let fd = s
                    .new_userns(maps.0, maps.1)
                    .map_err(|e| error(i, m, "create its user namespace", e))?;
                namespaces.push((maps.0, maps.1, fd));
                &namespaces[namespaces.len() - 1].2
            }
        };
        set_idmap(s, i, m, tree.as_fd(), userns.as_fd())?;
        out.trees.push(Some(tree));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::recorder::Recorder;
    use oci_spec::runtime::{LinuxIdMappingBuilder, MountBuilder};

    fn idm(container: u32, host: u32, size: u32) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(container)
            .host_id(host)
            .size(size)
            .build()
            .unwrap()
    }

    fn err(maps: &[LinuxIdMapping]) -> String {
        map_text("mounts[2].uidMappings", maps)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn map_text_is_the_kernel_format() {
        let t = map_text("f", &[idm(0, 1000, 1), idm(1, 100000, 65536)]).unwrap();
        assert_eq!(t, b"0 1000 1\n1 100000 65536\n");
    }

    #[test]
    fn bad_maps_name_the_field() {
        assert!(err(&[]).contains("mounts[2].uidMappings: must not be empty"));
        let e = err(&[idm(0, 0, 1), idm(5, 5, 0)]);
        assert!(
            e.contains("mounts[2].uidMappings[1].size: must not be 0"),
            "{e}"
        );
        let e = err(&[idm(0, u32::MAX - 1, 2)]);
        assert!(
            e.contains("mounts[2].uidMappings[0].size") && e.contains("hostID"),
            "{e}"
        );
        let e = err(&[idm(u32::MAX, 0, 1)]);
        assert!(e.contains("containerID"), "{e}");
        let e = err(&[idm(0, 100, 10), idm(9, 200, 1)]);
        assert!(
            e.contains("uidMappings[1]: its containerID range overlaps"),
            "{e}"
        );
        let e = err(&[idm(0, 100, 10), idm(20, 105, 1)]);
        assert!(
            e.contains("its hostID range overlaps mounts[2].uidMappings[0]"),
            "{e}"
        );
        let many: Vec<_> = (0..341).map(|i| idm(i, i, 1)).collect();
        assert!(err(&many).contains("341 entries"));
    }

    #[test]
    fn plan_needs_both_maps_and_a_bind() {
        let opts = MountOptions::default();
        // The builder refuses this; a deserialized config.json need not.
        let mut only_uid = MountBuilder::default()
            .destination("/m")
            .uid_mappings(vec![idm(0, 1, 1)])
            .gid_mappings(vec![idm(0, 1, 1)])
            .build()
            .unwrap();
        only_uid.set_gid_mappings(None);
        let e = plan("mounts[0]", &only_uid, &opts, true, None).unwrap_err();
        assert!(
            e.to_string().contains("mounts[0].gidMappings: missing"),
            "{e}"
        );
        let both = MountBuilder::default()
            .destination("/m")
            .uid_mappings(vec![idm(0, 1, 1)])
            .gid_mappings(vec![idm(0, 1, 1)])
            .build()
            .unwrap();
        let e = plan("mounts[0]", &both, &opts, false, None).unwrap_err();
        assert!(e.to_string().contains("only bind mounts"), "{e}");
        let plain = MountBuilder::default().destination("/m").build().unwrap();
        assert_eq!(plan("mounts[0]", &plain, &opts, true, None).unwrap(), None);
        let idmap_opt = crate::mount_options::parse(&["idmap".into()]);
        let u = [idm(0, 1, 1)];
        let e = plan("mounts[4]", &plain, &idmap_opt, false, Some((&u, &u))).unwrap_err();
        assert!(
            e.to_string()
                .contains("mounts[4].options: only bind mounts can be idmapped"),
            "{e}"
        );
    }

    #[test]
    fn idmap_option_uses_the_container_maps() {
        let opts = crate::mount_options::parse(&["rbind".into(), "ridmap".into(), "ro".into()]);
        let plain = MountBuilder::default().destination("/m").build().unwrap();
        let e = plan("mounts[3]", &plain, &opts, true, None).unwrap_err();
        assert!(e.to_string().contains("mounts[3].options"), "{e}");
        let u = [idm(0, 100000, 65536)];
        let g = [idm(0, 200000, 65536)];
        let p = plan("mounts[3]", &plain, &opts, true, Some((&u, &g)))
            .unwrap()
            .unwrap();
        assert_eq!(p.uid_map, b"0 100000 65536\n");
        assert_eq!(p.gid_map, b"0 200000 65536\n");
        assert!(p.recursive);
        assert_eq!(p.attr_set, MOUNT_ATTR_RDONLY);
    }

    #[test]
    fn atime_options_replace_the_atime_field() {
        assert_eq!(
            attrs(libc::MS_NOATIME | libc::MS_NOSUID),
            (
                MOUNT_ATTR_NOATIME | MOUNT_ATTR_NOSUID,
                MOUNT_ATTR_ATIME_MASK
            )
        );
        assert_eq!(attrs(libc::MS_RELATIME), (0, MOUNT_ATTR_ATIME_MASK));
        assert_eq!(attrs(0), (0, 0));
    }

    #[test]
    fn prepare_shares_one_userns_per_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "mount"}]},
            "mounts": [
                {"destination": "/a", "source": "src", "options": ["rbind", "ridmap"],
                 "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                 "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]},
                {"destination": "/b", "source": "src", "options": ["bind"]},
                {"destination": "/c", "source": "src", "options": ["bind", "nosuid"],
                 "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                 "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}
            ]
        }))
        .unwrap();
        let ns = crate::namespaces::NamespacePlan::from_spec(&spec).unwrap();
        let p = InitPlan::build(&spec, dir.path(), &ns, String::new).unwrap();
        let rec = Recorder::default();
        let trees = prepare(&rec, &p, None).unwrap();
        assert!(!trees.needs_container_userns());
        assert!(trees.get(0).is_some() && trees.get(1).is_none() && trees.get(2).is_some());
        let calls = rec.calls.borrow();
        let src_c = format!(
            "{:?}",
            std::ffi::CString::new(src.to_str().unwrap()).unwrap()
        );
        assert_eq!(
            *calls,
            vec![
                format!("open_tree {src_c} recursive=true"),
                "userns uid_map=\"0 1000 1\\n\" gid_map=\"0 1000 1\\n\"".to_string(),
                format!("mount_setattr set={MOUNT_ATTR_IDMAP:#x} clr=0x0 recursive=true"),
                format!("open_tree {src_c} recursive=false"),
                format!(
                    "mount_setattr set={:#x} clr=0x0 recursive=false",
                    MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID
                ),
            ]
        );
    }

    #[test]
    fn container_maps_are_applied_after_clone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {
                "namespaces": [{"type": "mount"}, {"type": "user"}],
                "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]
            },
            "mounts": [
                {"destination": "/a", "source": ".", "options": ["rbind", "idmap", "ro"]},
                {"destination": "/b", "source": ".", "options": ["bind"],
                 "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                 "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}
            ]
        }))
        .unwrap();
        let ns = crate::namespaces::NamespacePlan::from_spec(&spec).unwrap();
        let p = InitPlan::build(&spec, dir.path(), &ns, String::new).unwrap();
        let maps = crate::namespaces::map_text(&ns.uid_map);
        let rec = Recorder::default();
        let trees = prepare(&rec, &p, Some((maps.as_bytes(), maps.as_bytes()))).unwrap();
        assert!(trees.needs_container_userns());
        {
            let calls = rec.calls.borrow();
            assert_eq!(calls.len(), 4, "{calls:?}");
            assert!(calls[0].ends_with("recursive=true"), "{calls:?}");
            assert!(calls[2].contains("gid_map=\"0 1000 1\\n\""), "{calls:?}");
        }
        let userns: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        trees.finish(&rec, &p, userns.as_fd()).unwrap();
        let calls = rec.calls.borrow();
        assert_eq!(
            calls[4],
            format!(
                "mount_setattr set={:#x} clr=0x0 recursive=false",
                MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY
            )
        );
        assert_eq!(calls.len(), 5);
    }
}
