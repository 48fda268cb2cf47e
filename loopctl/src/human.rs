//! Numbers as people read them: relative times, durations, sizes, money and token counts.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How long ago `then_ms` was, seen at `now_ms`: `just now`, `42 s ago`, `3 min ago`, `5 h ago`,
/// `2 d ago`.
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    let secs = (now_ms - then_ms).max(0) / 1000;
    match secs {
        0..5 => "just now".to_owned(),
        5..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// A duration: `850 ms`, `4.2 s`, `3 min 05 s`, `2 h 07 min`.
pub fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3600, secs % 3600 / 60),
    }
}

/// Bytes in binary units, one decimal: `512 B`, `1.5 KiB`, `12.0 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_as_people_say_them() {
        let now = 10_000_000_000;
        for (then, text) in [
            (now, "just now"),
            (now + 5_000, "just now"),
            (now - 42_000, "42 s ago"),
            (now - 3 * 60_000 - 10_000, "3 min ago"),
            (now - 5 * 3_600_000, "5 h ago"),
            (now - 2 * 86_400_000, "2 d ago"),
        ] {
            assert_eq!(ago(then, now), text);
        }
    }

    #[test]
    fn durations_sizes_money_and_tokens() {
        for (ms, text) in [
            (850, "850 ms"),
            (4_200, "4.2 s"),
            (185_000, "3 min 05 s"),
            (7_620_000, "2 h 07 min"),
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
