//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in libvolume.
///
/// Messages name the volume, driver, option or path at fault so that they can
/// be shown to a user as they are.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A volume name breaks Docker's naming rules.
    #[error("{name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// No driver of that name is registered or discoverable as a plugin.
    #[error("volume driver {driver:?} not found")]
    UnknownDriver {
        /// The requested driver.
        driver: String,
    },
    /// A driver option is unknown, missing or malformed.
    #[error("invalid volume option for driver {driver:?}: {message}")]
    InvalidOption {
        /// The driver that rejected the option.
        driver: String,
        /// What is wrong, naming the option.
        message: String,
    },
    /// The volume does not exist.
    #[error("no such volume: {name}")]
    NotFound {
        /// The volume asked for.
        name: String,
    },
    /// A volume of that name exists with another driver or other options.
    #[error("volume {name:?} already exists with driver {existing_driver:?}")]
    Conflict {
        /// The volume name.
        name: String,
        /// The driver it was created with.
        existing_driver: String,
    },
    /// The volume is mounted by callers and removal was not forced.
    #[error("volume {name:?} is in use by {callers:?}")]
    InUse {
        /// The volume name.
        name: String,
        /// The callers holding it.
        callers: Vec<String>,
    },
    /// The caller does not hold a mount of the volume.
    #[error("volume {name:?} is not mounted by caller {caller:?}")]
    NotMounted {
        /// The volume name.
        name: String,
        /// The caller that tried to unmount.
        caller: String,
    },
    /// A driver (built in or plugin) reported an error.
    #[error("volume driver {driver:?}: {message}")]
    Driver {
        /// The driver name.
        driver: String,
        /// Its message (for plugins, the `Err` field).
        message: String,
    },
    /// A plugin could not be reached or spoke something other than the protocol.
    #[error("volume plugin {plugin:?}: {message}")]
    Plugin {
        /// The plugin name or address.
        plugin: String,
        /// What went wrong.
        message: String,
    },
    /// A system call failed.
    #[error("{context} {path}: {source}")]
    Sys {
        /// What was being done.
        context: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The persisted state could not be read or written.
    #[error("volume state {path}: {message}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    pub(crate) fn sys(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Sys {
            context,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn nix(
        context: &'static str,
        path: impl Into<PathBuf>,
        errno: nix::errno::Errno,
    ) -> Self {
        Error::sys(context, path, std::io::Error::from(errno))
    }

    pub(crate) fn option(driver: &str, message: impl Into<String>) -> Self {
        Error::InvalidOption {
            driver: driver.to_string(),
            message: message.into(),
        }
    }

    /// True when the error means "this volume does not exist".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
