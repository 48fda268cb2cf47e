//! The daemon over HTTP: the readiness probe, JSON requests with the bearer token, SSE streams,
//! and errors that say what to do next.

use std::fmt;
use std::io::BufReader;
use std::time::{Duration, Instant};

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::AUTHORIZATION;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::sse::Frames;

/// How long the probe waits for `/health` before giving up (`contract.md` §1).
const PROBE_FOR: Duration = Duration::from_secs(5);
/// The first pause between probes; each one doubles it.
const PROBE_BACKOFF: Duration = Duration::from_millis(200);
/// How long a follower keeps trying to reach a daemon that went away (a restart).
const RECONNECT_FOR: Duration = Duration::from_secs(60);
/// A plain request (not a stream) may take this long: merges run verification commands.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Where the daemon is and how to authenticate, before anything is sent.
#[derive(Debug)]
pub struct Daemon {
    addr: String,
    token: Option<String>,
}

/// The token to send: `--token`/`LOOPD_TOKEN` (`given`), else `LOOPD_AUTH_TOKEN` (the
/// daemon's own variable), else the one a daemon of this account wrote into its data dir
/// (`$LOOPD_DATA_DIR` or the default), when this user can read it.
pub fn find_token(given: Option<String>) -> Option<String> {
    let nonempty = |t: &String| !t.trim().is_empty();
    given
        .filter(nonempty)
        .or_else(|| std::env::var("LOOPD_AUTH_TOKEN").ok().filter(nonempty))
        .or_else(|| {
            let file = loop_runtime::default_data_dir().join("auth-token");
            std::fs::read_to_string(file).ok().filter(nonempty)
        })
        .map(|token| token.trim().to_owned())
}

impl Daemon {
    /// The token this client sends, if any.
    pub fn token(&self) -> Option<String> {
        self.token.clone()
    }

    pub fn new(addr: &str, token: Option<String>) -> Daemon {
        let addr = addr.trim().trim_end_matches('/');
        let addr = if addr.contains("://") {
            addr.to_owned()
        } else {
            format!("http://{addr}")
        };
        Daemon {
            addr,
            token: token.filter(|t| !t.is_empty()),
        }
    }

    /// A client for a daemon that answers `/health` (probed for up to 5 s).
    pub fn connect(&self) -> anyhow::Result<Client> {
        let http = reqwest::blocking::Client::builder()
            // Streams last as long as the run: only connecting is bounded.
            .timeout(None::<Duration>)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|error| anyhow::anyhow!("cannot set up the HTTP client: {error}"))?;
        let client = Client {
            addr: self.addr.clone(),
            token: self.token.clone(),
            http,
        };
        client.probe(PROBE_FOR)?;
        Ok(client)
    }
}

/// A daemon that answered its health probe.
#[derive(Debug)]
pub struct Client {
    addr: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

/// What went wrong talking to the daemon.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing answered at the address (refused, reset, or cut off mid-stream).
    Unreachable { addr: String, reason: String },
    /// The daemon answered with an error document.
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The daemon answered something this client cannot read.
    Unreadable { what: String, reason: String },
}

impl ClientError {
    /// Whether waiting and trying again may help (the daemon is restarting).
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
            || matches!(self, ClientError::Api { status: 503, .. })
    }

    /// The daemon's `code` for an API error (`run_not_found`, `illegal_transition`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { addr, reason } => write!(
                f,
                "no loopd answers at {addr} ({reason}); start it with `loopd --data-dir DIR` \
                 (or `loopd --port N` and pass --addr http://127.0.0.1:N)"
            ),
            ClientError::Api { status: 401, .. } => write!(
                f,
                "loopd refused the request (401): pass its token with --token or LOOPD_TOKEN"
            ),
            ClientError::Api { message, .. } => write!(f, "{message}"),
            ClientError::Unreadable { what, reason } => {
                write!(f, "cannot read loopd's answer to {what}: {reason}")
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// The reason of a transport error, short: the innermost cause.
fn reason(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(inner) = source.source() {
        source = inner;
    }
    source.to_string()
}

impl Client {
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
            None => request,
        }
    }

    fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            addr: self.addr.clone(),
            reason: reason(error),
        }
    }

    /// `GET /health` until it answers 200 or `limit` passes, pausing 200 ms, 400 ms, … between.
    fn probe(&self, limit: Duration) -> Result<(), ClientError> {
        let start = Instant::now();
        let mut pause = PROBE_BACKOFF;
        loop {
            let answer = self
                .http
                .get(self.url("/health"))
                .timeout(Duration::from_secs(2))
                .send();
            let error = match answer {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    return Err(ClientError::Unreachable {
                        addr: self.addr.clone(),
                        reason: format!(
                            "/health answered {}: is it loopd, and is --addr right?",
                            response.status()
                        ),
                    });
                }
                Err(error) => self.unreachable(&error),
            };
            let left = limit.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(error);
            }
            std::thread::sleep(pause.min(left));
            pause *= 2;
        }
    }

    /// Waits for a daemon that went away to answer again (up to a minute).
    pub fn reconnect(&self) -> Result<(), ClientError> {
        self.probe(RECONNECT_FOR)
    }

    fn check(&self, what: &str, response: Response) -> Result<Response, ClientError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: Value = response.json().unwrap_or(Value::Null);
        let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
        Err(ClientError::Api {
            status: status.as_u16(),
            code: text("code").unwrap_or_default(),
            message: text("error").unwrap_or_else(|| format!("{what} answered {status}")),
        })
    }

    fn send(&self, what: &str, request: RequestBuilder) -> Result<Value, ClientError> {
        let response = self
            .authorized(request)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .map_err(|error| self.unreachable(&error))?;
        self.check(what, response)?
            .json()
            .map_err(|error| ClientError::Unreadable {
                what: what.to_owned(),
                reason: reason(&error),
            })
    }

    /// `GET path`, the JSON answer.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(&format!("GET {path}"), self.http.get(self.url(path)))
    }

    /// `POST path` with a JSON body, the JSON answer.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(
            &format!("POST {path}"),
            self.http.post(self.url(path)).json(body),
        )
    }

    /// An SSE stream, resumed after `last_event_id` when given.
    pub fn stream(&self, path: &str, last_event_id: Option<&str>) -> Result<Frames, ClientError> {
        let mut request = self
            .http
            .get(self.url(path))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = self
            .authorized(request)
            .send()
            .map_err(|error| self.unreachable(&error))?;
        let response = self.check(&format!("GET {path}"), response)?;
        Ok(Frames::new(BufReader::new(response)))
    }
}

/// Reads a field of a JSON answer as `T`.
pub fn field<T: DeserializeOwned>(answer: &Value, key: &str) -> anyhow::Result<T> {
    let value = answer
        .get(key)
        .ok_or_else(|| anyhow::anyhow!("loopd's answer has no `{key}`"))?;
    serde_json::from_value(value.clone())
        .map_err(|error| anyhow::anyhow!("cannot read `{key}` in loopd's answer: {error}"))
}
