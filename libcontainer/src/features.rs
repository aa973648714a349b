//! The OCI features document (runtime-spec `features.md`): what this runtime
//! supports, as `runc features` prints it.
//!
//! # How the core uses this
//!
//! The `features` command prints [`features_json`]. Parts owned elsewhere
//! (mount options, namespaces, cgroup drivers) have defaults here that the
//! core can replace with [`FeaturesBuilder`]:
//!
//! ```
//! use libcontainer::features::FeaturesBuilder;
//! let json = FeaturesBuilder::new().mount_options(["bind", "ro"]).to_json()?;
//! assert!(json.contains("\"SCMP_ACT_NOTIFY\""));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::HashMap;

use libseccomp::{ScmpArch, ScmpFilterContext};
use oci_spec::runtime::{
    Apparmor, Arch, Cgroup, Features, LinuxFeature, LinuxNamespaceType, LinuxSeccompAction,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, Seccomp, Selinux,
};
use serde_json::Value;

use crate::capabilities::known_capability_names;
use crate::seccomp::compile::{flag_bit, kernel_supports_flag, scmp_arch};

/// Lowest runtime-spec version whose configs we accept.
pub const OCI_VERSION_MIN: &str = "1.0.0";

/// The lifecycle hooks of the runtime spec.
pub const HOOKS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// The mount options the core's mount code turns into mount flags,
/// propagation or bind mounts (`crate::mount_options`); a test keeps the
/// two in step.
pub const MOUNT_OPTIONS: [&str; 34] = [
    "async",
    "atime",
    "bind",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ridmap",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "unbindable",
];

const NAMESPACES: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::User,
    LinuxNamespaceType::Uts,
];

const ACTIONS: [LinuxSeccompAction; 9] = [
    LinuxSeccompAction::ScmpActAllow,
    LinuxSeccompAction::ScmpActErrno,
    LinuxSeccompAction::ScmpActKill,
    LinuxSeccompAction::ScmpActKillProcess,
    LinuxSeccompAction::ScmpActKillThread,
    LinuxSeccompAction::ScmpActLog,
    LinuxSeccompAction::ScmpActNotify,
    LinuxSeccompAction::ScmpActTrace,
    LinuxSeccompAction::ScmpActTrap,
];

const OPERATORS: [LinuxSeccompOperator; 7] = [
    LinuxSeccompOperator::ScmpCmpEq,
    LinuxSeccompOperator::ScmpCmpGe,
    LinuxSeccompOperator::ScmpCmpGt,
    LinuxSeccompOperator::ScmpCmpLe,
    LinuxSeccompOperator::ScmpCmpLt,
    LinuxSeccompOperator::ScmpCmpMaskedEq,
    LinuxSeccompOperator::ScmpCmpNe,
];

const FLAGS: [LinuxSeccompFilterFlag; 4] = [
    LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
    LinuxSeccompFilterFlag::SeccompFilterFlagLog,
    LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
    LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
];

const ARCHES: [Arch; 23] = [
    Arch::ScmpArchX86,
    Arch::ScmpArchX86_64,
    Arch::ScmpArchX32,
    Arch::ScmpArchArm,
    Arch::ScmpArchAarch64,
    Arch::ScmpArchMips,
    Arch::ScmpArchMips64,
    Arch::ScmpArchMips64n32,
    Arch::ScmpArchMipsel,
    Arch::ScmpArchMipsel64,
    Arch::ScmpArchMipsel64n32,
    Arch::ScmpArchPpc,
    Arch::ScmpArchPpc64,
    Arch::ScmpArchPpc64le,
    Arch::ScmpArchS390,
    Arch::ScmpArchS390x,
    Arch::ScmpArchParisc,
    Arch::ScmpArchParisc64,
    Arch::ScmpArchRiscv64,
    Arch::ScmpArchLoongarch64,
    Arch::ScmpArchM68k,
    Arch::ScmpArchSh,
    Arch::ScmpArchSheb,
];

/// Builds the features document; defaults describe berth on this host.
#[derive(Debug, Clone)]
pub struct FeaturesBuilder {
    mount_options: Vec<String>,
    namespaces: Vec<LinuxNamespaceType>,
    cgroup: Cgroup,
    annotations: HashMap<String, String>,
}

impl Default for FeaturesBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl FeaturesBuilder {
    /// The defaults: every spec hook, [`MOUNT_OPTIONS`], all eight namespace
    /// types, cgroup v1 and v2 without systemd.
    pub fn new() -> Self {
        let mut cgroup = Cgroup::default();
        cgroup.set_v1(Some(true));
        cgroup.set_v2(Some(true));
        cgroup.set_systemd(Some(false));
        cgroup.set_systemd_user(Some(false));
        cgroup.set_rdma(Some(false));
        let mut annotations = HashMap::new();
        annotations.insert(
            "io.berth.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        );
        if let Ok(v) = libseccomp::ScmpVersion::current() {
            annotations.insert(
                "io.berth.libseccomp.version".to_string(),
                format!("{}.{}.{}", v.major, v.minor, v.micro),
            );
        }
        FeaturesBuilder {
            mount_options: MOUNT_OPTIONS.iter().map(|s| s.to_string()).collect(),
            namespaces: NAMESPACES.to_vec(),
            cgroup,
            annotations,
        }
    }

    /// Replaces the list of supported mount options.
    pub fn mount_options<I: IntoIterator<Item = S>, S: Into<String>>(mut self, opts: I) -> Self {
        self.mount_options = opts.into_iter().map(Into::into).collect();
        self
    }

    /// Replaces the list of supported namespace types.
    pub fn namespaces(mut self, ns: impl IntoIterator<Item = LinuxNamespaceType>) -> Self {
        self.namespaces = ns.into_iter().collect();
        self
    }

    /// Replaces the cgroup section.
    pub fn cgroup(mut self, cgroup: Cgroup) -> Self {
        self.cgroup = cgroup;
        self
    }

    /// Builds the typed document.
    pub fn build(self) -> Features {
        let mut seccomp = Seccomp::default();
        seccomp.set_enabled(Some(true));
        seccomp.set_actions(Some(ACTIONS.to_vec()));
        seccomp.set_operators(Some(OPERATORS.iter().map(|o| o.to_string()).collect()));
        seccomp.set_archs(Some(supported_arches()));
        seccomp.set_known_flags(Some(FLAGS.iter().map(|f| f.to_string()).collect()));
        seccomp.set_supported_flags(Some(
            FLAGS
                .iter()
                .filter(|f| kernel_supports_flag(flag_bit(**f)))
                .map(|f| f.to_string())
                .collect(),
        ));
        let mut apparmor = Apparmor::default();
        apparmor.set_enabled(Some(true));
        let mut selinux = Selinux::default();
        selinux.set_enabled(Some(true));

        let mut linux = LinuxFeature::default();
        linux.set_namespaces(Some(self.namespaces));
        linux.set_capabilities(Some(known_capability_names()));
        linux.set_cgroup(Some(self.cgroup));
        linux.set_seccomp(Some(seccomp));
        linux.set_apparmor(Some(apparmor));
        linux.set_selinux(Some(selinux));
        // Idmapped bind mounts (`crate::idmap`).
        let mut idmap = oci_spec::runtime::IDMap::default();
        idmap.set_enabled(Some(true));
        let mut mount_ext = oci_spec::runtime::MountExtensions::default();
        mount_ext.set_idmap(Some(idmap));
        linux.set_mount_extensions(Some(mount_ext));

        let mut f = Features::default();
        f.set_oci_version_min(OCI_VERSION_MIN.to_string());
        f.set_oci_version_max(oci_spec::runtime::VERSION.to_string());
        f.set_hooks(Some(HOOKS.iter().map(|s| s.to_string()).collect()));
        f.set_mount_options(Some(self.mount_options));
        f.set_linux(Some(linux));
        f.set_annotations(Some(self.annotations));
        f
    }

    /// The document as pretty JSON, without `null` members.
    pub fn to_json(self) -> Result<String, serde_json::Error> {
        let mut value = serde_json::to_value(self.build())?;
        strip_nulls(&mut value);
        serde_json::to_string_pretty(&value)
    }
}

/// The default features document as pretty JSON.
pub fn features_json() -> Result<String, serde_json::Error> {
    FeaturesBuilder::new().to_json()
}

/// Architectures this libseccomp can add to a filter.
fn supported_arches() -> Vec<Arch> {
    let Ok(mut ctx) = ScmpFilterContext::new(libseccomp::ScmpAction::Allow) else {
        return Vec::new();
    };
    ARCHES
        .iter()
        .copied()
        .filter(|a| {
            let s = scmp_arch(*a);
            s == ScmpArch::native() || ctx.add_arch(s).is_ok()
        })
        .collect()
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, x| !x.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        serde_json::from_str(&features_json().unwrap()).unwrap()
    }

    #[test]
    fn document_has_the_spec_sections() {
        let d = doc();
        assert_eq!(d["ociVersionMin"], "1.0.0");
        assert!(d["ociVersionMax"].as_str().unwrap().starts_with("1."));
        assert_eq!(d["hooks"].as_array().unwrap().len(), 6);
        assert!(d["mountOptions"]
            .as_array()
            .unwrap()
            .contains(&"rbind".into()));
        let ns = d["linux"]["namespaces"].as_array().unwrap();
        for n in [
            "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
        ] {
            assert!(ns.contains(&n.into()), "{n} missing from {ns:?}");
        }
        assert!(d["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&"CAP_SYS_ADMIN".into()));
        assert_eq!(d["linux"]["apparmor"]["enabled"], true);
        assert_eq!(d["linux"]["selinux"]["enabled"], true);
        assert_eq!(d["linux"]["cgroup"]["v1"], true);
        assert!(d.to_string().find("null").is_none(), "nulls stripped");
    }

    #[test]
    fn seccomp_section_lists_actions_operators_arches_flags() {
        let d = doc();
        let s = &d["linux"]["seccomp"];
        assert_eq!(s["enabled"], true);
        assert_eq!(s["actions"].as_array().unwrap().len(), 9);
        assert!(s["actions"]
            .as_array()
            .unwrap()
            .contains(&"SCMP_ACT_NOTIFY".into()));
        assert!(s["operators"]
            .as_array()
            .unwrap()
            .contains(&"SCMP_CMP_MASKED_EQ".into()));
        let archs = s["archs"].as_array().unwrap();
        assert!(archs.contains(&"SCMP_ARCH_X86_64".into()));
        assert!(archs.contains(&"SCMP_ARCH_AARCH64".into()));
        assert_eq!(s["knownFlags"].as_array().unwrap().len(), 4);
        // Linux 4.17+ has SPEC_ALLOW; this machine runs a far newer kernel.
        let supported = s["supportedFlags"].as_array().unwrap();
        assert!(supported.contains(&"SECCOMP_FILTER_FLAG_SPEC_ALLOW".into()));
        // Linux 5.19+, probed together with NEW_LISTENER.
        assert!(supported.contains(&"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV".into()));
    }

    #[test]
    fn idmap_mounts_are_announced() {
        assert_eq!(doc()["linux"]["mountExtensions"]["idmap"]["enabled"], true);
    }

    #[test]
    fn mount_options_are_the_ones_the_core_understands() {
        for opt in MOUNT_OPTIONS {
            let parsed = crate::mount_options::parse(&[opt.to_string()]);
            assert!(
                parsed.data.is_empty(),
                "{opt} would be passed to the filesystem as data"
            );
        }
    }

    #[test]
    fn builder_overrides() {
        let json = FeaturesBuilder::new()
            .mount_options(["bind"])
            .namespaces([LinuxNamespaceType::Pid])
            .to_json()
            .unwrap();
        let d: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(d["mountOptions"], serde_json::json!(["bind"]));
        assert_eq!(d["linux"]["namespaces"], serde_json::json!(["pid"]));
    }
}
