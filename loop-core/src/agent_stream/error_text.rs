//! What an agent's error message says: a usage limit and when it resets, a rate limit, an
//! overloaded or failing server, or a login problem.
//!
//! Only texts already known to be errors come here (an errored `result`, a synthetic API error
//! message, a failed turn, the stderr tail): an answer or a tool's output that merely talks
//! about limits must never stop a run, so the callers decide what is an error, and this module
//! only reads it.

use super::{CallEnd, RESET_MARGIN_MS, UNKNOWN_RESET_WAIT_MS, When};
use crate::time::rfc3339_ms;

mod reset;
#[cfg(test)]
mod tests;

use reset::reset_time;

/// The furthest ahead a usage limit's reset can be: the longest window the agents have is a
/// week, and an hour more allows for a reset said in whole hours and clocks that differ.
pub(super) const MAX_RESET_AHEAD_MS: i64 = 7 * 86_400_000 + 3_600_000;

/// Messages quoted in reasons are cut to this many characters.
const QUOTE_CHARS: usize = 300;

/// Stderr tails kept in reasons are cut to their last this many characters.
const STDERR_CHARS: usize = 2_000;

/// Which agent wrote the text, for the advice in reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Agent {
    Claude,
    Codex,
}

impl Agent {
    fn name(self) -> &'static str {
        match self {
            Agent::Claude => "Claude Code",
            Agent::Codex => "Codex",
        }
    }

    fn login(self) -> &'static str {
        match self {
            Agent::Claude => "run `claude` once and log in",
            Agent::Codex => "run `codex login`",
        }
    }
}

/// What an error text is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Signal {
    /// The usage limit, resetting at this Unix time in milliseconds, if the text says.
    UsageLimit {
        reset_ms: Option<i64>,
    },
    NotLoggedIn,
    /// Credentials refused with this HTTP status (401 or 403).
    Refused(u16),
    RateLimited,
    Overloaded,
    ServerError,
    /// The API could not be reached or the connection broke: refused, reset, timed out.
    Network,
    /// The account has no credit left: no reset will come until a person adds some.
    OutOfCredit,
}

/// What an HTTP status reported by the agent means, if anything in particular.
fn from_status(status: u16) -> Option<Signal> {
    match status {
        401 | 403 => Some(Signal::Refused(status)),
        429 => Some(Signal::RateLimited),
        529 => Some(Signal::Overloaded),
        500..=599 => Some(Signal::ServerError),
        _ => None,
    }
}

/// Reads an error text. A usage limit wins over everything else it may also mention (a 429,
/// say), then a login problem, then the kinds of transient trouble.
pub(super) fn read(text: &str, when: &When) -> Option<Signal> {
    let lower = normalize(text);
    if is_usage_limit(&lower) {
        return Some(Signal::UsageLimit {
            reset_ms: reset_time(&lower, when),
        });
    }
    let any = |needles: &[&str]| needles.iter().any(|needle| lower.contains(needle));
    if any(&[
        "not logged in",
        "/login",
        "invalid api key",
        "codex login",
        "oauth token has expired",
        "oauth token revoked",
        "failed to authenticate",
        "oauth session expired",
    ]) {
        return Some(Signal::NotLoggedIn);
    }
    if any(&[
        "credit balance is too low",
        "billing_error",
        "insufficient_quota",
    ]) {
        return Some(Signal::OutOfCredit);
    }
    if has_code(&lower, "401") || any(&["authentication_error", "unauthorized"]) {
        return Some(Signal::Refused(401));
    }
    if has_code(&lower, "403") || any(&["permission_error", "forbidden", "oauth_org_not_allowed"]) {
        return Some(Signal::Refused(403));
    }
    if has_code(&lower, "429") || any(&["rate_limit_error", "rate limit", "too many requests"]) {
        return Some(Signal::RateLimited);
    }
    // Codex says the last two when its model or service is busy (codex-rs's
    // `InternalServerError` and the capacity refusal): both pass.
    if has_code(&lower, "529")
        || any(&[
            "overloaded",
            "temporarily limiting requests",
            "model is at capacity",
            "experiencing high demand",
        ])
    {
        return Some(Signal::Overloaded);
    }
    if ["500", "502", "503", "504"]
        .iter()
        .any(|code| has_code(&lower, code))
        || any(&[
            "internal server error",
            "service unavailable",
            "bad gateway",
            "\"api_error\"",
        ])
    {
        return Some(Signal::ServerError);
    }
    if any(NETWORK_TROUBLE) {
        return Some(Signal::Network);
    }
    None
}

/// How the agents and their HTTP stacks word a connection that failed or broke (Node's error
/// codes, Bun's, and the CLIs' own sentences).
const NETWORK_TROUBLE: &[&str] = &[
    "connection refused",
    "econnrefused",
    "connection reset",
    "econnreset",
    "socket hang up",
    "fetch failed",
    "failedtoopensocket",
    "failed to open socket",
    "unable to connect",
    "network error",
    "connection error",
    "connection closed",
    "etimedout",
    "timed out",
    "timeout",
    "enotfound",
    "eai_again",
    "getaddrinfo",
    "stream disconnected",
    "error sending request",
];

/// The end a signal gives a call; `text` is the message it came from, quoted in the reason.
pub(super) fn call_end(signal: Signal, agent: Agent, text: &str, now_ms: i64) -> CallEnd {
    let name = agent.name();
    match signal {
        Signal::UsageLimit { reset_ms } => usage_limit(agent, reset_ms, None, text, now_ms),
        Signal::Network => CallEnd::Transient {
            reason: quoting("network error".to_owned(), text),
        },
        Signal::OutOfCredit => CallEnd::Auth {
            reason: quoting(
                format!("{name}'s account is out of credit: add credit or use another account"),
                text,
            ),
        },
        Signal::NotLoggedIn => CallEnd::Auth {
            reason: quoting(format!("{name} is not logged in: {}", agent.login()), text),
        },
        Signal::Refused(401) => CallEnd::Auth {
            reason: quoting(
                format!("{name}'s login was refused (401): {} again", agent.login()),
                text,
            ),
        },
        Signal::Refused(status) => CallEnd::Auth {
            reason: quoting(
                format!("{name} was refused access ({status}): check that its account may use it"),
                text,
            ),
        },
        Signal::RateLimited => CallEnd::Transient {
            reason: quoting("rate limited".to_owned(), text),
        },
        Signal::Overloaded => CallEnd::Transient {
            reason: quoting("overloaded".to_owned(), text),
        },
        Signal::ServerError => CallEnd::Transient {
            reason: quoting("server error".to_owned(), text),
        },
    }
}

/// The end the first telling text gives a call, if any does: a usage limit in any of them
/// first, then the HTTP `status` the agent reported, then the first text with a signal.
pub(super) fn read_all(
    agent: Agent,
    texts: &[&str],
    status: Option<u16>,
    when: &When,
) -> Option<CallEnd> {
    let signals: Vec<(Signal, &str)> = texts
        .iter()
        .filter_map(|text| read(text, when).map(|signal| (signal, *text)))
        .collect();
    let usage_limit = signals
        .iter()
        .find(|(signal, _)| matches!(signal, Signal::UsageLimit { .. }));
    let (signal, text) = match (usage_limit, status.and_then(from_status)) {
        (Some(found), _) => *found,
        (None, Some(signal)) => {
            let text = texts.iter().find(|text| !text.trim().is_empty());
            (signal, text.copied().unwrap_or(""))
        }
        (None, None) => *signals.first()?,
    };
    Some(call_end(signal, agent, text, when.now_ms))
}

/// A process that ended before printing its final event (`event`): crashed, killed, or gone
/// quietly with nothing to show. The reason ends with the stderr tail.
pub(super) fn died_without_final_event(
    agent: Agent,
    event: &str,
    exit_code: Option<i32>,
    stderr_tail: &str,
) -> CallEnd {
    let name = agent.name();
    let head = match exit_code {
        Some(0) => format!("{name} exited without a `{event}` event and without an answer"),
        Some(code) => {
            format!("{name} crashed or was killed before its `{event}` event (exit code {code})")
        }
        None => format!("{name} was killed by a signal before its `{event}` event"),
    };
    let tail = stderr_excerpt(stderr_tail);
    let reason = if tail.is_empty() {
        head
    } else {
        format!("{head}; stderr: {tail}")
    };
    CallEnd::Failed { reason }
}

/// A usage limit resetting at `reset_ms` (or at an unknown time): wait until the reset plus
/// [`RESET_MARGIN_MS`], or [`UNKNOWN_RESET_WAIT_MS`] from now.
pub(super) fn usage_limit(
    agent: Agent,
    reset_ms: Option<i64>,
    window: Option<String>,
    text: &str,
    now_ms: i64,
) -> CallEnd {
    let name = agent.name();
    let (until_ms, head) = match reset_ms {
        // No real window is longer than a week: a reset further away was misread (a message
        // replayed long after it was written, "resets Apr 17, 7pm" read as next April), and
        // waiting for it would hold the account for months.
        Some(reset_ms) if reset_ms > now_ms.saturating_add(MAX_RESET_AHEAD_MS) => {
            let until_ms = now_ms.saturating_add(UNKNOWN_RESET_WAIT_MS);
            let head = format!(
                "{name} usage limit reached; the reset it names ({}) is more than 7 days \
                 away, which no usage window is, so trying again at {}",
                rfc3339_ms(reset_ms),
                rfc3339_ms(until_ms)
            );
            (until_ms, head)
        }
        Some(reset_ms) => {
            let until_ms = reset_ms.max(now_ms).saturating_add(RESET_MARGIN_MS);
            // Both instants, and why they differ: a person reading "until 22:01:45" beside
            // "resets 22:00:45" should not have to guess where the minute came from.
            let head = format!(
                "{name} usage limit reached; it resets at {}, so trying again at {} ({}s margin)",
                rfc3339_ms(reset_ms),
                rfc3339_ms(until_ms),
                RESET_MARGIN_MS / 1000
            );
            (until_ms, head)
        }
        None => {
            let until_ms = now_ms.saturating_add(UNKNOWN_RESET_WAIT_MS);
            let head = format!(
                "{name} usage limit reached; no reset time given, trying again at {}",
                rfc3339_ms(until_ms)
            );
            (until_ms, head)
        }
    };
    CallEnd::UsageLimit {
        until_ms,
        reason: quoting(head, text),
        window,
    }
}

/// `head (the text on one line)`, or `head` alone for an empty text.
pub(super) fn quoting(head: String, text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return head;
    }
    let mut said = words.join(" ");
    if let Some((cut, _)) = said.char_indices().nth(QUOTE_CHARS) {
        said.truncate(cut);
        said.push('…');
    }
    format!("{head} ({said})")
}

/// A stderr tail on one line (its non-blank lines joined with ` | `), cut to its last
/// [`STDERR_CHARS`] characters.
fn stderr_excerpt(stderr_tail: &str) -> String {
    let tail = stderr_tail
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    let count = tail.chars().count();
    match tail.char_indices().nth(count.saturating_sub(STDERR_CHARS)) {
        Some((start, _)) if count > STDERR_CHARS => tail[start..].to_owned(),
        _ => tail,
    }
}

/// Lower case, with typographic apostrophes made plain ("You’ve").
fn normalize(text: &str) -> String {
    text.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'")
}

fn is_usage_limit(lower: &str) -> bool {
    // Claude Code says "Server is temporarily limiting requests (not your usage limit)" when
    // it is overloaded.
    let lower = lower.replace("not your usage limit", "");
    [
        "usage limit reached",
        "usage_limit_reached",
        "reached your usage limit",
        "limit will reset",
        // Claude Code, when the plan's window is used up and so is the extra usage bought
        // beyond it: "You're out of extra usage · resets 7:40pm (America/Chicago)".
        "out of extra usage",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
        || lower.match_indices("hit your ").any(|(at, needle)| {
            lower[at + needle.len()..]
                .split_whitespace()
                .take(3)
                .any(|word| word.starts_with("limit"))
        })
}

/// `code` standing alone as a number: not part of a longer number or an identifier.
fn has_code(lower: &str, code: &str) -> bool {
    let standalone = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    lower.match_indices(code).any(|(at, _)| {
        standalone(lower[..at].chars().next_back())
            && standalone(lower[at + code.len()..].chars().next())
    })
}
