//! The local driver's options, validated as moby validates them:
//! only `type`, `device`, `o` and `size`; `type` and `device` need each other
//! and `o` needs both; a CIFS device URL may not carry a port; `size` takes
//! Docker's RAM-style sizes (`100m`, `1.5GiB`).

use serde::{Deserialize, Serialize};

use crate::driver::Options;
use crate::error::{Error, Result};

pub(crate) const DRIVER: &str = "local";
const VALID: [&str; 4] = ["type", "o", "device", "size"];
const REQUIRES: [(&str, &[&str]); 3] = [
    ("device", &["type"]),
    ("type", &["device"]),
    ("o", &["device", "type"]),
];

/// Parsed local driver options, stored next to the volume's data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalOptions {
    /// Filesystem type (`tmpfs`, `ext4`, `nfs`, `none` with `o=bind` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_type: Option<String>,
    /// What to mount: a device, an image file, a host path, `host:/export`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Mount options as for mount(8) `-o`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_opts: Option<String>,
    /// Size limit in bytes, enforced through an ext4 loop image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl LocalOptions {
    /// Validates and parses create options.
    ///
    /// ```
    /// use libvolume::{LocalOptions, Options};
    /// let opts = Options::from([("type".into(), "tmpfs".into()), ("device".into(), "tmpfs".into())]);
    /// assert!(LocalOptions::parse(&opts).unwrap().needs_mount());
    /// let bad = Options::from([("o".into(), "size=1m".into())]);
    /// assert!(LocalOptions::parse(&bad).is_err());
    /// ```
    pub fn parse(opts: &Options) -> Result<Self> {
        for key in opts.keys() {
            if !VALID.contains(&key.as_str()) {
                return Err(Error::option(DRIVER, format!("invalid option: {key:?}")));
            }
        }
        if let (Some("cifs"), Some(device)) =
            (opts.get("type").map(String::as_str), opts.get("device"))
        {
            if cifs_url_has_port(device) {
                return Err(Error::option(
                    DRIVER,
                    "port not allowed in CIFS device URL, include 'port' in 'o='",
                ));
            }
        }
        let size = match opts.get("size") {
            Some(v) => Some(parse_ram_size(v)?).filter(|s| *s > 0),
            None => None,
        };
        for (key, needs) in REQUIRES {
            if opts.contains_key(key) {
                if let Some(missing) = needs.iter().find(|n| !opts.contains_key(**n)) {
                    return Err(Error::option(
                        DRIVER,
                        format!("missing required option: {missing:?}"),
                    ));
                }
            }
        }
        let parsed = LocalOptions {
            mount_type: opts.get("type").cloned(),
            device: opts.get("device").cloned(),
            mount_opts: opts.get("o").cloned().filter(|o| !o.is_empty()),
            size,
        };
        if parsed.size.is_some() && parsed.device.is_some() {
            return Err(Error::option(
                DRIVER,
                "option \"size\" applies to plain volumes (an ext4 loop image); for tmpfs pass size= in \"o\"",
            ));
        }
        if parsed.is_bind() {
            let device = parsed.device.as_deref().unwrap_or_default();
            if !device.starts_with('/') {
                return Err(Error::option(
                    DRIVER,
                    format!("bind mount device {device:?} must be an absolute host path"),
                ));
            }
        }
        Ok(parsed)
    }

    /// True when mounting the volume needs a mount(2) call.
    pub fn needs_mount(&self) -> bool {
        self.mount_type.is_some() || self.device.is_some() || self.size.is_some()
    }

    /// True for `o=bind` / `o=rbind` (with any type, typically `none`).
    pub fn is_bind(&self) -> bool {
        self.mount_opts
            .as_deref()
            .is_some_and(|o| o.split(',').any(|opt| opt == "bind" || opt == "rbind"))
    }
}

/// `//host:port/share` style URLs; moby rejects the port there.
fn cifs_url_has_port(device: &str) -> bool {
    let rest = device
        .split_once("://")
        .map(|(_, r)| r)
        .or_else(|| device.strip_prefix("//"))
        .unwrap_or("");
    let host = rest.split('/').next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').is_some_and(|(_, p)| p.starts_with(':')),
        None => host.contains(':'),
    }
}

/// Docker's RAM sizes (go-units `RAMInBytes`): a decimal number and an
/// optional binary unit `b k m g t p`, optionally followed by `b` or `ib`.
pub fn parse_ram_size(value: &str) -> Result<u64> {
    let bad = || Error::option(DRIVER, format!("invalid size: '{value}'"));
    let s = value.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(bad()),
    };
    let bytes = num * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Options {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        LocalOptions::parse(&opts(pairs)).unwrap_err().to_string()
    }

    #[test]
    fn moby_rules() {
        assert!(LocalOptions::parse(&opts(&[])).unwrap() == LocalOptions::default());
        assert!(err(&[("foo", "bar")]).contains("invalid option: \"foo\""));
        assert!(err(&[("type", "tmpfs")]).contains("missing required option: \"device\""));
        assert!(err(&[("device", "tmpfs")]).contains("missing required option: \"type\""));
        assert!(err(&[("o", "size=1m"), ("type", "tmpfs")])
            .contains("missing required option: \"device\""));
        let tmpfs = LocalOptions::parse(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m,mode=0700"),
        ]))
        .unwrap();
        assert_eq!(tmpfs.mount_opts.as_deref(), Some("size=1m,mode=0700"));
        assert!(tmpfs.needs_mount() && !tmpfs.is_bind());
    }

    #[test]
    fn cifs_port_rejected() {
        let e = err(&[("type", "cifs"), ("device", "//server:445/share")]);
        assert!(e.contains("port not allowed in CIFS device URL"), "{e}");
        LocalOptions::parse(&opts(&[
            ("type", "cifs"),
            ("device", "//server/share"),
            ("o", "port=445"),
        ]))
        .unwrap();
    }

    #[test]
    fn bind_needs_absolute_path() {
        let ok = LocalOptions::parse(&opts(&[
            ("type", "none"),
            ("device", "/srv"),
            ("o", "bind"),
        ]))
        .unwrap();
        assert!(ok.is_bind());
        assert!(err(&[("type", "none"), ("device", "srv"), ("o", "bind")])
            .contains("absolute host path"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_ram_size("1024").unwrap(), 1024);
        assert_eq!(parse_ram_size("10m").unwrap(), 10 << 20);
        assert_eq!(parse_ram_size("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_ram_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_ram_size("2KB").unwrap(), 2048);
        for bad in ["", "abc", "10x", "-1", "1..2m"] {
            assert!(
                parse_ram_size(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("invalid size"),
                "{bad}"
            );
        }
        let sized = LocalOptions::parse(&opts(&[("size", "20m")])).unwrap();
        assert_eq!(sized.size, Some(20 << 20));
        assert!(sized.needs_mount());
        assert!(err(&[("size", "1m"), ("type", "tmpfs"), ("device", "tmpfs")]).contains("size"));
    }
}
