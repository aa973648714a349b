//! Registry credentials (`docker login`, `X-Registry-Auth`): Basic auth
//! headers, and checking a login against the registry as dockerd does.

use std::fmt;

use base64::Engine;
use hyper::StatusCode;

use super::client::Registry;
use super::{RegistryConfig, RegistryError, RegistryResult, DOCKER_HUB};

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    /// Credentials of `username` with `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The `Authorization: Basic …` value.
    pub(crate) fn basic(&self) -> String {
        let pair = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

impl fmt::Debug for Credentials {
    // The password stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The registry domain of a `docker login` server address: a scheme and
/// a path are dropped, Docker Hub's v1 address is Docker Hub.
pub fn login_domain(server_address: &str) -> RegistryResult<String> {
    let rest = server_address
        .split_once("://")
        .map_or(server_address, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or_default().trim();
    if host.is_empty() {
        return Ok(DOCKER_HUB.to_string());
    }
    if host.chars().any(|c| c.is_whitespace() || c == '@') {
        return Err(RegistryError::InvalidReference {
            reference: server_address.to_string(),
            reason: "not a registry host[:port]".into(),
        });
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    })
}

/// Check `credentials` against the registry at `server_address`, as
/// `docker login` has dockerd do: `GET /v2/`, then Basic auth or the
/// token endpoint its challenge names.
///
/// ```no_run
/// # async fn f() -> Result<(), examples::images::RegistryError> {
/// use examples::images::{login, Credentials, RegistryConfig};
/// login("127.0.0.1:5000", &Credentials::new("u", "p"), &RegistryConfig::new()).await?;
/// # Ok(()) }
/// ```
pub async fn login(
    server_address: &str,
    credentials: &Credentials,
    config: &RegistryConfig,
) -> RegistryResult<()> {
    let domain = login_domain(server_address)?;
    let config = config.clone().credentials(credentials.clone());
    let registry = Registry::for_domain(&domain, "", String::new(), &config)?;
    registry.login().await
}

/// Docker's words for a status: `401 Unauthorized`.
pub(crate) fn status_text(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_name_a_domain() {
        assert_eq!(login_domain("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert_eq!(
            login_domain("http://reg.lan:5000/v2/").unwrap(),
            "reg.lan:5000"
        );
        assert_eq!(
            login_domain("https://index.docker.io/v1/").unwrap(),
            DOCKER_HUB
        );
        assert!(login_domain("a b").is_err());
    }

    #[test]
    fn basic_headers_and_debug_without_the_password() {
        let c = Credentials::new("user", "s3cret");
        assert_eq!(c.basic(), "Basic dXNlcjpzM2NyZXQ=");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
