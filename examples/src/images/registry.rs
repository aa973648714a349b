//! A client of the OCI distribution API (Docker registries): image
//! references with a registry host, manifests and blobs over HTTP/1.1
//! (plain HTTP for loopback and insecure registries, HTTPS with rustls
//! otherwise) and the Bearer token flow registries answer a `401` with.
//!
//! Built on hyper's connection API, already used by libswarm's Docker API
//! client and server, with rustls (ring provider) and the system's CA
//! bundle: no second HTTP stack for the workspace.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, LOCATION};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use oci_spec::image::Digest;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::digest::parse_sha256;
use super::error::ImageError;
use super::reference::ImageRef;

/// Docker Hub's registry host, the default domain of short names.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's API actually lives.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The CA bundle of Debian-like systems (ca-certificates).
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// How long to wait for a connection or for the next bytes of a response.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Manifest media types we ask for, best first.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Errors talking to a registry. Messages follow Docker's wording where
/// the docker CLI users know it ("manifest unknown", "dial tcp").
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference does not parse.
    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The registry could not be reached.
    #[error("Get \"{url}\": dial tcp {host}: {reason}")]
    Connect {
        /// The URL requested.
        url: String,
        /// `host:port` dialled.
        host: String,
        /// Why it failed (connection refused, timeout, TLS).
        reason: String,
    },
    /// The HTTP exchange failed after connecting.
    #[error("Get \"{url}\": {reason}")]
    Http {
        /// The URL requested.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The tag or digest is not in the repository.
    #[error("manifest for {reference} not found: manifest unknown: manifest unknown")]
    ManifestUnknown {
        /// The full reference.
        reference: String,
    },
    /// The repository does not exist or we may not pull it.
    #[error("pull access denied for {repository}, repository does not exist or may require 'docker login': {message}")]
    Denied {
        /// The repository.
        repository: String,
        /// The registry's message.
        message: String,
    },
    /// Any other error answer of the registry.
    #[error("{url}: {status}: {message}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error code and message, or the body.
        message: String,
    },
    /// A manifest, config or layer the store cannot use.
    #[error("{0}")]
    Unsupported(String),
    /// The local image store failed or refused the content.
    #[error(transparent)]
    Store(#[from] ImageError),
}

/// Shorthand for this module's results.
pub type RegistryResult<T> = std::result::Result<T, RegistryError>;

/// A reference to an image in a registry: `[host[:port]/]path[:tag][@digest]`,
/// with Docker's defaults (`busybox` is `docker.io/library/busybox:latest`).
///
/// ```
/// use examples::images::RemoteRef;
/// let r: RemoteRef = "busybox".parse()?;
/// assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
/// let r: RemoteRef = "127.0.0.1:5000/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000".parse()?;
/// assert_eq!((r.domain(), r.path()), ("127.0.0.1:5000", "team/app"));
/// assert!(r.tag().is_none() && r.digest().is_some());
/// # Ok::<(), examples::images::RegistryError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl RemoteRef {
    /// The registry host (`docker.io`, `127.0.0.1:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path in the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, when pulled by tag.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The manifest digest, when pulled by digest.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The repository as Docker shows it (`busybox`,
    /// `127.0.0.1:5000/busybox`).
    pub fn familiar_repo(&self) -> String {
        if self.domain == DOCKER_HUB {
            self.path
                .strip_prefix("library/")
                .unwrap_or(&self.path)
                .to_string()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The reference as Docker shows it (`busybox:latest`,
    /// `127.0.0.1:5000/busybox@sha256:…`).
    pub fn familiar(&self) -> String {
        match (&self.tag, &self.digest) {
            (_, Some(d)) => format!("{}@{d}", self.familiar_repo()),
            (Some(t), None) => format!("{}:{t}", self.familiar_repo()),
            (None, None) => self.familiar_repo(),
        }
    }

    /// The name the local store tags a pull by tag with.
    pub fn store_name(&self) -> Option<ImageRef> {
        let tag = self.tag.as_ref()?;
        format!("{}:{tag}", self.familiar_repo()).parse().ok()
    }

    /// What `/v2/<path>/manifests/<this>` asks for: the digest if there
    /// is one, else the tag.
    pub(crate) fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }
}

impl fmt::Display for RemoteRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn invalid(reference: &str, reason: impl Into<String>) -> RegistryError {
    RegistryError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    !c.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && c.chars().all(|ch| {
            ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
        })
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        && port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok())
}

fn valid_tag(t: &str) -> bool {
    let mut chars = t.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && t.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl FromStr for RemoteRef {
    type Err = RegistryError;

    fn from_str(s: &str) -> RegistryResult<Self> {
        if s.is_empty() {
            return Err(invalid(s, "empty"));
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => {
                let digest = parse_sha256(d, "digest").map_err(|e| invalid(s, e.to_string()))?;
                (n, Some(digest))
            }
            None => (s, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if let Some(t) = tag.filter(|t| !valid_tag(t)) {
            return Err(invalid(
                s,
                format!("tag {t:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"),
            ));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first, rest.to_string())
            }
            _ => (DOCKER_HUB, name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DOCKER_HUB
        } else {
            domain
        };
        if !valid_domain(domain) {
            return Err(invalid(s, format!("registry host {domain:?} is not valid")));
        }
        if let Some(bad) = path.split('/').find(|c| !valid_component(c)) {
            return Err(invalid(
                s,
                format!("repository name component {bad:?} must be lowercase letters, digits and separators"),
            ));
        }
        let path = if domain == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            domain: domain.to_string(),
            path,
            tag,
            digest,
        })
    }
}

/// How to reach registries: which ones speak plain HTTP, and which CAs
/// the others' certificates may chain to.
///
/// Loopback registries (`localhost`, `127.0.0.0/8`, `::1`) always speak
/// plain HTTP, as with Docker; others listed with
/// [`RegistryConfig::insecure`] (berthd's `--insecure-registry`) too.
/// Every other registry is HTTPS, checked against the system's CA bundle
/// plus, as Docker's `/etc/docker/certs.d/<host:port>/*.crt`, the CA files
/// of [`RegistryConfig::certs_dir`].
///
/// ```
/// use examples::images::RegistryConfig;
/// let c = RegistryConfig::new()
///     .insecure("registry.lan:5000")
///     .certs_dir("/etc/docker/certs.d");
/// assert!(c.plain_http("registry.lan:5000") && c.plain_http("127.0.0.1:5000"));
/// assert!(!c.plain_http("quay.io"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    insecure: Vec<String>,
    certs_dir: Option<PathBuf>,
}

impl RegistryConfig {
    /// Only loopback registries over plain HTTP.
    pub fn new() -> Self {
        Self::default()
    }

    /// Talk plain HTTP to `host[:port]` (a host alone matches any port).
    pub fn insecure(mut self, registry: impl Into<String>) -> Self {
        self.insecure.push(registry.into());
        self
    }

    /// Trust the CA files `<dir>/<host[:port]>/*.crt` for that registry
    /// besides the system's CAs (berthd: `--registry-certs-dir`, by
    /// default Docker's `/etc/docker/certs.d`).
    pub fn certs_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.certs_dir = Some(dir.into());
        self
    }

    /// The extra CA certificates configured for `domain` (none when
    /// there is no directory for it).
    fn extra_cas(&self, domain: &str) -> RegistryResult<Vec<CertificateDer<'static>>> {
        let Some(dir) = &self.certs_dir else {
            return Ok(Vec::new());
        };
        let dir = dir.join(domain);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut cas = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "crt") {
                let certs = CertificateDer::pem_file_iter(&path).map_err(|e| {
                    RegistryError::Unsupported(format!("reading {}: {e}", path.display()))
                })?;
                for cert in certs {
                    cas.push(cert.map_err(|e| {
                        RegistryError::Unsupported(format!("reading {}: {e}", path.display()))
                    })?);
                }
            }
        }
        Ok(cas)
    }

    /// Whether `domain` (`host[:port]`) is reached over plain HTTP.
    pub fn plain_http(&self, domain: &str) -> bool {
        let host = host_of(domain);
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        loopback
            || self
                .insecure
                .iter()
                .any(|i| i == domain || (!i.contains(':') && i == host))
    }
}

/// The host of `host[:port]` (brackets of IPv6 literals removed).
fn host_of(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    domain.rsplit_once(':').map_or(domain, |(h, _)| h)
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A session with one registry repository: base URL, TLS and the token
/// the registry gave us.
pub(crate) struct Registry {
    base: String,
    repository: String,
    tls: Option<tokio_rustls::TlsConnector>,
    token: Mutex<Option<String>>,
}

impl Registry {
    /// A client for `reference`'s registry and repository.
    pub(crate) fn new(reference: &RemoteRef, config: &RegistryConfig) -> RegistryResult<Self> {
        let api = if reference.domain == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &reference.domain
        };
        let plain = config.plain_http(&reference.domain);
        let tls = if plain {
            None
        } else {
            Some(tls_connector(config.extra_cas(&reference.domain)?)?)
        };
        let scheme = if plain { "http" } else { "https" };
        Ok(Self {
            base: format!("{scheme}://{api}"),
            repository: reference.path.clone(),
            tls,
            token: Mutex::new(None),
        })
    }

    /// `GET /v2/<repository>/<kind>/<reference>` with `accept`, following
    /// redirects and answering a Bearer challenge once. Returns a `200`
    /// response; other statuses become errors (`404`s as `not_found`).
    pub(crate) async fn get(
        &self,
        kind: &str,
        reference: &str,
        accept: &str,
        not_found: impl FnOnce() -> RegistryError,
    ) -> RegistryResult<Response<Incoming>> {
        let url = format!("{}/v2/{}/{kind}/{reference}", self.base, self.repository);
        let mut challenged = false;
        loop {
            let token = self.token.lock().map(|t| t.clone()).unwrap_or(None);
            let response = self.get_following(&url, accept, token.as_deref()).await?;
            match response.status() {
                StatusCode::OK => return Ok(response),
                StatusCode::UNAUTHORIZED if !challenged => {
                    challenged = true;
                    let challenge = response
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let Some(params) = challenge.as_deref().and_then(parse_bearer) else {
                        return Err(self.error(&url, response).await);
                    };
                    let token = self.fetch_token(&params).await?;
                    if let Ok(mut t) = self.token.lock() {
                        *t = Some(token);
                    }
                }
                StatusCode::NOT_FOUND => {
                    let err = self.error(&url, response).await;
                    return Err(match err {
                        RegistryError::Status { ref message, .. }
                            if message.contains("NAME_UNKNOWN") =>
                        {
                            RegistryError::Denied {
                                repository: self.repository.clone(),
                                message: message.clone(),
                            }
                        }
                        _ => not_found(),
                    });
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let message = match self.error(&url, response).await {
                        RegistryError::Status { message, .. } => message,
                        other => other.to_string(),
                    };
                    return Err(RegistryError::Denied {
                        repository: self.repository.clone(),
                        message,
                    });
                }
                _ => return Err(self.error(&url, response).await),
            }
        }
    }

    /// One GET, following up to five redirects (blob storage often sits
    /// elsewhere); the token only goes to the registry itself.
    async fn get_following(
        &self,
        url: &str,
        accept: &str,
        token: Option<&str>,
    ) -> RegistryResult<Response<Incoming>> {
        let mut url = url.to_string();
        let mut token = token;
        for _ in 0..5 {
            let response = self.send(&url, accept, token).await?;
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let Some(location) = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
            else {
                return Ok(response);
            };
            let next = if location.starts_with('/') {
                let uri: Uri = url.parse().map_err(|e| http_err(&url, e))?;
                format!(
                    "{}://{}{location}",
                    uri.scheme_str().unwrap_or("https"),
                    uri.authority().map_or("", |a| a.as_str())
                )
            } else {
                location.to_string()
            };
            if !next.starts_with(&self.base) {
                token = None;
            }
            url = next;
        }
        Err(RegistryError::Http {
            url,
            reason: "stopped after 5 redirects".into(),
        })
    }

    /// Send one GET on a new connection.
    async fn send(
        &self,
        url: &str,
        accept: &str,
        token: Option<&str>,
    ) -> RegistryResult<Response<Incoming>> {
        let uri: Uri = url.parse().map_err(|e| http_err(url, e))?;
        let https = uri.scheme_str() == Some("https");
        let authority = uri
            .authority()
            .ok_or_else(|| http_err(url, "no host in URL"))?
            .clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let dialled = format!("{}:{port}", authority.host());
        let connect_err = |reason: String| RegistryError::Connect {
            url: url.to_string(),
            host: dialled.clone(),
            reason,
        };
        let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| connect_err("i/o timeout".into()))?
            .map_err(|e| connect_err(format!("connect: {}", os_reason(&e))))?;
        let io: Box<dyn Io> = if https {
            let tls = match &self.tls {
                Some(t) => t.clone(),
                None => tls_connector(Vec::new())?,
            };
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| connect_err(format!("tls: {e}")))?;
            let stream = tokio::time::timeout(IO_TIMEOUT, tls.connect(name, tcp))
                .await
                .map_err(|_| connect_err("tls handshake timeout".into()))?
                .map_err(|e| connect_err(format!("tls: {e}")))?;
            Box::new(stream)
        } else {
            Box::new(tcp)
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| http_err(url, e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "registry connection closed");
            }
        });
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = Request::get(path)
            .header(HOST, authority.as_str())
            .header(ACCEPT, accept)
            .header("user-agent", concat!("berthd/", env!("CARGO_PKG_VERSION")));
        if let Some(token) = token {
            let value =
                HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| http_err(url, e))?;
            request = request.header(AUTHORIZATION, value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| http_err(url, e))?;
        tracing::debug!(url, "registry GET");
        tokio::time::timeout(IO_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| http_err(url, "timeout awaiting response headers"))?
            .map_err(|e| http_err(url, e))
    }

    /// Ask the challenge's realm for a pull token (anonymous).
    async fn fetch_token(&self, params: &HashMap<String, String>) -> RegistryResult<String> {
        let realm = params
            .get("realm")
            .ok_or_else(|| RegistryError::Unsupported("Bearer challenge without realm".into()))?;
        let scope = params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
        let mut query = vec![("scope", scope)];
        if let Some(service) = params.get("service") {
            query.push(("service", service.clone()));
        }
        let query = serde_urlencoded::to_string(&query).map_err(|e| http_err(realm, e))?;
        let url = format!(
            "{realm}{}{query}",
            if realm.contains('?') { '&' } else { '?' }
        );
        let response = self.get_following(&url, "application/json", None).await?;
        if response.status() != StatusCode::OK {
            return Err(self.error(&url, response).await);
        }
        let body = read_small(response, &url, 1 << 20).await?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| http_err(&url, e))?;
        answer
            .token
            .or(answer.access_token)
            .ok_or_else(|| http_err(&url, "token answer without a token"))
    }

    /// An error answer as [`RegistryError::Status`], with the registry's
    /// `{"errors":[{"code","message"}]}` when it sent one.
    async fn error(&self, url: &str, response: Response<Incoming>) -> RegistryError {
        let status = response.status().as_u16();
        let body = read_small(response, url, 64 * 1024)
            .await
            .unwrap_or_default();
        #[derive(serde::Deserialize)]
        struct Errors {
            errors: Vec<ErrorItem>,
        }
        #[derive(serde::Deserialize)]
        struct ErrorItem {
            code: Option<String>,
            message: Option<String>,
        }
        let message = match serde_json::from_slice::<Errors>(&body) {
            Ok(e) => e
                .errors
                .iter()
                .map(|i| {
                    format!(
                        "{}: {}",
                        i.code.as_deref().unwrap_or("UNKNOWN"),
                        i.message.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            Err(_) => String::from_utf8_lossy(&body).trim().to_string(),
        };
        RegistryError::Status {
            url: url.to_string(),
            status,
            message,
        }
    }
}

/// The content type of a response, without parameters.
pub(crate) fn content_type(response: &Response<Incoming>) -> Option<String> {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
}

/// Read a whole response body of at most `limit` bytes.
pub(crate) async fn read_small(
    response: Response<Incoming>,
    url: &str,
    limit: usize,
) -> RegistryResult<Vec<u8>> {
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(frame) = next_frame(&mut body, url).await? {
        out.extend_from_slice(&frame);
        if out.len() > limit {
            return Err(http_err(url, format!("answer larger than {limit} bytes")));
        }
    }
    Ok(out)
}

/// The next data frame of a body (`None` at its end), with a timeout.
pub(crate) async fn next_frame(body: &mut Incoming, url: &str) -> RegistryResult<Option<Bytes>> {
    loop {
        let frame = tokio::time::timeout(IO_TIMEOUT, body.frame())
            .await
            .map_err(|_| http_err(url, "timeout reading the body"))?;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => return Err(http_err(url, e)),
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

pub(crate) fn http_err(url: &str, reason: impl fmt::Display) -> RegistryError {
    RegistryError::Http {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

/// Go's wording for the common connect errors (what docker users see).
fn os_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        _ => e.to_string(),
    }
}

/// Parse `Bearer realm="…",service="…",scope="…"` into its parameters.
pub(crate) fn parse_bearer(header: &str) -> Option<HashMap<String, String>> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(key.trim().to_ascii_lowercase(), value.to_string());
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(params)
}

/// A TLS connector trusting the system's CA bundle and `extra` CAs
/// (rustls, ring). The one without extra CAs is made once.
fn tls_connector(
    extra: Vec<CertificateDer<'static>>,
) -> RegistryResult<tokio_rustls::TlsConnector> {
    static CONNECTOR: std::sync::OnceLock<tokio_rustls::TlsConnector> = std::sync::OnceLock::new();
    if extra.is_empty() {
        if let Some(c) = CONNECTOR.get() {
            return Ok(c.clone());
        }
    }
    let tls_err = |reason: String| RegistryError::Unsupported(format!("TLS setup: {reason}"));
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(CA_BUNDLE)
        .map_err(|e| tls_err(format!("reading {CA_BUNDLE}: {e}")))?;
    for cert in certs.flatten() {
        // A bundle may hold certificates rustls cannot use: skip those.
        let _ = roots.add(cert);
    }
    let own = !extra.is_empty();
    for cert in extra {
        roots
            .add(cert)
            .map_err(|e| tls_err(format!("a registry CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    if own {
        return Ok(connector);
    }
    Ok(CONNECTOR.get_or_init(|| connector).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> RemoteRef {
        s.parse().unwrap()
    }

    #[test]
    fn docker_defaults_and_hosts() {
        assert_eq!(r("busybox").to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r("busybox").familiar(), "busybox:latest");
        assert_eq!(r("me/app:1").to_string(), "docker.io/me/app:1");
        assert_eq!(
            r("index.docker.io/library/busybox").to_string(),
            "docker.io/library/busybox:latest"
        );
        let local = r("127.0.0.1:5000/busybox");
        assert_eq!(
            (local.domain(), local.path(), local.tag()),
            ("127.0.0.1:5000", "busybox", Some("latest"))
        );
        assert_eq!(
            local.store_name().unwrap().to_string(),
            "127.0.0.1:5000/busybox:latest"
        );
        assert_eq!(r("localhost/a/b:v2").familiar(), "localhost/a/b:v2");
        let hex = "a".repeat(64);
        let pinned = r(&format!("quay.io/x/y:1@sha256:{hex}"));
        assert_eq!(pinned.manifest_ref(), format!("sha256:{hex}"));
        assert!(pinned.store_name().is_some());
        let by_digest = r(&format!("busybox@sha256:{hex}"));
        assert_eq!(by_digest.tag(), None);
        assert_eq!(by_digest.store_name(), None);
        assert_eq!(by_digest.familiar(), format!("busybox@sha256:{hex}"));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox@sha256:00",
            "busybox@md5:00",
            "host:99999/x",
            "a//b",
            "x:-t",
        ] {
            let err = bad.parse::<RemoteRef>().unwrap_err();
            assert!(
                matches!(err, RegistryError::InvalidReference { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn plain_http_for_loopback_and_insecure_only() {
        let c = RegistryConfig::new().insecure("lan:5000").insecure("other");
        assert!(c.plain_http("localhost:5000"));
        assert!(c.plain_http("127.0.0.2"));
        assert!(c.plain_http("[::1]:5000"));
        assert!(c.plain_http("lan:5000"));
        assert!(!c.plain_http("lan:5001"));
        assert!(c.plain_http("other:1234"));
        assert!(!c.plain_http("docker.io"));
    }

    #[test]
    fn bearer_challenges_parse() {
        let p = parse_bearer(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/busybox:pull");
        assert!(parse_bearer(r#"Basic realm="x""#).is_none());
        assert_eq!(
            parse_bearer("Bearer realm=plain").unwrap()["realm"],
            "plain"
        );
    }
}
