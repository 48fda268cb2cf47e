//! Formatting of Unix milliseconds as RFC 3339 UTC text, without reading a clock.

/// `2026-11-25T14:56:04.123Z` for a Unix time in milliseconds (negative times clamp to 1970;
/// times past jiff's range, year 9999, clamp to its end).
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let instant = jiff::Timestamp::from_millisecond(unix_ms.max(0)).unwrap_or(jiff::Timestamp::MAX);
    instant.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Unix milliseconds of an RFC 3339 instant (`2025-11-18T21:55:53.328Z`, any offset); `None`
/// for anything else.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|instant| instant.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::{parse_rfc3339_ms, rfc3339_ms};

    #[test]
    fn parses_what_it_formats_and_offsets() {
        assert_eq!(
            parse_rfc3339_ms("2026-09-21T14:13:20.123Z"),
            Some(1_790_000_000_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-09-21T16:13:20.123+02:00"),
            Some(1_790_000_000_123)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    #[test]
    fn formats_known_instants() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_790_000_000_123, "2026-09-21T14:13:20.123Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(rfc3339_ms(ms), text, "for {ms}");
        }
        assert_eq!(rfc3339_ms(-5), "1970-01-01T00:00:00.000Z");
        assert!(rfc3339_ms(i64::MAX).starts_with("9999-12-"));
    }
}
