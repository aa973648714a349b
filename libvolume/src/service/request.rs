//! Typed requests for the service: what to create, what to list.

use std::collections::BTreeMap;

use crate::driver::Options;
use crate::store::VolumeRecord;

/// The local driver's name, used when a request names none.
pub const DEFAULT_DRIVER: &str = "local";

/// A volume to create.
///
/// ```
/// use libvolume::CreateVolume;
/// let req = CreateVolume::named("cache")
///     .driver("local")
///     .option("type", "tmpfs")
///     .option("device", "tmpfs")
///     .option("o", "size=64m,mode=0700")
///     .label("app", "web");
/// assert_eq!(req.name.as_deref(), Some("cache"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateVolume {
    /// The name; a random one is generated when None.
    pub name: Option<String>,
    /// The driver; [`DEFAULT_DRIVER`] when None.
    pub driver: Option<String>,
    /// Driver options.
    pub options: Options,
    /// User labels, kept by the service.
    pub labels: BTreeMap<String, String>,
}

impl CreateVolume {
    /// An anonymous volume (generated name) on the default driver.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A named volume on the default driver.
    pub fn named(name: impl Into<String>) -> Self {
        CreateVolume {
            name: Some(name.into()),
            ..Default::default()
        }
    }

    /// Selects the driver.
    pub fn driver(mut self, driver: impl Into<String>) -> Self {
        self.driver = Some(driver.into());
        self
    }

    /// Adds a driver option.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }
}

/// Filters for [`crate::VolumeService::list`] and
/// [`crate::VolumeService::prune`], combined with AND like Docker's.
///
/// ```
/// use libvolume::ListFilter;
/// let f = ListFilter::default().driver("local").label("app=web").dangling(true);
/// assert_eq!(f.dangling, Some(true));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Substrings the name must contain (any of them).
    pub names: Vec<String>,
    /// Drivers the volume must use (any of them).
    pub drivers: Vec<String>,
    /// `key` or `key=value` labels the volume must all carry.
    pub labels: Vec<String>,
    /// Only volumes no caller holds (true) or only held ones (false).
    pub dangling: Option<bool>,
}

impl ListFilter {
    /// Adds a name substring.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.names.push(name.into());
        self
    }

    /// Adds a driver.
    pub fn driver(mut self, driver: impl Into<String>) -> Self {
        self.drivers.push(driver.into());
        self
    }

    /// Adds a `key` or `key=value` label condition.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.labels.push(label.into());
        self
    }

    /// Keeps only unused (true) or only used (false) volumes.
    pub fn dangling(mut self, dangling: bool) -> Self {
        self.dangling = Some(dangling);
        self
    }

    pub(crate) fn matches(&self, record: &VolumeRecord) -> bool {
        let name_ok =
            self.names.is_empty() || self.names.iter().any(|n| record.name.contains(n.as_str()));
        let driver_ok = self.drivers.is_empty() || self.drivers.contains(&record.driver);
        let labels_ok = self.labels.iter().all(|cond| match cond.split_once('=') {
            Some((k, v)) => record.labels.get(k).is_some_and(|have| have == v),
            None => record.labels.contains_key(cond),
        });
        let dangling_ok = self.dangling.is_none_or(|d| d == record.refs.is_empty());
        name_ok && driver_ok && labels_ok && dangling_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::Caller;
    use crate::store::CallerRef;

    fn record(name: &str, driver: &str, labels: &[(&str, &str)], used: bool) -> VolumeRecord {
        let mut refs = BTreeMap::new();
        if used {
            refs.insert(
                "c".to_string(),
                CallerRef {
                    caller: Caller::new("c"),
                    count: 1,
                },
            );
        }
        VolumeRecord {
            name: name.into(),
            driver: driver.into(),
            options: Options::new(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created_at: String::new(),
            mount_id: None,
            mountpoint: None,
            refs,
        }
    }

    #[test]
    fn filters_combine() {
        let web = record("web-data", "local", &[("app", "web"), ("tier", "1")], false);
        let db = record("db-data", "plug", &[("app", "db")], true);
        let all = ListFilter::default();
        assert!(all.matches(&web) && all.matches(&db));
        assert!(ListFilter::default().name("web").matches(&web));
        assert!(!ListFilter::default().name("web").matches(&db));
        assert!(ListFilter::default().name("nope").name("db").matches(&db));
        assert!(ListFilter::default().driver("plug").matches(&db));
        assert!(!ListFilter::default().driver("plug").matches(&web));
        assert!(ListFilter::default().label("tier").matches(&web));
        assert!(ListFilter::default()
            .label("app=web")
            .label("tier=1")
            .matches(&web));
        assert!(!ListFilter::default()
            .label("app=web")
            .label("tier=2")
            .matches(&web));
        assert!(ListFilter::default().dangling(true).matches(&web));
        assert!(!ListFilter::default().dangling(true).matches(&db));
        assert!(ListFilter::default().dangling(false).matches(&db));
    }
}
