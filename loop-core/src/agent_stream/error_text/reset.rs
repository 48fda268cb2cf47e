//! When a usage limit resets, as the agents write it: an epoch after `limit reached|`, a JSON
//! `resets_at` or `resets_in_seconds`, a clock time with an optional date and zone ("resets
//! 7pm (Europe/Lisbon)", "try again at Sep 22nd, 2026 3:00 AM"), or a duration ("try again in
//! 2 hours").

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZoneDatabase;

use crate::agent_stream::When;

/// A reset time that passed less than this long ago still counts as this reset, not as
/// tomorrow's: the message was written moments before we read it.
const PASSED_TOLERANCE_MS: i64 = 5 * 60_000;

/// When a usage-limit message says the limit resets, as Unix milliseconds.
pub(super) fn reset_time(lower: &str, when: &When) -> Option<i64> {
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
pub(super) fn duration_ms(text: &str) -> Option<i64> {
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
