//! What an agent's error message says: a usage limit and when it resets, a rate limit, an
//! overloaded or failing server, or a login problem.
//!
//! Only texts already known to be errors come here (an errored `result`, a synthetic API error
//! message, a failed turn, the stderr tail): an answer or a tool's output that merely talks
//! about limits must never stop a run, so the callers decide what is an error, and this module
//! only reads it.

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZoneDatabase;

use super::{CallEnd, RESET_MARGIN_MS, UNKNOWN_RESET_WAIT_MS, When};
use crate::time::rfc3339_ms;

/// A reset time that passed less than this long ago still counts as this reset, not as
/// tomorrow's: the message was written moments before we read it.
const PASSED_TOLERANCE_MS: i64 = 5 * 60_000;

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
            let head = format!(
                "{name} usage limit reached; it resets at {}",
                rfc3339_ms(reset_ms)
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

/// When a usage-limit message says the limit resets, as Unix milliseconds.
fn reset_time(lower: &str, when: &When) -> Option<i64> {
    let now_ms = when.now_ms;
    if let Some(reset_ms) = after(lower, "limit reached|").and_then(|rest| epoch(rest).0) {
        return Some(reset_ms);
    }
    // A JSON error body quoted in the text (Codex).
    if let Some(reset_ms) = json_number(lower, "\"resets_at\"").and_then(epoch_ms) {
        return Some(reset_ms);
    }
    if let Some(seconds) = json_number(lower, "\"resets_in_seconds\"") {
        return Some(now_ms.saturating_add(seconds.saturating_mul(1000)));
    }
    for keyword in ["resets ", "reset at ", "try again at "] {
        let found = lower
            .match_indices(keyword)
            .find_map(|(at, _)| clock_time(&lower[at + keyword.len()..], when));
        if found.is_some() {
            return found;
        }
    }
    lower
        .match_indices("try again in ")
        .find_map(|(at, keyword)| {
            duration_ms(&lower[at + keyword.len()..]).map(|ms| now_ms.saturating_add(ms))
        })
}

fn after<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    text.find(needle).map(|at| &text[at + needle.len()..])
}

/// Seconds (or milliseconds, when the number is that large) since the epoch, as milliseconds.
fn epoch_ms(number: i64) -> Option<i64> {
    if number <= 0 {
        None
    } else if number >= 100_000_000_000 {
        Some(number)
    } else {
        number.checked_mul(1000)
    }
}

/// A leading run of digits as an epoch time, and the rest of the text.
fn epoch(text: &str) -> (Option<i64>, &str) {
    let (digits, rest) = split_digits(text);
    (digits.parse().ok().and_then(epoch_ms), rest)
}

fn split_digits(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

/// The integer after `"key":` in a JSON text.
fn json_number(lower: &str, key: &str) -> Option<i64> {
    let rest = after(lower, key)?
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let (digits, _) = split_digits(rest);
    digits.parse().ok()
}

/// `2 days 17 hours 14 minutes`, `3h 20m`, `1.5s`: a duration in milliseconds.
fn duration_ms(text: &str) -> Option<i64> {
    let mut rest = text;
    let mut total = 0.0_f64;
    let mut parts = 0;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        rest = rest.strip_prefix("and ").unwrap_or(rest);
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let Ok(amount) = rest[..end].parse::<f64>() else {
            break;
        };
        let after_number = rest[end..].trim_start();
        let unit_end = after_number
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after_number.len());
        let seconds = match &after_number[..unit_end] {
            "d" | "day" | "days" => 86_400.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "ms" => 0.001,
            _ => break,
        };
        total += amount * seconds;
        parts += 1;
        rest = &after_number[unit_end..];
    }
    let ms = (total * 1000.0).round();
    (parts > 0 && ms.is_finite() && ms < i64::MAX as f64).then_some(ms as i64)
}

/// `9am (America/Chicago)`, `12:50pm (Europe/Paris)`, `Jul 31, 2am (UTC)`, `Sep 25 at 7pm
/// (America/New_York)`: the instant it names, in Unix milliseconds.
///
/// Without a date, the next such wall-clock time after now (one that passed less than
/// [`PASSED_TOLERANCE_MS`] ago still counts); with a month and day, the one of that date
/// nearest to now, or of the year given (`Jul 29th, 2026 1:05 AM`). A time without a zone is
/// the machine's local time ([`When::local`]), which is what the agents print.
fn clock_time(text: &str, when: &When) -> Option<i64> {
    let now_ms = when.now_ms;
    let mut rest = text.trim_start();
    rest = rest.strip_prefix("at ").unwrap_or(rest).trim_start();
    let date = month_day(rest).map(|(date, after)| {
        rest = after;
        date
    });
    let (time, after_time) = clock(rest)?;
    let named = after_time
        .trim_start()
        .strip_prefix('(')
        .and_then(|inside| inside.split_once(')'));
    let zone = match named {
        Some((name, _)) => TimeZoneDatabase::bundled().get(name.trim()).ok()?,
        None => when.local.clone(),
    };
    let now = Timestamp::from_millisecond(now_ms).ok()?;
    let today = zone.to_datetime(now).date();
    let instant = |date: Date| {
        zone.to_timestamp(date.to_datetime(time))
            .ok()
            .map(Timestamp::as_millisecond)
    };
    match date {
        None => {
            let mut date = today;
            for _ in 0..3 {
                let at = instant(date)?;
                if at >= now_ms.saturating_sub(PASSED_TOLERANCE_MS) {
                    return Some(at);
                }
                date = date.tomorrow().ok()?;
            }
            None
        }
        Some(MonthDay {
            year: Some(year),
            month,
            day,
        }) => Date::new(year, month, day).ok().and_then(instant),
        Some(MonthDay {
            year: None,
            month,
            day,
        }) => [today.year() - 1, today.year(), today.year() + 1]
            .into_iter()
            .filter_map(|year| Date::new(year, month, day).ok().and_then(instant))
            .min_by_key(|at| at.abs_diff(now_ms)),
    }
}

/// A date as the agents write it, the year optional.
#[derive(Clone, Copy, Debug)]
struct MonthDay {
    year: Option<i16>,
    month: i8,
    day: i8,
}

/// `sep 25`, `jul 31,`, `september 25 at`, `jul 29th, 2026`: the date, and the text after it.
fn month_day(text: &str) -> Option<(MonthDay, &str)> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let word_end = text
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let word = &text[..word_end];
    let month = MONTHS
        .iter()
        .position(|month| word.len() >= 3 && word.starts_with(month))?;
    let (digits, rest) = split_digits(text[word_end..].trim_start());
    let day: i8 = digits.parse().ok().filter(|day| (1..=31).contains(day))?;
    let rest = ["st", "nd", "rd", "th"]
        .iter()
        .find_map(|suffix| rest.strip_prefix(suffix))
        .unwrap_or(rest);
    let mut rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
    // A four-digit year, then the time: `2026 1:05 am` (not `13:00`, a time).
    let (year_digits, after_year) = split_digits(rest);
    let year = (year_digits.len() == 4 && !after_year.starts_with(':'))
        .then(|| year_digits.parse::<i16>().ok())
        .flatten();
    if year.is_some() {
        rest = after_year.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
    }
    let rest = rest.strip_prefix("at ").unwrap_or(rest);
    let date = MonthDay {
        year,
        month: month as i8 + 1,
        day,
    };
    Some((date, rest))
}

/// `9am`, `12:50pm`, `4:30 am`, `13:00`: a time of day, and the text after it. A bare number
/// is not a time.
fn clock(text: &str) -> Option<(Time, &str)> {
    let (hour, rest) = split_digits(text);
    let hour: i8 = hour.parse().ok()?;
    let (minute, rest) = match rest.strip_prefix(':') {
        Some(rest) => {
            let (minute, rest) = split_digits(rest);
            (Some(minute.parse::<i8>().ok()?), rest)
        }
        None => (None, rest),
    };
    let trimmed = rest.trim_start();
    let (half, rest) = if let Some(rest) = trimmed.strip_prefix("am") {
        (Some(false), rest)
    } else if let Some(rest) = trimmed.strip_prefix("pm") {
        (Some(true), rest)
    } else {
        (None, rest)
    };
    let hour = match half {
        None if minute.is_none() => return None,
        None => hour,
        Some(_) if !(1..=12).contains(&hour) => return None,
        Some(pm) => hour % 12 + if pm { 12 } else { 0 },
    };
    let time = Time::new(hour, minute.unwrap_or(0), 0, 0).ok()?;
    Some((time, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-09-21T14:13:20Z: 15:13 in Lisbon, 09:13 in Chicago, 23:13 in Tokyo.
    const NOW: i64 = 1_790_000_000_000;

    fn reset(text: &str) -> Option<i64> {
        match read(text, &When::utc(NOW)) {
            Some(Signal::UsageLimit { reset_ms }) => reset_ms,
            other => panic!("{text:?} is not a usage limit: {other:?}"),
        }
    }

    fn utc(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn reads_every_usage_limit_wording_and_its_reset() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "Claude AI usage limit reached|1790006400",
                Some("2026-09-21T16:00:00Z"),
            ),
            (
                "Claude usage limit reached. Your limit will reset at 9am (America/Chicago).",
                Some("2026-09-22T14:00:00Z"),
            ),
            (
                "You've hit your limit · resets 1pm (Europe/Lisbon)",
                Some("2026-09-22T12:00:00Z"),
            ),
            (
                "You’ve hit your limit · resets 5pm (Europe/Lisbon)",
                Some("2026-09-21T16:00:00Z"),
            ),
            (
                "You've hit your session limit · resets 4:30pm (Asia/Tokyo)",
                Some("2026-09-22T07:30:00Z"),
            ),
            (
                "You've hit your weekly limit · resets Sep 25 at 7pm (America/New_York)",
                Some("2026-09-25T23:00:00Z"),
            ),
            (
                "You've hit your weekly limit · resets Jan 2, 2am (UTC)",
                Some("2027-01-02T02:00:00Z"),
            ),
            (
                "You've hit your weekly limit · resets Sep 20 at 7pm",
                Some("2026-09-20T19:00:00Z"),
            ),
            // A clock time with no zone is the machine's (UTC here): the next 10pm.
            (
                "You've hit your limit · resets 10pm",
                Some("2026-09-21T22:00:00Z"),
            ),
            ("You've hit your usage limit.", None),
            (
                "You're out of extra usage · resets 7:40pm (America/Chicago)",
                Some("2026-09-22T00:40:00Z"),
            ),
            (
                "You've hit your usage limit. Upgrade to Pro or try again in 2 days 17 hours 14 minutes.",
                Some("2026-09-24T07:27:20Z"),
            ),
            (
                r#"{"error":{"type":"usage_limit_reached","resets_at":1790013600,"resets_in_seconds":13600}}"#,
                Some("2026-09-21T18:00:00Z"),
            ),
            (
                r#"{"error":{"type":"usage_limit_reached","resets_in_seconds":60}}"#,
                Some("2026-09-21T14:14:20Z"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(reset(text), expected.map(utc), "{text}");
        }
    }

    #[test]
    fn a_reset_that_just_passed_is_not_pushed_to_tomorrow() {
        // 14:13:20Z is 15:13:20 in Lisbon: "3:10pm" passed three minutes ago.
        assert_eq!(
            reset("You've hit your limit · resets 3:10pm (Europe/Lisbon)"),
            Some(utc("2026-09-21T14:10:00Z"))
        );
        assert_eq!(
            reset("You've hit your limit · resets 3:05pm (Europe/Lisbon)"),
            Some(utc("2026-09-22T14:05:00Z"))
        );
    }

    #[test]
    fn clock_times_follow_daylight_saving_in_the_named_zone() {
        // 2026-10-25 is the day Lisbon goes back to UTC+0; at 00:30Z it is still summer time.
        let before_change = utc("2026-10-25T00:30:00Z");
        assert_eq!(
            read(
                "You've hit your limit · resets 1pm (Europe/Lisbon)",
                &When::utc(before_change)
            ),
            Some(Signal::UsageLimit {
                reset_ms: Some(utc("2026-10-25T13:00:00Z"))
            })
        );
        // Unknown zone names fall back to nothing rather than guessing.
        assert_eq!(
            reset("You've hit your limit · resets 1pm (Mars/Olympus)"),
            None
        );
    }

    #[test]
    fn tells_transient_trouble_from_login_problems() {
        let cases: &[(&str, Signal)] = &[
            ("Not logged in · Please run /login", Signal::NotLoggedIn),
            ("Invalid API key · Please run /login", Signal::NotLoggedIn),
            (
                r#"API Error: 401 {"type":"error","error":{"type":"authentication_error","message":"OAuth token has expired."}}"#,
                Signal::NotLoggedIn,
            ),
            ("unexpected status 401 Unauthorized", Signal::Refused(401)),
            (
                r#"API Error: 403 {"type":"error","error":{"type":"permission_error"}}"#,
                Signal::Refused(403),
            ),
            ("API Error: Rate limit reached", Signal::RateLimited),
            (
                "API Error: Request rejected (429) · Rate limited",
                Signal::RateLimited,
            ),
            (
                "exceeded retry limit, last status: 429 Too Many Requests",
                Signal::RateLimited,
            ),
            (
                "API Error: Repeated 529 Overloaded errors",
                Signal::Overloaded,
            ),
            (
                "Server is temporarily limiting requests (not your usage limit)",
                Signal::Overloaded,
            ),
            // Codex, as issue 26 quotes it from real calls.
            (
                "Selected model is at capacity. Please try a different model.",
                Signal::Overloaded,
            ),
            (
                "We're currently experiencing high demand, which may cause temporary errors.",
                Signal::Overloaded,
            ),
            (
                r#"API Error: 500 {"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
                Signal::ServerError,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(read(text, &When::utc(NOW)), Some(*expected), "{text}");
        }
        assert_eq!(
            read(
                "API Error: 400 invalid_request_error: prompt is too long",
                &When::utc(NOW)
            ),
            None
        );
        assert_eq!(
            read("request req_011Ce2pP401x failed", &When::utc(NOW)),
            None
        );
    }

    #[test]
    fn a_connection_that_failed_or_broke_is_a_network_error() {
        // The first two as real CLIs printed them (tests/data/agents/real/); the others are
        // composed from the error texts of Node's HTTP stack and the CLIs.
        for text in [
            "API Error: Connection refused — a firewall or proxy may be blocking it (ECONNREFUSED)",
            "API Error: Unable to connect to API (FailedToOpenSocket)",
            "API Error: Connection error.",
            "stream disconnected before completion: error sending request for url (https://chatgpt.com/backend-api/codex/responses)",
            "API Error: socket hang up",
            "TypeError: fetch failed",
            "API Error: Request timed out.",
        ] {
            assert_eq!(read(text, &When::utc(NOW)), Some(Signal::Network), "{text}");
        }
    }

    #[test]
    fn a_dated_reset_without_a_zone_is_read_in_the_machines_zone() {
        // Codex, as printed on a machine in Taipei (UTC+8, no daylight saving).
        let text = "You've hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit https://chatgpt.com/codex/settings/usage to purchase more credits or try again at Jul 29th, 2026 1:05 AM.";
        let taipei = When {
            now_ms: utc("2026-07-24T10:00:00Z"),
            local: TimeZoneDatabase::bundled().get("Asia/Taipei").unwrap(),
        };
        assert_eq!(
            read(text, &taipei),
            Some(Signal::UsageLimit {
                reset_ms: Some(utc("2026-07-28T17:05:00Z"))
            })
        );
        // The same words on a machine whose zone is UTC.
        assert_eq!(
            read(text, &When::utc(utc("2026-07-24T10:00:00Z"))),
            Some(Signal::UsageLimit {
                reset_ms: Some(utc("2026-07-29T01:05:00Z"))
            })
        );
        for (text, at) in [
            (
                "try again at Sep 12th, 2026 10:21 AM.",
                "2026-09-12T10:21:00Z",
            ),
            ("try again at Oct 1st 2026 9:00 PM", "2026-10-01T21:00:00Z"),
            (
                "try again at Nov 22nd, 2026 12:05 AM",
                "2026-11-22T00:05:00Z",
            ),
        ] {
            let limit = format!("You've hit your usage limit. {text}");
            assert_eq!(reset(&limit), Some(utc(at)), "{text}");
        }
    }

    #[test]
    fn durations_come_in_many_spellings() {
        let cases: &[(&str, Option<i64>)] = &[
            (
                "2 days 17 hours 14 minutes.",
                Some(((2 * 24 + 17) * 60 + 14) * 60_000),
            ),
            (
                "5 days, 1 hour and 2 minutes",
                Some(((5 * 24 + 1) * 60 + 2) * 60_000),
            ),
            ("3h 20m", Some(200 * 60_000)),
            ("1.5s", Some(1_500)),
            ("a while", None),
            ("9999999999999999999999 days", None),
        ];
        for (text, expected) in cases {
            assert_eq!(duration_ms(text), *expected, "{text}");
        }
    }

    #[test]
    fn a_reset_more_than_a_week_away_is_not_believed() {
        let week = 7 * 86_400_000;
        let end = usage_limit(Agent::Claude, Some(NOW + 131 * 86_400_000), None, "x", NOW);
        assert!(
            matches!(&end, CallEnd::UsageLimit { until_ms, reason, .. }
                if *until_ms == NOW + UNKNOWN_RESET_WAIT_MS && reason.contains("more than 7 days")),
            "{end:?}"
        );
        // A weekly window resetting in a week is believed.
        let end = usage_limit(Agent::Claude, Some(NOW + week), None, "x", NOW);
        assert!(
            matches!(end, CallEnd::UsageLimit { until_ms, .. } if until_ms == NOW + week + RESET_MARGIN_MS),
            "{end:?}"
        );
    }

    #[test]
    fn reasons_quote_the_message_on_one_short_line() {
        let end = call_end(
            Signal::NotLoggedIn,
            Agent::Claude,
            "Not logged in\n · Please run /login",
            NOW,
        );
        assert_eq!(
            end.reason(),
            "Claude Code is not logged in: run `claude` once and log in (Not logged in · Please run /login)"
        );
        let long = "x".repeat(1_000);
        assert!(quoting("head".into(), &long).chars().count() < QUOTE_CHARS + 10);
        let stderr = format!("{}end\n", "y".repeat(3 * STDERR_CHARS));
        let excerpt = stderr_excerpt(&stderr);
        assert_eq!(excerpt.chars().count(), STDERR_CHARS);
        assert!(excerpt.ends_with("yend"));
        assert_eq!(stderr_excerpt("\n  first\n\nsecond  \n"), "first | second");
    }
}
