//! OOM notifications: v1 through an eventfd registered on
//! `memory.oom_control` via `cgroup.event_control`; v2 by watching
//! `memory.events` with inotify and comparing the `oom_kill` counter.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::dir::parse_flat_keyed;
use super::error::{CgroupError, Result};

/// What [`OomWatcher::wait`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomEvent {
    /// One or more OOM events (the count since the last report).
    Oom(u64),
    /// The cgroup was removed (the container is gone).
    CgroupRemoved,
    /// The timeout passed without an event.
    Timeout,
}

enum Inner {
    V1 {
        efd: EventFd,
        _oom_control: File,
        dir: PathBuf,
    },
    V2 {
        inotify: Inotify,
        events: PathBuf,
        seen: u64,
    },
}

/// A pollable watcher of a container's OOM events.
pub struct OomWatcher {
    inner: Inner,
}

impl std::fmt::Debug for OomWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OomWatcher").finish_non_exhaustive()
    }
}

fn oom_kills(events: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(events).map_err(|e| CgroupError::io("read", events, e))?;
    Ok(parse_flat_keyed(&text)
        .get("oom_kill")
        .copied()
        .unwrap_or(0))
}

impl OomWatcher {
    /// Register on a v1 memory cgroup directory.
    pub fn v1(dir: &Path) -> Result<Self> {
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC)
            .map_err(|e| CgroupError::sys("eventfd", e))?;
        let ctl_path = dir.join("memory.oom_control");
        let oom_control =
            File::open(&ctl_path).map_err(|e| CgroupError::io("open", &ctl_path, e))?;
        let line = format!("{} {}", efd.as_fd().as_raw_fd(), oom_control.as_raw_fd());
        let ec = dir.join("cgroup.event_control");
        std::fs::write(&ec, line).map_err(|e| CgroupError::io("write", &ec, e))?;
        Ok(Self {
            inner: Inner::V1 {
                efd,
                _oom_control: oom_control,
                dir: dir.to_path_buf(),
            },
        })
    }

    /// Watch a v2 cgroup directory's memory.events.
    pub fn v2(dir: &Path) -> Result<Self> {
        let events = dir.join("memory.events");
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| CgroupError::sys("inotify_init", e))?;
        inotify
            .add_watch(&events, AddWatchFlags::IN_MODIFY)
            .map_err(|e| CgroupError::sys("inotify_add_watch on memory.events", e))?;
        let seen = oom_kills(&events)?;
        Ok(Self {
            inner: Inner::V2 {
                inotify,
                events,
                seen,
            },
        })
    }

    /// The descriptor to poll for readability (to integrate with an event
    /// loop; then call [`wait`](Self::wait) with a zero timeout).
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.inner {
            Inner::V1 { efd, .. } => efd.as_fd(),
            Inner::V2 { inotify, .. } => inotify.as_fd(),
        }
    }

    /// Block until an OOM event, the cgroup's removal, or the timeout
    /// (`None`: wait forever).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<OomEvent> {
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
        };
        loop {
            let ready = {
                let mut fds = [PollFd::new(self.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, timeout) {
                    Ok(n) => n,
                    Err(nix::Error::EINTR) => continue,
                    Err(e) => return Err(CgroupError::sys("poll", e)),
                }
            };
            if ready == 0 {
                return Ok(OomEvent::Timeout);
            }
            match &mut self.inner {
                Inner::V1 { efd, dir, .. } => {
                    let n = efd
                        .read()
                        .map_err(|e| CgroupError::sys("eventfd read", e))?;
                    // The eventfd also fires when the cgroup goes away.
                    if !dir.exists() {
                        return Ok(OomEvent::CgroupRemoved);
                    }
                    return Ok(OomEvent::Oom(n));
                }
                Inner::V2 {
                    inotify,
                    events,
                    seen,
                } => {
                    let evs = match inotify.read_events() {
                        Ok(evs) => evs,
                        Err(nix::Error::EAGAIN) => continue,
                        Err(e) => return Err(CgroupError::sys("inotify read", e)),
                    };
                    if evs
                        .iter()
                        .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
                        || !events.exists()
                    {
                        return Ok(OomEvent::CgroupRemoved);
                    }
                    let now = oom_kills(events)?;
                    if now > *seen {
                        let n = now - *seen;
                        *seen = now;
                        return Ok(OomEvent::Oom(n));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The v2 watcher on a plain directory: inotify sees writes to a regular
    // file the same way as kernfs' notifications on memory.events.
    #[test]
    fn v2_watcher_reports_new_oom_kills_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("memory.events");
        std::fs::write(&events, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 1\n").unwrap();
        let mut w = OomWatcher::v2(dir.path()).unwrap();
        assert_eq!(
            w.wait(Some(Duration::from_millis(20))).unwrap(),
            OomEvent::Timeout
        );
        // A change that is not an OOM kill is not reported.
        std::fs::write(&events, "low 0\nhigh 3\nmax 0\noom 0\noom_kill 1\n").unwrap();
        assert_eq!(
            w.wait(Some(Duration::from_millis(50))).unwrap(),
            OomEvent::Timeout
        );
        std::fs::write(&events, "low 0\nhigh 3\nmax 2\noom 2\noom_kill 3\n").unwrap();
        assert_eq!(
            w.wait(Some(Duration::from_secs(2))).unwrap(),
            OomEvent::Oom(2)
        );
        std::fs::remove_file(&events).unwrap();
        assert_eq!(
            w.wait(Some(Duration::from_secs(2))).unwrap(),
            OomEvent::CgroupRemoved
        );
    }

    #[test]
    fn v2_watcher_needs_memory_events() {
        let dir = tempfile::tempdir().unwrap();
        assert!(OomWatcher::v2(dir.path()).is_err());
    }
}
