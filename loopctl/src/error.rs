//! What a failed command says, and under `--json` what it is called: the daemon's own code when
//! the error came from the daemon (`run_not_found`, `illegal_transition`, …), else one of
//! loopctl's, so a script can tell a missing run from a daemon that is down without reading
//! the message.

use std::fmt;

use loop_client::ClientError;

/// An error with a code, for the errors loopctl words itself but whose cause a script may want
/// to tell apart: a daemon refusal reworded (the daemon's code kept), no daemon, no log.
#[derive(Debug)]
pub struct Coded {
    code: String,
    message: String,
}

impl Coded {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Coded {
        Coded {
            code: code.into(),
            message: message.into(),
        }
    }

    /// `message`, under the code `error` carries (`error` when it carries none).
    pub fn like(error: &ClientError, message: impl Into<String>) -> Coded {
        Coded::new(client_code(error), message)
    }
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// The code of a command's error: the first code found along its chain of causes, else `error`.
pub fn code_of(error: &anyhow::Error) -> String {
    error
        .chain()
        .find_map(|cause| {
            if let Some(coded) = cause.downcast_ref::<Coded>() {
                Some(coded.code.clone())
            } else {
                cause.downcast_ref::<ClientError>().map(client_code)
            }
        })
        .unwrap_or_else(|| "error".to_owned())
}

/// The daemon's code for a refusal; for the errors that never reached it, what kind they are.
fn client_code(error: &ClientError) -> String {
    match error {
        ClientError::Unreachable { .. } => "unreachable".to_owned(),
        ClientError::Unreadable { .. } => "unreadable_answer".to_owned(),
        ClientError::Undecodable { .. } => "undecodable_event".to_owned(),
        ClientError::Setup(_) => "client_setup".to_owned(),
        other => match other.code() {
            Some(code) if !code.is_empty() => code.to_owned(),
            _ => format!("http_{}", other.status().unwrap_or(0)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_the_daemons_else_loopctls_else_error() {
        let refused = ClientError::Api {
            status: 409,
            code: "illegal_transition".to_owned(),
            message: "cannot pause a run that is PAUSED".to_owned(),
        };
        assert_eq!(code_of(&anyhow::Error::new(refused)), "illegal_transition");
        let reworded = Coded::new("run_not_found", "no run matches \"x\"");
        assert_eq!(code_of(&anyhow::Error::new(reworded)), "run_not_found");
        let down = ClientError::Unreachable {
            addr: "http://127.0.0.1:1".to_owned(),
            reason: "refused".to_owned(),
        };
        assert_eq!(code_of(&anyhow::Error::new(down)), "unreachable");
        assert_eq!(code_of(&anyhow::anyhow!("plain")), "error");
        let wrapped = anyhow::Error::new(Coded::new("no_event_log", "no log")).context("stats");
        assert_eq!(code_of(&wrapped), "no_event_log");
    }
}
