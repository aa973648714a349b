//! Pulls with progress and registry logins against a Docker Engine API:
//! `POST /images/create` with the caller's credentials in
//! `X-Registry-Auth`, read as Docker's JSON progress lines, and
//! `POST /auth`.

use base64::Engine;
use futures::StreamExt;
use hyper::header::HeaderValue;
use hyper::Method;
use serde::Deserialize;

use super::transport::{body_chunks, json_lines};
use super::{split_reference, status_error, DockerClient, Params};
use crate::types::{BoxStream, PullMessage, RegistryAuth};
use crate::{Error, Result};

/// `X-Registry-Auth`: the credentials as base64url JSON.
fn auth_header(auth: &RegistryAuth) -> Result<HeaderValue> {
    let json = serde_json::to_vec(auth)
        .map_err(|e| Error::bad_request(format!("encoding credentials: {e}")))?;
    HeaderValue::from_str(&base64::engine::general_purpose::URL_SAFE.encode(json))
        .map_err(|e| Error::bad_request(format!("X-Registry-Auth: {e}")))
}

/// One progress line; an `error` line ends the pull with that error.
fn pull_message(item: Result<serde_json::Value>) -> Result<PullMessage> {
    let item = item?;
    if let Some(e) = item.get("error").and_then(|e| e.as_str()) {
        return Err(Error::internal(e.to_string()));
    }
    serde_json::from_value(item)
        .map_err(|e| Error::internal(format!("decoding pull progress: {e}")))
}

impl DockerClient {
    pub(super) async fn pull_progress(
        &self,
        reference: &str,
        auth: Option<RegistryAuth>,
    ) -> Result<BoxStream<Result<PullMessage>>> {
        let (image, tag) = split_reference(reference);
        let mut p: Params = vec![("fromImage", image.to_string())];
        if let Some(t) = tag {
            p.push(("tag", t.to_string()));
        }
        let mut req = self.request(Method::POST, "/images/create", &p, None, false)?;
        if let Some(auth) = &auth {
            req.headers_mut()
                .insert("X-Registry-Auth", auth_header(auth)?);
        }
        let (resp, _) = self.transport.send(req, false).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = self.transport.bytes(resp, None).await?;
            return Err(status_error(status, &body));
        }
        Ok(json_lines::<serde_json::Value>(body_chunks(resp))
            .map(pull_message)
            .boxed())
    }

    pub(super) async fn login(&self, auth: RegistryAuth) -> Result<String> {
        #[derive(Deserialize)]
        struct Reply {
            #[serde(rename = "Status")]
            status: String,
        }
        let body = Self::json_body(&auth)?;
        let reply: Reply = self
            .call_json(Method::POST, "/auth", &[], Some(body))
            .await?;
        Ok(reply.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_travel_as_base64url_json() {
        let auth = RegistryAuth {
            username: "u".into(),
            password: "p?>".into(),
            server_address: "127.0.0.1:5000".into(),
        };
        let h = auth_header(&auth).unwrap();
        let json = base64::engine::general_purpose::URL_SAFE
            .decode(h.to_str().unwrap())
            .unwrap();
        let back: RegistryAuth = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, auth);
    }

    #[test]
    fn error_lines_end_the_pull() {
        let ok = pull_message(Ok(
            serde_json::json!({"status": "Pull complete", "id": "abc"}),
        ));
        assert_eq!(ok.unwrap().id.as_deref(), Some("abc"));
        let e = pull_message(Ok(serde_json::json!({"error": "digest mismatch"}))).unwrap_err();
        assert!(e.message.contains("digest mismatch"));
    }
}
