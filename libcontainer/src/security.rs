//! The security setup of one container process, planned before fork and
//! applied by the init through the core's extension points: capabilities,
//! `noNewPrivileges`, AppArmor/SELinux labels and seccomp (with the
//! `SCMP_ACT_NOTIFY` fd handed to the seccomp agent).
//!
//! # How the core uses this
//!
//! ```no_run
//! use libcontainer::lsm::LsmHost;
//! use libcontainer::security::ProcessSecurity;
//! use libcontainer::ContainerBuilder;
//! # fn demo(spec: oci_spec::runtime::Spec) -> Result<(), Box<dyn std::error::Error>> {
//! let bundle = std::path::Path::new("/srv/bundle");
//! let security = ProcessSecurity::from_spec(&spec, bundle, &LsmHost::detect(),
//!                                           Some(std::path::Path::new("/run/berth/seccomp")))?;
//! let container = ContainerBuilder::new("web", bundle)
//!     .spec(spec)
//!     .create_extension(security.create_extension())
//!     .init_extension(security.init_extension())
//!     .create()?;
//! # let _ = container; Ok(()) }
//! ```
//!
//! What runs where (the init's order is the core's: LSM/caps prepare →
//! user change → no_new_privs → caps → ready → wait for start → exec):
//!
//! | step | where | what |
//! |---|---|---|
//! | plan | runtime, before fork | parse capability names, compile seccomp (cached), check LSMs |
//! | `before_clone` | runtime | connect to `listenerPath` (a host path) when NOTIFY is used |
//! | `after_clone` | runtime | tell the init its pid as the runtime sees it (for the agent) |
//! | `before_user_change` | init | AppArmor/SELinux exec labels; without `noNewPrivileges`, load seccomp now (needs CAP_SYS_ADMIN, runc's order); drop the bounding set; keep caps across setuid |
//! | `after_user_change` | init | stop keeping caps; set the capability sets; with `noNewPrivileges` and NOTIFY, load seccomp now so the fd reaches the agent during `create` |
//! | `before_exec` | init | with `noNewPrivileges`, load seccomp as the very last step |
//!
//! With NOTIFY, the init sends the agent runc's `ContainerProcessState`
//! message (`fds: ["seccompFd"]`, pid, metadata, state) with the fd, over
//! the connection the runtime opened before fork.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use oci_spec::runtime::{ContainerState, Spec, State};

use crate::builder::CreateExtension;
use crate::capabilities::{self, CapabilityError, CapabilityPlan};
use crate::init::InitExtension;
use crate::lsm::{AppArmorPlan, LsmError, LsmHost, SelinuxPlan};
use crate::seccomp::{self, SeccompError, SeccompListener, SeccompProgram};

/// Why the security plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A capability name is wrong.
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    /// The seccomp profile is wrong.
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// An LSM label was asked for and cannot be applied.
    #[error(transparent)]
    Lsm(#[from] LsmError),
}

/// Everything the init applies, planned before fork. Cheap to clone (an
/// `Arc`); make one per container create.
#[derive(Clone, Debug)]
pub struct ProcessSecurity {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    no_new_privileges: bool,
    caps: Option<CapabilityPlan>,
    seccomp: Option<SeccompProgram>,
    apparmor: Option<AppArmorPlan>,
    selinux: Option<SelinuxPlan>,
    notify: Option<NotifyLink>,
}

/// The way the notify fd travels to the agent: the runtime connects to
/// the agent before fork (the init cannot see `listenerPath`), and after
/// clone, knowing the pid, writes the finished state message into a socket
/// pair; the init reads it into a buffer allocated before fork and sends it
/// with the fd. No allocation in the init: clone3 skips glibc's fork
/// handlers, so a malloc lock held by another thread would stay locked.
#[derive(Debug)]
struct NotifyLink {
    listener: SeccompListener,
    oci_version: String,
    bundle: PathBuf,
    annotations: Option<std::collections::HashMap<String, String>>,
    /// Set by the runtime before fork; the init inherits it.
    id: OnceLock<String>,
    agent: OnceLock<UnixStream>,
    msg_tx: UnixStream,
    msg_rx: UnixStream,
    buf: Mutex<Box<[u8]>>,
}

/// The largest state message we pass (annotations included).
const MAX_MESSAGE: usize = 64 * 1024;

/// Names the first unknown capability or bad seccomp field of a raw
/// config.json. Call it when typed parsing fails, for an error that names
/// the field (`process.capabilities.bounding[2]: unknown capability ...`).
///
/// ```
/// let config = serde_json::json!({"process": {"capabilities": {"ambient": ["CAP_NOPE"]}}});
/// let err = libcontainer::security::validate_raw(&config).unwrap_err();
/// assert!(err.to_string().starts_with("process.capabilities.ambient[0]"));
/// ```
pub fn validate_raw(config: &serde_json::Value) -> Result<(), SecurityError> {
    capabilities::validate_raw(config)?;
    seccomp::validate_raw(config)?;
    Ok(())
}

impl ProcessSecurity {
    /// Plans the process security of `spec` (before fork). `bundle` goes
    /// into the state sent to a seccomp agent; `seccomp_cache` (e.g.
    /// `<root>/seccomp`) enables [`SeccompProgram::compile_cached`].
    pub fn from_spec(
        spec: &Spec,
        bundle: &Path,
        host: &LsmHost,
        seccomp_cache: Option<&Path>,
    ) -> Result<Self, SecurityError> {
        Self::from_parts(spec, spec.process().as_ref(), bundle, host, seccomp_cache)
    }

    /// Like [`ProcessSecurity::from_spec`] with another process than the
    /// spec's: for `exec`, the container's `spec` (seccomp, annotations)
    /// with the exec'd `process` (process.json: capabilities, labels,
    /// noNewPrivileges).
    pub fn from_parts(
        spec: &Spec,
        process: Option<&oci_spec::runtime::Process>,
        bundle: &Path,
        host: &LsmHost,
        seccomp_cache: Option<&Path>,
    ) -> Result<Self, SecurityError> {
        let caps = process
            .and_then(|p| p.capabilities().as_ref())
            .map(CapabilityPlan::from_spec)
            .transpose()?;
        let apparmor =
            AppArmorPlan::new(process.and_then(|p| p.apparmor_profile().as_deref()), host)?;
        let selinux = SelinuxPlan::new(process.and_then(|p| p.selinux_label().as_deref()), host)?;
        let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            None => None,
            Some(s) => Some(match seccomp_cache {
                Some(dir) => SeccompProgram::compile_cached(s, dir)?,
                None => SeccompProgram::compile(s)?,
            }),
        };
        let notify = match seccomp.as_ref().and_then(SeccompProgram::listener) {
            None => None,
            Some(listener) => {
                let (msg_tx, msg_rx) =
                    UnixStream::pair().map_err(|source| SeccompError::Listener {
                        path: listener.path.clone(),
                        source,
                    })?;
                Some(NotifyLink {
                    listener: listener.clone(),
                    oci_version: spec.version().clone(),
                    // The state carries the absolute bundle path.
                    bundle: bundle
                        .canonicalize()
                        .unwrap_or_else(|_| bundle.to_path_buf()),
                    annotations: spec.annotations().clone(),
                    id: OnceLock::new(),
                    agent: OnceLock::new(),
                    msg_tx,
                    msg_rx,
                    buf: Mutex::new(vec![0u8; MAX_MESSAGE].into_boxed_slice()),
                })
            }
        };
        Ok(ProcessSecurity {
            inner: Arc::new(Inner {
                no_new_privileges: process.and_then(|p| p.no_new_privileges()) == Some(true),
                caps,
                seccomp,
                apparmor,
                selinux,
                notify,
            }),
        })
    }

    /// The runtime-side part, for `ContainerBuilder::create_extension`.
    pub fn create_extension(&self) -> Box<dyn CreateExtension> {
        Box::new(self.clone())
    }

    /// The init-side part, for `ContainerBuilder::init_extension`.
    pub fn init_extension(&self) -> Box<dyn InitExtension + Send + Sync> {
        Box::new(self.clone())
    }

    /// The compiled seccomp program, if the spec has one.
    pub fn seccomp(&self) -> Option<&SeccompProgram> {
        self.inner.seccomp.as_ref()
    }

    /// The capability plan, if the spec has `process.capabilities`.
    pub fn capabilities(&self) -> Option<&CapabilityPlan> {
        self.inner.caps.as_ref()
    }
}

impl CreateExtension for ProcessSecurity {
    fn before_clone(&mut self, _spec: &Spec, id: &str) -> Result<Option<OwnedFd>, String> {
        if let Some(link) = &self.inner.notify {
            let stream = UnixStream::connect(&link.listener.path).map_err(|e| {
                format!(
                    "linux.seccomp.listenerPath {}: {e}",
                    link.listener.path.display()
                )
            })?;
            let _ = link.agent.set(stream);
            let _ = link.id.set(id.to_string());
        }
        Ok(None)
    }

    fn after_clone(&mut self, pid: i32) -> Result<(), String> {
        if let Some(link) = &self.inner.notify {
            link.send_message(pid).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl Inner {
    /// Loads the filter; with NOTIFY, sends the fd to the agent.
    fn load_seccomp(&self) -> Result<(), String> {
        let Some(program) = &self.seccomp else {
            return Ok(());
        };
        let fd = program.load().map_err(|e| e.to_string())?;
        if let (Some(fd), Some(link)) = (fd, &self.notify) {
            link.hand_off(&fd).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl NotifyLink {
    /// In the runtime, after clone: the state message for the agent.
    fn send_message(&self, pid: i32) -> Result<(), SeccompError> {
        let mut state = State::default();
        state.set_version(self.oci_version.clone());
        state.set_id(self.id.get().cloned().unwrap_or_default());
        state.set_status(ContainerState::Creating);
        state.set_pid(Some(pid));
        state.set_bundle(self.bundle.clone());
        state.set_annotations(self.annotations.clone());
        let json = seccomp::notify::state_message(&self.listener, pid, &state)?;
        let err = |source: std::io::Error| SeccompError::Listener {
            path: self.listener.path.clone(),
            source,
        };
        if json.len() > MAX_MESSAGE {
            return Err(err(std::io::Error::other(format!(
                "the state message has {} bytes, the limit is {MAX_MESSAGE}",
                json.len()
            ))));
        }
        (&self.msg_tx)
            .write_all(&(json.len() as u32).to_ne_bytes())
            .and_then(|()| (&self.msg_tx).write_all(&json))
            .map_err(err)
    }

    /// In the init, right after loading the filter: forward the message
    /// with the fd to the agent. Allocation-free.
    fn hand_off(&self, fd: &OwnedFd) -> Result<(), SeccompError> {
        let err = |source: std::io::Error| SeccompError::Listener {
            path: self.listener.path.clone(),
            source,
        };
        // Without the create extension (e.g. an exec), nothing was connected
        // and no message will come: fail instead of waiting for it.
        let agent = self.agent.get().ok_or_else(|| {
            err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the runtime did not connect to the agent (create_extension not used)",
            ))
        })?;
        let mut len = [0u8; 4];
        (&self.msg_rx).read_exact(&mut len).map_err(err)?;
        let len = u32::from_ne_bytes(len) as usize;
        // Nobody else ever locks it; the runtime side never touches it.
        let mut buf = self
            .buf
            .try_lock()
            .map_err(|_| err(std::io::Error::other("message buffer busy")))?;
        let msg = buf
            .get_mut(..len)
            .ok_or_else(|| err(std::io::Error::other("state message too long")))?;
        (&self.msg_rx).read_exact(msg).map_err(err)?;
        seccomp::notify::send_with_fd(agent.as_fd(), msg, fd).map_err(err)
    }
}

impl InitExtension for ProcessSecurity {
    fn before_user_change(&self) -> Result<(), String> {
        let s = &self.inner;
        if let Some(p) = &s.apparmor {
            p.apply().map_err(|e| e.to_string())?;
        }
        if let Some(p) = &s.selinux {
            p.apply().map_err(|e| e.to_string())?;
        }
        if !s.no_new_privileges {
            // Without no_new_privs, loading needs CAP_SYS_ADMIN: load before
            // the capabilities are dropped (runc's order).
            s.load_seccomp()?;
        }
        if let Some(caps) = &s.caps {
            caps.drop_bounding().map_err(|e| e.to_string())?;
            capabilities::set_keep_caps(true).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn after_user_change(&self) -> Result<(), String> {
        let s = &self.inner;
        if let Some(caps) = &s.caps {
            capabilities::set_keep_caps(false).map_err(|e| e.to_string())?;
            caps.apply().map_err(|e| e.to_string())?;
        }
        if s.no_new_privileges && s.notify.is_some() {
            // The agent must get the fd while `create` runs.
            s.load_seccomp()?;
        }
        Ok(())
    }

    fn before_exec(&self) -> Result<(), String> {
        let s = &self.inner;
        if s.no_new_privileges && s.notify.is_none() {
            s.load_seccomp()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        let mut base = serde_json::to_value(Spec::default()).unwrap();
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    const OFF: LsmHost = LsmHost {
        apparmor: false,
        selinux: false,
        apparmor_attr_dir: false,
    };

    #[test]
    fn plans_from_a_spec() {
        let s = spec(serde_json::json!({
            "process": {"cwd": "/", "args": ["sh"], "noNewPrivileges": true,
                "user": {"uid": 0, "gid": 0},
                "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                 "permitted": ["CAP_KILL"]}},
            "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}}
        }));
        let sec = ProcessSecurity::from_spec(&s, Path::new("/b"), &OFF, None).unwrap();
        assert_eq!(sec.capabilities().unwrap().bounding, 1 << 5);
        assert!(sec.seccomp().unwrap().instructions() > 0);
        assert!(sec.inner.no_new_privileges);
        assert!(sec.inner.notify.is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let s = spec(serde_json::json!({
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
                        "apparmorProfile": "docker-default"}
        }));
        let e = ProcessSecurity::from_spec(&s, Path::new("/b"), &OFF, None).unwrap_err();
        assert!(e.to_string().starts_with("process.apparmorProfile"), "{e}");
        let s = spec(serde_json::json!({
            "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}}
        }));
        let e = ProcessSecurity::from_spec(&s, Path::new("/b"), &OFF, None).unwrap_err();
        assert!(
            e.to_string().starts_with("linux.seccomp.listenerPath"),
            "{e}"
        );
    }
}
