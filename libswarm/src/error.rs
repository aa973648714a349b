//! The one error type every [`Backend`](crate::Backend) returns.

use std::fmt;

/// What went wrong, in terms every adapter can translate (HTTP status codes,
/// libchan replies, log fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ErrorKind {
    /// The named object does not exist (HTTP 404).
    NotFound,
    /// The request clashes with the current state, e.g. a name in use (HTTP 409).
    Conflict,
    /// Nothing to do: the object is already in the wanted state (HTTP 304).
    NotModified,
    /// The request itself is malformed or names an invalid value (HTTP 400).
    BadRequest,
    /// The backend (or the node holding the object) cannot be reached (HTTP 503).
    Unavailable,
    /// The operation is not supported by this backend (HTTP 501).
    NotImplemented,
    /// Credentials are missing or wrong (HTTP 401).
    Unauthorized,
    /// Anything else (HTTP 500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status code the Docker Engine API uses for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::NotModified => 304,
            ErrorKind::BadRequest => 400,
            ErrorKind::Unavailable => 503,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Internal => 500,
        }
    }

    /// The kind for an HTTP status code (the inverse of [`ErrorKind::http_status`]).
    pub fn from_http_status(status: u16) -> ErrorKind {
        match status {
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            304 => ErrorKind::NotModified,
            400 => ErrorKind::BadRequest,
            503 => ErrorKind::Unavailable,
            501 => ErrorKind::NotImplemented,
            401 => ErrorKind::Unauthorized,
            _ => ErrorKind::Internal,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::NotModified => "not modified",
            ErrorKind::BadRequest => "bad request",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NotImplemented => "not implemented",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Internal => "internal error",
        };
        f.write_str(s)
    }
}

/// An error from a backend: a [`ErrorKind`] and a human-readable message
/// (the text the Docker API puts in `{"message": …}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{message}")]
pub struct Error {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// What happened, for humans.
    pub message: String,
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }
    /// A [`ErrorKind::NotFound`] error.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }
    /// A [`ErrorKind::Conflict`] error.
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Conflict, message)
    }
    /// A [`ErrorKind::NotModified`] error.
    pub fn not_modified(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotModified, message)
    }
    /// A [`ErrorKind::BadRequest`] error.
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::BadRequest, message)
    }
    /// A [`ErrorKind::Unavailable`] error.
    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unavailable, message)
    }
    /// A [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, message)
    }
    /// A [`ErrorKind::NotImplemented`] error naming the operation.
    pub fn not_implemented(operation: &str) -> Error {
        Error::new(
            ErrorKind::NotImplemented,
            format!("{operation} is not implemented by this backend"),
        )
    }
    /// The HTTP status code for this error.
    pub fn http_status(&self) -> u16 {
        self.kind.http_status()
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_http_status() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::NotModified,
            ErrorKind::BadRequest,
            ErrorKind::Unavailable,
            ErrorKind::NotImplemented,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::from_http_status(kind.http_status()), kind);
        }
        assert_eq!(Error::not_found("x").http_status(), 404);
        assert_eq!(Error::conflict("x").http_status(), 409);
        assert_eq!(Error::not_modified("x").http_status(), 304);
        assert_eq!(Error::bad_request("x").http_status(), 400);
        assert_eq!(Error::unavailable("x").http_status(), 503);
        assert_eq!(Error::internal("x").http_status(), 500);
        assert_eq!(ErrorKind::from_http_status(418), ErrorKind::Internal);
    }
}
