//! Turning a mount(8) style `o=` string into mount(2) flags and data, and
//! resolving `addr=` host names for network filesystems as moby does.

use std::net::{IpAddr, Ipv4Addr};

use nix::mount::MsFlags;

use crate::error::{Error, Result};
use crate::local::options::DRIVER;

/// Flags and filesystem data split out of an `o=` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountOpts {
    pub flags: MsFlags,
    /// Propagation to apply with a second mount(2) call.
    pub propagation: MsFlags,
    pub data: String,
}

pub(crate) fn parse_mount_opts(o: &str) -> MountOpts {
    let mut out = MountOpts {
        flags: MsFlags::empty(),
        propagation: MsFlags::empty(),
        data: String::new(),
    };
    let mut data = Vec::new();
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        let (set, clear, propagation) = match opt {
            "defaults" => (MsFlags::empty(), MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty(), MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty(), MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID, MsFlags::empty()),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty(), MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV, MsFlags::empty()),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty(), MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty(), MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty(), MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty(), MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty(), MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty(), MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty(), MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty(), MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty(), MsFlags::empty()),
            "rbind" => (
                MsFlags::MS_BIND | MsFlags::MS_REC,
                MsFlags::empty(),
                MsFlags::empty(),
            ),
            "private" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_PRIVATE),
            "rprivate" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            ),
            "shared" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SHARED),
            "rshared" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_SHARED | MsFlags::MS_REC,
            ),
            "slave" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SLAVE),
            "rslave" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
            ),
            "unbindable" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_UNBINDABLE),
            "runbindable" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
            ),
            // "loop" is implied for image files; anything else is fs data.
            "loop" => (MsFlags::empty(), MsFlags::empty(), MsFlags::empty()),
            other => {
                data.push(other);
                continue;
            }
        };
        out.flags.insert(set);
        out.flags.remove(clear);
        out.propagation.insert(propagation);
    }
    out.data = data.join(",");
    out
}

/// The value of the first `addr=` option.
pub(crate) fn addr_option(o: &str) -> Option<&str> {
    o.split(',').find_map(|opt| opt.strip_prefix("addr="))
}

/// For nfs and cifs, replaces a non-IPv4 `addr=` value with the address it
/// resolves to (moby does the same: the kernel cannot resolve names).
pub(crate) async fn resolve_addr<F, Fut>(mount_type: &str, o: &str, resolve: F) -> Result<String>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<IpAddr>>,
{
    if !matches!(mount_type, "nfs" | "nfs4" | "cifs") {
        return Ok(o.to_string());
    }
    let Some(addr) = addr_option(o) else {
        return Ok(o.to_string());
    };
    if addr.parse::<Ipv4Addr>().is_ok() {
        return Ok(o.to_string());
    }
    let ip = resolve(addr.to_string()).await.map_err(|e| {
        Error::option(
            DRIVER,
            format!("error resolving passed in network volume address {addr:?}: {e}"),
        )
    })?;
    Ok(o.replacen(&format!("addr={addr}"), &format!("addr={ip}"), 1))
}

/// Resolves a host name with the system resolver, preferring IPv4.
pub(crate) async fn system_resolve(host: String) -> std::io::Result<IpAddr> {
    let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), 0))
        .await?
        .map(|a| a.ip())
        .collect();
    addrs
        .iter()
        .find(|ip| ip.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no address for {host}"),
            )
        })
}

/// Hides `password=` values in messages.
pub(crate) fn mask_password(message: &str, o: &str) -> String {
    match o.split(',').find_map(|opt| opt.strip_prefix("password=")) {
        Some(pw) if !pw.is_empty() => {
            message.replace(&format!("password={pw}"), "password=********")
        }
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_flags_from_data() {
        let m = parse_mount_opts("ro,nosuid,size=10m,mode=0700,noexec,rprivate");
        assert_eq!(
            m.flags,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC
        );
        assert_eq!(m.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(m.data, "size=10m,mode=0700");
        let m = parse_mount_opts("ro,rw,rbind");
        assert_eq!(m.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(parse_mount_opts("").data, "");
    }

    #[tokio::test]
    async fn resolves_addr_for_nfs_only() {
        let fake = |host: String| async move {
            assert_eq!(host, "filer.example");
            Ok::<_, std::io::Error>(IpAddr::from([10, 0, 0, 7]))
        };
        let o = resolve_addr("nfs", "addr=filer.example,rw,nfsvers=4", fake)
            .await
            .unwrap();
        assert_eq!(o, "addr=10.0.0.7,rw,nfsvers=4");
        let never =
            |_: String| async { Err::<IpAddr, _>(std::io::Error::other("must not resolve")) };
        assert_eq!(
            resolve_addr("nfs", "addr=1.2.3.4", never).await.unwrap(),
            "addr=1.2.3.4"
        );
        let never =
            |_: String| async { Err::<IpAddr, _>(std::io::Error::other("must not resolve")) };
        assert_eq!(
            resolve_addr("ext4", "addr=x", never).await.unwrap(),
            "addr=x"
        );
        let fail = |_: String| async { Err::<IpAddr, _>(std::io::Error::other("no such host")) };
        let e = resolve_addr("cifs", "addr=nohost", fail)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("error resolving passed in network volume address"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn system_resolver_finds_localhost() {
        let ip = system_resolve("localhost".into()).await.unwrap();
        assert!(ip.is_loopback());
    }

    #[test]
    fn masks_passwords() {
        let o = "username=u,password=s3cret";
        assert_eq!(
            mask_password("mount failed: password=s3cret", o),
            "mount failed: password=********"
        );
    }
}
