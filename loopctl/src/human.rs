//! Numbers as people read them: relative times, durations, sizes, money and token counts.

use std::time::{SystemTime, UNIX_EPOCH};

use bytesize::ByteSize;
use jiff::SignedDuration;
use jiff::fmt::friendly::{Designator, Direction, FractionalUnit, SpanPrinter};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How long ago `then_ms` was, seen at `now_ms`, in its largest whole unit: `just now`,
/// `42s ago`, `3m ago`, `5h ago`, `2d ago`.
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    let secs = (now_ms - then_ms).max(0) / 1000;
    if secs < 5 {
        return "just now".to_owned();
    }
    let unit = match secs {
        0..60 => 1,
        60..3600 => 60,
        3600..86_400 => 3600,
        _ => 86_400,
    };
    let whole = SignedDuration::from_secs(-(secs - secs % unit));
    let days = whole.as_secs() / 86_400;
    if days != 0 {
        // jiff's largest unit of a duration is the hour; a day is written by hand.
        return format!("{}d ago", -days);
    }
    printer()
        .direction(Direction::Suffix)
        .duration_to_string(&whole)
}

/// A duration: `850ms`, `4.2s`, `3m 5s`, `2h 7m`.
pub fn duration(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let duration = SignedDuration::from_millis(ms);
    match ms {
        0..1000 => printer().duration_to_string(&duration),
        1000..60_000 => printer()
            .fractional(Some(FractionalUnit::Second))
            .precision(Some(1))
            .duration_to_string(&duration),
        60_000..3_600_000 => printer().duration_to_string(&SignedDuration::from_secs(ms / 1000)),
        _ => printer().duration_to_string(&SignedDuration::from_secs(ms / 60_000 * 60)),
    }
}

fn printer() -> SpanPrinter {
    SpanPrinter::new().designator(Designator::Compact)
}

/// Bytes in binary units, one decimal: `512 B`, `1.5 KiB`, `12.0 MiB`.
pub fn size(bytes: u64) -> String {
    ByteSize(bytes).display().iec().to_string()
}

/// Dollars, to the cent below a hundred: `$0.25`, `$12.50`, `$140`.
pub fn money(usd: f64) -> String {
    if usd >= 100.0 {
        format!("${usd:.0}")
    } else {
        format!("${usd:.2}")
    }
}

/// A token count: `950`, `12.3k`, `1.2M`.
pub fn tokens(n: u64) -> String {
    match n {
        0..1000 => n.to_string(),
        1000..1_000_000 => format!("{:.1}k", n as f64 / 1000.0),
        _ => format!("{:.1}M", n as f64 / 1_000_000.0),
    }
}

/// The first line of `text`, cut to `max` characters, without terminal escapes (a message or
/// a name may come from an agent; a table cell is never `--raw`).
pub fn one_line(text: &str, max: usize) -> String {
    let text = crate::escapes::Sanitizer::default().clean(text);
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max - 1).collect::<String>())
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_as_people_say_them() {
        let now = 10_000_000_000;
        for (then, text) in [
            (now, "just now"),
            (now + 5_000, "just now"),
            (now - 42_000, "42s ago"),
            (now - 3 * 60_000 - 10_000, "3m ago"),
            (now - 5 * 3_600_000 - 59_000, "5h ago"),
            (now - 2 * 86_400_000 - 3_600_000, "2d ago"),
        ] {
            assert_eq!(ago(then, now), text);
        }
    }

    #[test]
    fn durations_sizes_money_and_tokens() {
        for (ms, text) in [
            (850, "850ms"),
            (4_200, "4.2s"),
            (185_000, "3m 5s"),
            (7_620_000, "2h 7m"),
            (7_200_000, "2h"),
        ] {
            assert_eq!(duration(ms), text);
        }
        for (bytes, text) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (5 << 20, "5.0 MiB"),
            (3 << 30, "3.0 GiB"),
        ] {
            assert_eq!(size(bytes), text);
        }
        assert_eq!(money(0.25), "$0.25");
        assert_eq!(money(140.2), "$140");
        assert_eq!(tokens(950), "950");
        assert_eq!(tokens(12_345), "12.3k");
        assert_eq!(tokens(1_200_000), "1.2M");
    }
}
