//! Reaching the daemon: its address, the token to send, and a client once it answers.

use std::time::Duration;

use loop_client::blocking::Client;
use loop_client::{ClientError, Reconnect};
use loop_core::RunId;

use crate::error::Coded;
use crate::output::Output;

/// How long a command waits for `/health` before giving up (`contract.md` §1).
pub const PROBE_FOR: Duration = Duration::from_secs(5);
/// How long a follower keeps trying to reach a daemon that went away (a restart).
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// Where the daemon is and how to authenticate, before anything is sent.
#[derive(Debug)]
pub struct Daemon {
    addr: String,
    token: Option<String>,
    chosen: bool,
}

impl Daemon {
    /// The daemon at `addr`; `chosen` when the person gave the address (`--addr`,
    /// `LOOPD_ADDR`) rather than left the default.
    pub fn new(addr: &str, token: Option<String>, chosen: bool) -> Daemon {
        Daemon {
            addr: addr.to_owned(),
            token,
            chosen,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the address was given rather than the default.
    pub fn chosen(&self) -> bool {
        self.chosen
    }

    /// The token this client sends, if any.
    pub fn token(&self) -> Option<String> {
        self.token.clone()
    }

    /// A client of a daemon that answers `/health` (probed for up to 5 s).
    pub fn connect(&self) -> anyhow::Result<Client> {
        Ok(self.probe(PROBE_FOR)?)
    }

    /// A client of a daemon that answers `/health` within `limit`.
    pub fn probe(&self, limit: Duration) -> Result<Client, ClientError> {
        Client::connect(&self.addr, self.token.clone(), limit)
    }
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

/// A daemon error about run `id`, with the run named (and the daemon's code kept).
pub fn named(error: ClientError, id: RunId) -> anyhow::Error {
    match error.code() {
        Some("run_not_found") => Coded::like(
            &error,
            format!("no run {id}: `loopctl list` shows the runs"),
        )
        .into(),
        Some("illegal_transition") => Coded::like(&error, format!("run {id}: {error}")).into(),
        _ => error.into(),
    }
}

/// `work`, tried again once the daemon answers again when it could not be reached (a
/// restart), saying so on stderr.
pub fn retrying<T>(
    client: &Client,
    out: &Output,
    mut work: impl FnMut() -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    loop {
        match work() {
            Err(error) if error.is_transient() => {
                out.note(&format!(
                    "loopctl: lost loopd at {}; reconnecting…",
                    client.addr()
                ));
                client.wait_until_up(RECONNECT_FOR)?;
                out.note("loopctl: reconnected");
            }
            result => return result,
        }
    }
}

/// What a following stream says on stderr when it loses the daemon and finds it again.
pub fn reconnect_notes(client: &Client) -> impl FnMut(Reconnect) + Send + 'static {
    let addr = client.addr().to_owned();
    move |what| {
        let text = match what {
            Reconnect::Lost { .. } => format!("loopctl: lost loopd at {addr}; reconnecting…"),
            Reconnect::Back => "loopctl: reconnected".to_owned(),
        };
        Output::new(false, false).note(&text);
    }
}
