//! What went wrong talking to the daemon, in words a person can act on.

use loop_core::Seq;
use loop_core::projection::RunView;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    /// Nothing answered at the address (refused, reset, or cut off mid-stream).
    #[error(
        "no loopd answers at {addr} ({reason}); start it with `loopd --data-dir DIR` (or `loopd \
         --port N` and pass --addr http://127.0.0.1:N)"
    )]
    Unreachable { addr: String, reason: String },
    /// The daemon refused the request: its status, `code` and message.
    #[error("{}", api_message(*status, message))]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// A reference that several runs answer to; they are listed, newest first.
    #[error("{message}")]
    Ambiguous { message: String, runs: Vec<RunView> },
    /// The daemon answered something this client cannot read.
    #[error("cannot read loopd's answer to {what}: {reason}")]
    Unreadable { what: String, reason: String },
    /// An event of the log this daemon could not read; the stream goes on after it.
    #[error("event {seq} cannot be read: {message}")]
    Undecodable { seq: Seq, message: String },
}

impl ClientError {
    /// Whether waiting and trying again may help (the daemon is restarting, or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
            || matches!(self, ClientError::Api { status: 503, code, .. } if code != "store_unavailable")
    }

    /// The daemon's `code` for a refusal (`run_not_found`, `illegal_transition`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            ClientError::Ambiguous { .. } => Some("ambiguous"),
            _ => None,
        }
    }

    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::Ambiguous { .. } => Some(409),
            _ => None,
        }
    }

    pub(crate) fn unreachable(addr: &str, error: &reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            addr: addr.to_owned(),
            reason: innermost(error),
        }
    }

    pub(crate) fn unreadable(what: &str, error: &reqwest::Error) -> ClientError {
        ClientError::Unreadable {
            what: what.to_owned(),
            reason: innermost(error),
        }
    }

    /// The response when it is a success, else the refusal it carries.
    pub(crate) async fn check(
        what: &str,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, ClientError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let text = |key: &str| body.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let message = text("error").unwrap_or_else(|| format!("{what} answered {status}"));
        let code = text("code").unwrap_or_default();
        if code == "ambiguous" {
            let runs = body
                .get("runs")
                .cloned()
                .and_then(|runs| serde_json::from_value(runs).ok())
                .unwrap_or_default();
            return Err(ClientError::Ambiguous { message, runs });
        }
        Err(ClientError::Api {
            status: status.as_u16(),
            code,
            message,
        })
    }
}

/// The daemon's message, with what to do about a refused token.
fn api_message(status: u16, message: &str) -> String {
    if status == 401 {
        format!(
            "loopd refused the request (401): pass its token with --token or LOOPD_TOKEN \
             (LOOPD_AUTH_TOKEN works too): {message}"
        )
    } else {
        message.to_owned()
    }
}

/// The reason of a transport error, short: its innermost cause.
fn innermost(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(inner) = source.source() {
        source = inner;
    }
    source.to_string()
}
