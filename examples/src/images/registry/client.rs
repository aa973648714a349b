//! The HTTP side: GETs on fresh HTTP/1.1 connections (plain or TLS),
//! redirects, the Bearer token flow, bounded and timed body reads.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, LOCATION};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::auth::{status_text, Credentials};
use super::config::{tls_connector, unverified_tls_connector, Transport};
use super::{RegistryConfig, RegistryError, RegistryResult, RemoteRef, DOCKER_HUB, IO_TIMEOUT};

/// Where Docker Hub's API actually lives.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// How long to wait for a TCP connection (all of a name's addresses):
/// short enough that an unreachable registry fails before the CLI or its
/// user gives up.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// How long a TLS handshake may take (Go's default, as dockerd).
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A session with one registry repository: base URL, TLS and the token
/// the registry gave us.
pub(crate) struct Registry {
    base: Mutex<String>,
    /// The plain HTTP base an insecure registry falls back to when its
    /// first TLS handshake fails.
    fallback: Mutex<Option<String>>,
    repository: String,
    /// The repository as Docker names it in errors.
    familiar: String,
    tls: Option<tokio_rustls::TlsConnector>,
    credentials: Option<Credentials>,
    /// The `Authorization` value the registry's challenge called for
    /// (`Bearer <token>` or `Basic …`).
    authorization: Mutex<Option<String>>,
}

impl Registry {
    /// A client for `reference`'s registry and repository.
    pub(crate) fn new(reference: &RemoteRef, config: &RegistryConfig) -> RegistryResult<Self> {
        Self::for_domain(
            reference.domain(),
            reference.path(),
            reference.familiar_repo(),
            config,
        )
    }

    /// A client for `repository` (Docker's name for it: `familiar`) at
    /// the registry `domain`.
    pub(crate) fn for_domain(
        domain: &str,
        repository: &str,
        familiar: String,
        config: &RegistryConfig,
    ) -> RegistryResult<Self> {
        let api = if domain == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            domain
        };
        let (tls, fallback) = match config.transport(domain) {
            Transport::Http => (None, None),
            Transport::Https => (Some(tls_connector(config.extra_cas(domain)?)?), None),
            Transport::UnverifiedHttpsThenHttp => (
                Some(unverified_tls_connector()?),
                Some(format!("http://{api}")),
            ),
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(Self {
            base: Mutex::new(format!("{scheme}://{api}")),
            fallback: Mutex::new(fallback),
            repository: repository.to_string(),
            familiar,
            tls,
            credentials: config.credentials_for().cloned(),
            authorization: Mutex::new(None),
        })
    }

    /// `docker login`: `GET /v2/` and, when the registry challenges,
    /// the credentials sent as it asks (Basic, or to its token realm).
    pub(crate) async fn login(&self) -> RegistryResult<()> {
        loop {
            let url = format!("{}/v2/", self.base());
            let response = match self.get_following(&url, "application/json", None).await {
                Err(RegistryError::Connect { ref reason, .. })
                    if reason.starts_with("tls") && self.fall_back() =>
                {
                    continue;
                }
                other => other?,
            };
            let status = response.status();
            if status == StatusCode::OK {
                return Ok(());
            }
            if status != StatusCode::UNAUTHORIZED {
                return Err(RegistryError::LoginFailed {
                    url,
                    status: status_text(status),
                });
            }
            self.answer_challenge(&url, &response).await?;
            let authorization = self.authorization();
            let response = self
                .get_following(&url, "application/json", authorization.as_deref())
                .await?;
            return match response.status() {
                StatusCode::OK => Ok(()),
                other => Err(RegistryError::LoginFailed {
                    url,
                    status: status_text(other),
                }),
            };
        }
    }

    fn authorization(&self) -> Option<String> {
        self.authorization.lock().map(|t| t.clone()).unwrap_or(None)
    }

    /// Set the `Authorization` a `401`'s challenge asks for: a token
    /// from its realm (Bearer), or our credentials (Basic).
    async fn answer_challenge(
        &self,
        url: &str,
        response: &Response<Incoming>,
    ) -> RegistryResult<()> {
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let value = if let Some(params) = parse_bearer(&challenge) {
            format!("Bearer {}", self.fetch_token(&params).await?)
        } else if challenge
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("basic")
        {
            match &self.credentials {
                Some(c) => c.basic(),
                None => {
                    return Err(RegistryError::NoCredentials {
                        url: url.to_string(),
                    })
                }
            }
        } else {
            return Err(RegistryError::Unsupported(format!(
                "{url}: 401 with an unknown challenge {challenge:?}"
            )));
        };
        if let Ok(mut a) = self.authorization.lock() {
            *a = Some(value);
        }
        Ok(())
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
        let mut challenged = false;
        loop {
            let url = format!("{}/v2/{}/{kind}/{reference}", self.base(), self.repository);
            let authorization = self.authorization();
            let response = match self
                .get_following(&url, accept, authorization.as_deref())
                .await
            {
                Err(RegistryError::Connect { ref reason, .. })
                    if reason.starts_with("tls") && self.fall_back() =>
                {
                    continue;
                }
                other => other?,
            };
            // The registry answered: no falling back later.
            if let Ok(mut f) = self.fallback.lock() {
                f.take();
            }
            match response.status() {
                StatusCode::OK => return Ok(response),
                StatusCode::UNAUTHORIZED if !challenged => {
                    challenged = true;
                    match self.answer_challenge(&url, &response).await {
                        Ok(()) => {}
                        Err(RegistryError::Unsupported(_)) => {
                            return Err(self.error(&url, response).await)
                        }
                        Err(e) => return Err(e),
                    }
                }
                StatusCode::NOT_FOUND => {
                    let err = self.error(&url, response).await;
                    return Err(match err {
                        RegistryError::Status { ref message, .. }
                            if message.contains("NAME_UNKNOWN") =>
                        {
                            RegistryError::Denied {
                                repository: self.familiar.clone(),
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
                        repository: self.familiar.clone(),
                        message,
                    });
                }
                _ => return Err(self.error(&url, response).await),
            }
        }
    }

    /// The base URL (`scheme://host[:port]`) requests go to.
    fn base(&self) -> String {
        self.base.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Switch an insecure registry to plain HTTP, once; false when there
    /// is nothing to fall back to.
    fn fall_back(&self) -> bool {
        let Some(http) = self.fallback.lock().ok().and_then(|mut f| f.take()) else {
            return false;
        };
        tracing::debug!(base = %http, "TLS failed; trying the insecure registry over plain HTTP");
        if let Ok(mut b) = self.base.lock() {
            *b = http;
        }
        true
    }

    /// One GET, following up to five redirects (blob storage often sits
    /// elsewhere); `authorization` only goes to the host first asked.
    async fn get_following(
        &self,
        url: &str,
        accept: &str,
        authorization: Option<&str>,
    ) -> RegistryResult<Response<Incoming>> {
        let mut url = url.to_string();
        let mut authorization = authorization;
        let origin = origin_of(&url);
        for _ in 0..5 {
            let response = self.send(&url, accept, authorization).await?;
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
            if origin_of(&next) != origin {
                authorization = None;
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
        authorization: Option<&str>,
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
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
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
            let stream = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.connect(name, tcp))
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
        if let Some(authorization) = authorization {
            let value = HeaderValue::from_str(authorization).map_err(|e| http_err(url, e))?;
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

    /// Ask the challenge's realm for a pull token, with our credentials
    /// when we have some (anonymous otherwise).
    async fn fetch_token(&self, params: &HashMap<String, String>) -> RegistryResult<String> {
        let realm = params
            .get("realm")
            .ok_or_else(|| RegistryError::Unsupported("Bearer challenge without realm".into()))?;
        // A login (no repository) asks for a token without a scope.
        let scope = params.get("scope").cloned().or_else(|| {
            (!self.repository.is_empty()).then(|| format!("repository:{}:pull", self.repository))
        });
        let mut query: Vec<(&str, String)> = scope.map(|s| ("scope", s)).into_iter().collect();
        if let Some(service) = params.get("service") {
            query.push(("service", service.clone()));
        }
        let query = serde_urlencoded::to_string(&query).map_err(|e| http_err(realm, e))?;
        let url = format!(
            "{realm}{}{query}",
            if realm.contains('?') { '&' } else { '?' }
        );
        let basic = self.credentials.as_ref().map(Credentials::basic);
        let response = self
            .get_following(&url, "application/json", basic.as_deref())
            .await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if basic.is_some() => {
                return Err(RegistryError::LoginFailed {
                    url,
                    status: status_text(response.status()),
                })
            }
            // Anonymous and refused: a private repository.
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if !self.repository.is_empty() => {
                let message = match self.error(&url, response).await {
                    RegistryError::Status { message, .. } => message,
                    other => other.to_string(),
                };
                return Err(RegistryError::Denied {
                    repository: self.familiar.clone(),
                    message,
                });
            }
            _ => return Err(self.error(&url, response).await),
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

/// `scheme://authority` of a URL: credentials go to that origin only.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    format!("{scheme}://{authority}")
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

#[cfg(test)]
mod tests {
    use super::*;

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
