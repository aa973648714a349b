//! Request routing: Docker Engine API paths to [`Backend`] calls.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;

use super::hijack::{self, Body};
use super::query::Query;
use crate::models::{
    ExecConfig, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
    VolumeCreateOptions,
};
use crate::types::{
    AttachOptions, ContainerCreateBody, ContainerListOptions, ContainerRemoveOptions,
    EventsOptions, ExecStartOptions, ImageImportOptions, ImageListOptions, ImageRemoveOptions,
    LogsOptions, NetworkListOptions, RegistryAuth, VolumeListOptions, WaitCondition,
};
use crate::{Backend, Error, Result, API_VERSION, MIN_API_VERSION};

/// Largest JSON request body accepted.
const MAX_JSON_BODY: usize = 16 << 20;

pub(crate) async fn handle(
    backend: Arc<dyn Backend>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let on_upgrade = if req.headers().contains_key(hyper::header::UPGRADE) {
        Some(hyper::upgrade::on(&mut req))
    } else {
        None
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut resp = match route(&backend, req, on_upgrade).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::trace!(%method, %path, status = resp.status().as_u16(), "dockerserver request");
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    resp
}

fn error_response(e: &Error) -> Response<Body> {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::NOT_MODIFIED {
        return empty(status);
    }
    json(status, &serde_json::json!({ "message": e.message }))
}

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut v) => {
            v.push(b'\n');
            full(status, "application/json", v)
        }
        Err(e) => full(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            format!("{{\"message\":\"encoding response: {e}\"}}\n"),
        ),
    }
}

fn json_lines<T: Serialize + Send + 'static>(
    stream: crate::BoxStream<Result<T>>,
) -> Response<Body> {
    let bytes = stream
        .map(|item| {
            let mut v = match item {
                Ok(v) => serde_json::to_vec(&v).unwrap_or_default(),
                Err(e) => serde_json::to_vec(&serde_json::json!({ "error": e.message, "errorDetail": { "message": e.message } })).unwrap_or_default(),
            };
            v.push(b'\n');
            Bytes::from(v)
        })
        .boxed();
    let mut resp = Response::new(hijack::stream_body(bytes));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_JSON_BODY);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Error::bad_request(format!("reading request body: {e}")))
}

async fn read_json<T: serde::de::DeserializeOwned + Default>(req: Request<Incoming>) -> Result<T> {
    let body = read_body(req).await?;
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body).map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
}

fn body_stream(req: Request<Incoming>) -> crate::ByteStream {
    let body = req.into_body();
    futures::stream::unfold(body, |mut body| async move {
        loop {
            match body.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => return Some((Ok(data), body)),
                    Err(_) => continue,
                },
                Err(e) => {
                    return Some((
                        Err(Error::bad_request(format!("reading request body: {e}"))),
                        body,
                    ))
                }
            }
        }
    })
    .boxed()
}

/// Splits `/v1.44/containers/x/json` into the version and the rest; checks
/// the version against what the server speaks.
fn strip_version(path: &str) -> Result<&str> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(path);
    };
    let (ver, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let parse = |v: &str| -> Option<(u32, u32)> {
        let (a, b) = v.split_once('.')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let Some(want) = parse(ver) else {
        return Ok(path);
    };
    let max = parse(API_VERSION).unwrap_or((1, 44));
    let min = parse(MIN_API_VERSION).unwrap_or((1, 24));
    if want > max {
        return Err(Error::bad_request(format!(
            "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if want < min {
        return Err(Error::bad_request(format!(
            "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok(tail)
}

fn not_found(method: &Method, path: &str) -> Error {
    Error::not_found(format!("page not found: {method} {path}"))
}

async fn route(
    b: &Arc<dyn Backend>,
    req: Request<Incoming>,
    on_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<Body>> {
    let method = req.method().clone();
    let full_path = req.uri().path().to_string();
    let path = strip_version(&full_path)?.to_string();
    let q = Query::parse(req.uri().query())?;
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let m = &method;

    // Image names contain slashes: /images/{name...}/json, /images/{name...}/tag,
    // DELETE /images/{name...}.
    if segs.first() == Some(&"images") && segs.len() >= 2 {
        match (m, segs.as_slice()) {
            (&Method::GET, ["images", "json"]) => {
                let opts = ImageListOptions {
                    all: q.flag("all"),
                    filters: q.filters()?,
                };
                return Ok(json(StatusCode::OK, &b.image_list(opts).await?));
            }
            (&Method::POST, ["images", "create"]) => return images_create(b, req, &q).await,
            (&Method::POST, ["images", "load"]) => {
                let refs = b.image_load(body_stream(req)).await?;
                let msgs: Vec<Result<serde_json::Value>> = refs
                    .into_iter()
                    .map(|r| {
                        let what = if r.starts_with("sha256:") {
                            "Loaded image ID"
                        } else {
                            "Loaded image"
                        };
                        Ok(serde_json::json!({ "stream": format!("{what}: {r}\n") }))
                    })
                    .collect();
                return Ok(json_lines(futures::stream::iter(msgs).boxed()));
            }
            (&Method::GET, [_, name @ .., "json"]) if !name.is_empty() => {
                let name = name.join("/");
                return Ok(json(StatusCode::OK, &b.image_inspect(&name).await?));
            }
            (&Method::POST, [_, name @ .., "tag"]) if !name.is_empty() => {
                let name = name.join("/");
                let repo = q
                    .get("repo")
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| Error::bad_request("query parameter repo: required"))?;
                let tag = q.get("tag").filter(|t| !t.is_empty());
                b.image_tag(&name, repo, tag).await?;
                return Ok(full(StatusCode::CREATED, "text/plain; charset=utf-8", ""));
            }
            (&Method::DELETE, [_, name @ ..]) => {
                let name = name.join("/");
                let opts = ImageRemoveOptions {
                    force: q.flag("force"),
                    noprune: q.flag("noprune"),
                };
                return Ok(json(StatusCode::OK, &b.image_remove(&name, opts).await?));
            }
            _ => return Err(not_found(m, &full_path)),
        }
    }

    match (m, segs.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => {
            b.ping().await?;
            let mut r = full(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                if m == Method::HEAD { "" } else { "OK" },
            );
            let h = r.headers_mut();
            h.insert(
                "Cache-Control",
                HeaderValue::from_static("no-cache, no-store, must-revalidate"),
            );
            h.insert("Pragma", HeaderValue::from_static("no-cache"));
            h.insert("Swarm", HeaderValue::from_static("inactive"));
            h.insert("Builder-Version", HeaderValue::from_static("1"));
            Ok(r)
        }
        (&Method::POST, ["auth"]) => {
            let auth: RegistryAuth = read_json(req).await?;
            let status = b.registry_login(auth).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "Status": status, "IdentityToken": "" }),
            ))
        }
        (&Method::GET, ["version"]) => Ok(json(StatusCode::OK, &b.version().await?)),
        (&Method::GET, ["info"]) => Ok(json(StatusCode::OK, &b.info().await?)),
        (&Method::GET, ["events"]) => {
            let opts = EventsOptions {
                since: q.time("since")?,
                until: q.time("until")?,
                filters: q.filters()?,
            };
            Ok(json_lines(b.events(opts).await?))
        }

        // ---- containers ----
        (&Method::GET, ["containers", "json"]) => {
            let opts = ContainerListOptions {
                all: q.flag("all"),
                limit: q.int("limit")?.filter(|l| *l > 0).map(|l| l as usize),
                filters: q.filters()?,
            };
            Ok(json(StatusCode::OK, &b.container_list(opts).await?))
        }
        (&Method::POST, ["containers", "create"]) => {
            let name = q.get("name").map(String::from);
            let body: ContainerCreateBody = read_json(req).await?;
            let created = b.container_create(name.as_deref(), body).await?;
            Ok(json(StatusCode::CREATED, &created))
        }
        (&Method::GET, ["containers", id, "json"]) => {
            Ok(json(StatusCode::OK, &b.container_inspect(id).await?))
        }
        (&Method::POST, ["containers", id, "start"]) => {
            b.container_start(id).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["containers", id, "stop"]) => {
            let t = match q.int("t")? {
                Some(t) => Some(t),
                None => q.int("timeout")?,
            };
            b.container_stop(id, t).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["containers", id, "restart"]) => {
            match b.container_stop(id, q.int("t")?).await {
                Ok(()) => {}
                Err(e) if e.kind == crate::ErrorKind::NotModified => {}
                Err(e) => return Err(e),
            }
            b.container_start(id).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["containers", id, "kill"]) => {
            b.container_kill(id, q.get("signal")).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["containers", id, "wait"]) => {
            let cond = WaitCondition::parse(q.get("condition").unwrap_or(""))?;
            let handle = b.container_wait(id, cond).await?;
            // Headers go out now; the body when the condition holds.
            let body = futures::stream::once(async move {
                let v = match handle.exited().await {
                    Ok(r) => serde_json::json!({ "StatusCode": r.status_code, "Error": r.error.map(|e| serde_json::json!({"Message": e.message})) }),
                    Err(e) => serde_json::json!({ "StatusCode": -1, "Error": { "Message": e.message } }),
                };
                let mut v = serde_json::to_vec(&v).unwrap_or_default();
                v.push(b'\n');
                Bytes::from(v)
            })
            .boxed();
            let mut r = Response::new(hijack::stream_body(body));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(r)
        }
        (&Method::DELETE, ["containers", id]) => {
            let opts = ContainerRemoveOptions {
                force: q.flag("force"),
                volumes: q.flag("v"),
            };
            b.container_remove(id, opts).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::GET, ["containers", id, "logs"]) => {
            let tty = b
                .container_inspect(id)
                .await?
                .config
                .and_then(|c| c.tty)
                .unwrap_or(false);
            let tail = match q.get("tail") {
                None | Some("all") | Some("") => None,
                Some(t) => Some(t.parse::<usize>().map_err(|_| {
                    Error::bad_request(format!("query parameter tail: not a number: {t:?}"))
                })?),
            };
            let opts = LogsOptions {
                follow: q.flag("follow"),
                stdout: q.flag("stdout"),
                stderr: q.flag("stderr"),
                since: q.time("since")?,
                until: q.time("until")?,
                timestamps: q.flag("timestamps"),
                tail,
            };
            if !opts.stdout && !opts.stderr {
                return Err(Error::bad_request("you must choose at least one stream"));
            }
            let logs = b.container_logs(id, opts).await?;
            let mut r = Response::new(hijack::stream_body(hijack::framed(logs, tty)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(hijack::content_type(tty)),
            );
            Ok(r)
        }
        (&Method::POST, ["containers", id, "attach"]) => {
            let opts = AttachOptions {
                stdin: q.flag("stdin"),
                stdout: q.flag("stdout"),
                stderr: q.flag("stderr"),
                logs: q.flag("logs"),
                stream: q.flag("stream"),
            };
            let session = b.container_attach(id, opts).await?;
            Ok(hijack::respond(on_upgrade, session))
        }
        (&Method::POST, ["containers", id, "resize"]) => {
            let (h, w) = (q.int("h")?.unwrap_or(0), q.int("w")?.unwrap_or(0));
            b.container_resize(
                id,
                h.clamp(0, u16::MAX as i64) as u16,
                w.clamp(0, u16::MAX as i64) as u16,
            )
            .await?;
            Ok(empty(StatusCode::OK))
        }
        (&Method::GET, ["containers", id, "stats"]) => {
            let stream = q.get("stream").is_none_or(|s| s == "1" || s == "true");
            let stats = b.container_stats(id, stream).await?;
            if stream {
                Ok(json_lines(stats))
            } else {
                let first = stats
                    .into_future()
                    .await
                    .0
                    .ok_or_else(|| Error::internal("no stats sample"))??;
                Ok(json(StatusCode::OK, &first))
            }
        }
        (&Method::GET, ["containers", id, "top"]) => Ok(json(
            StatusCode::OK,
            &b.container_top(id, q.get("ps_args")).await?,
        )),
        (&Method::POST, ["containers", id, "exec"]) => {
            let id = id.to_string();
            let config: ExecConfig = read_json(req).await?;
            let exec_id = b.exec_create(&id, config).await?;
            Ok(json(
                StatusCode::CREATED,
                &serde_json::json!({ "Id": exec_id }),
            ))
        }

        // ---- exec ----
        (&Method::POST, ["exec", id, "start"]) => {
            let id = id.to_string();
            #[derive(serde::Deserialize, Default)]
            struct Start {
                #[serde(rename = "Detach", default)]
                detach: bool,
                #[serde(rename = "Tty", default)]
                tty: bool,
            }
            let s: Start = read_json(req).await?;
            let session = b
                .exec_start(
                    &id,
                    ExecStartOptions {
                        detach: s.detach,
                        tty: s.tty,
                    },
                )
                .await?;
            if s.detach {
                return Ok(empty(StatusCode::OK));
            }
            Ok(hijack::respond(on_upgrade, session))
        }
        (&Method::GET, ["exec", id, "json"]) => {
            Ok(json(StatusCode::OK, &b.exec_inspect(id).await?))
        }
        (&Method::POST, ["exec", id, "resize"]) => {
            let (h, w) = (q.int("h")?.unwrap_or(0), q.int("w")?.unwrap_or(0));
            b.exec_resize(
                id,
                h.clamp(0, u16::MAX as i64) as u16,
                w.clamp(0, u16::MAX as i64) as u16,
            )
            .await?;
            Ok(empty(StatusCode::OK))
        }

        // ---- networks ----
        (&Method::GET, ["networks"]) => {
            let opts = NetworkListOptions {
                filters: q.filters()?,
            };
            Ok(json(StatusCode::OK, &b.network_list(opts).await?))
        }
        (&Method::POST, ["networks", "create"]) => {
            let r: NetworkCreateRequest = read_json(req).await?;
            Ok(json(StatusCode::CREATED, &b.network_create(r).await?))
        }
        (&Method::GET, ["networks", id]) => Ok(json(StatusCode::OK, &b.network_inspect(id).await?)),
        (&Method::DELETE, ["networks", id]) => {
            b.network_remove(id).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["networks", id, "connect"]) => {
            let id = id.to_string();
            let r: NetworkConnectRequest = read_json(req).await?;
            let container = r
                .container
                .ok_or_else(|| Error::bad_request("Container: missing"))?;
            b.network_connect(&id, &container, r.endpoint_config)
                .await?;
            Ok(empty(StatusCode::OK))
        }
        (&Method::POST, ["networks", id, "disconnect"]) => {
            let id = id.to_string();
            let r: NetworkDisconnectRequest = read_json(req).await?;
            let container = r
                .container
                .ok_or_else(|| Error::bad_request("Container: missing"))?;
            b.network_disconnect(&id, &container, r.force.unwrap_or(false))
                .await?;
            Ok(empty(StatusCode::OK))
        }

        // ---- volumes ----
        (&Method::GET, ["volumes"]) => {
            let opts = VolumeListOptions {
                filters: q.filters()?,
            };
            Ok(json(StatusCode::OK, &b.volume_list(opts).await?))
        }
        (&Method::POST, ["volumes", "prune"]) => {
            Ok(json(StatusCode::OK, &b.volume_prune(q.filters()?).await?))
        }
        (&Method::POST, ["volumes", "create"]) => {
            let o: VolumeCreateOptions = read_json(req).await?;
            Ok(json(StatusCode::CREATED, &b.volume_create(o).await?))
        }
        (&Method::GET, ["volumes", name]) => {
            Ok(json(StatusCode::OK, &b.volume_inspect(name).await?))
        }
        (&Method::DELETE, ["volumes", name]) => {
            b.volume_remove(name, q.flag("force")).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }

        _ => Err(not_found(m, &full_path)),
    }
}

async fn images_create(
    b: &Arc<dyn Backend>,
    req: Request<Incoming>,
    q: &Query,
) -> Result<Response<Body>> {
    if let Some(src) = q.get("fromSrc") {
        if src != "-" {
            return Err(Error::bad_request(
                "fromSrc: only \"-\" (the request body) is supported",
            ));
        }
        let opts = ImageImportOptions {
            repo: q.get("repo").map(String::from),
            tag: q.get("tag").map(String::from),
            changes: q.get_all("changes"),
            message: q.get("message").map(String::from),
        };
        let id = b.image_import(body_stream(req), opts).await?;
        let msgs: Vec<Result<serde_json::Value>> = vec![Ok(serde_json::json!({ "status": id }))];
        return Ok(json_lines(futures::stream::iter(msgs).boxed()));
    }
    let Some(image) = q.get("fromImage").filter(|i| !i.is_empty()) else {
        return Err(Error::bad_request("fromImage or fromSrc: one is required"));
    };
    let reference = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(tag) if tag.starts_with("sha256:") => format!("{image}@{tag}"),
        Some(tag) => format!("{image}:{tag}"),
        None => image.to_string(),
    };
    let auth = registry_auth_header(&req)?;
    let mut progress = b.image_pull_progress(&reference, auth).await?;
    // Like dockerd: a pull that fails before its first line (an unknown
    // manifest, an unreachable registry) is the request's error status;
    // a later failure is an error line in the stream.
    let first = match progress.next().await {
        Some(first) => first?,
        None => return Ok(json_lines(progress)),
    };
    Ok(json_lines(
        futures::stream::iter([Ok(first)]).chain(progress).boxed(),
    ))
}

/// The credentials of an `X-Registry-Auth` header: base64url JSON
/// (padded or not). An empty object, as the CLI sends without a login,
/// is no credentials.
fn registry_auth_header(req: &Request<Incoming>) -> Result<Option<RegistryAuth>> {
    let Some(value) = req.headers().get("x-registry-auth") else {
        return Ok(None);
    };
    parse_registry_auth(value.as_bytes())
}

fn parse_registry_auth(value: &[u8]) -> Result<Option<RegistryAuth>> {
    use base64::Engine;
    let bad = |e: &dyn std::fmt::Display| Error::bad_request(format!("X-Registry-Auth: {e}"));
    let text: Vec<u8> = value
        .iter()
        .copied()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(|c| match c {
            b'+' => b'-',
            b'/' => b'_',
            c => c,
        })
        .collect();
    if text.is_empty() {
        return Ok(None);
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&text)
        .map_err(|e| bad(&e))?;
    let auth: RegistryAuth = serde_json::from_slice(&json).map_err(|e| bad(&e))?;
    Ok((!auth.username.is_empty() || !auth.password.is_empty()).then_some(auth))
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_auth_headers_decode() {
        use base64::Engine;
        let json = br#"{"username":"u","password":"p?>","serveraddress":"h:5000"}"#;
        let url = base64::engine::general_purpose::URL_SAFE.encode(json);
        let auth = parse_registry_auth(url.as_bytes()).unwrap().unwrap();
        assert_eq!(
            (auth.username.as_str(), auth.password.as_str()),
            ("u", "p?>")
        );
        assert_eq!(auth.server_address, "h:5000");
        let std = base64::engine::general_purpose::STANDARD.encode(json);
        assert_eq!(parse_registry_auth(std.as_bytes()).unwrap().unwrap(), auth);
        assert_eq!(parse_registry_auth(b"e30=").unwrap(), None);
        let e = parse_registry_auth(b"!!").unwrap_err();
        assert!(e.message.contains("X-Registry-Auth"));
    }

    use super::*;

    #[test]
    fn versions_in_paths_are_checked() {
        assert_eq!(
            strip_version("/v1.44/containers/json").unwrap(),
            "/containers/json"
        );
        assert_eq!(strip_version("/v1.24/_ping").unwrap(), "/_ping");
        assert_eq!(
            strip_version("/containers/json").unwrap(),
            "/containers/json"
        );
        assert_eq!(strip_version("/volumes").unwrap(), "/volumes");
        let e = strip_version("/v1.45/info").unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::BadRequest);
        assert!(e.message.contains("too new"));
        assert!(strip_version("/v1.12/info")
            .unwrap_err()
            .message
            .contains("too old"));
    }
}
