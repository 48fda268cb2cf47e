use super::reset::duration_ms;
use super::*;
use jiff::Timestamp;
use jiff::tz::TimeZoneDatabase;

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

/// Issue 24: the wait said "until 22:01" while the reset it quoted read 22:00:45. The reason
/// now names the instant the run tries again (the wait's `until_ms`) beside the reset.
#[test]
fn a_usage_limit_names_its_reset_and_when_it_tries_again() {
    let reset = NOW + 45_000;
    let end = usage_limit(Agent::Claude, Some(reset), None, "limit", NOW);
    let CallEnd::UsageLimit {
        until_ms, reason, ..
    } = end
    else {
        panic!("{end:?}")
    };
    assert_eq!(until_ms, reset + RESET_MARGIN_MS);
    assert!(
        reason.contains(&format!(
            "it resets at {}, so trying again at {} (60s margin)",
            rfc3339_ms(reset),
            rfc3339_ms(until_ms)
        )),
        "{reason}"
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
