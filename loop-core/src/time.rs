//! Formatting of Unix milliseconds as RFC 3339 UTC text, without reading a clock.

/// `2026-11-25T14:56:04.123Z` for a Unix time in milliseconds (negative times clamp to 1970;
/// times past jiff's range, year 9999, clamp to its end).
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let instant = jiff::Timestamp::from_millisecond(unix_ms.max(0)).unwrap_or(jiff::Timestamp::MAX);
    // jiff does the calendar; the digits are written here because every folded event formats
    // its time, and `strftime` interprets its pattern on every call.
    let at = jiff::tz::Offset::UTC.to_datetime(instant);
    let mut text = String::with_capacity(24);
    let mut digits = |value: i64, width: usize, after: char| {
        let value = value.unsigned_abs();
        for place in (0..width).rev() {
            let digit = (value / 10u64.pow(place as u32)) % 10;
            text.push(char::from(b'0' + digit as u8));
        }
        text.push(after);
    };
    digits(at.year().into(), 4, '-');
    digits(at.month().into(), 2, '-');
    digits(at.day().into(), 2, 'T');
    digits(at.hour().into(), 2, ':');
    digits(at.minute().into(), 2, ':');
    digits(at.second().into(), 2, '.');
    digits(at.millisecond().into(), 3, 'Z');
    text
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

    proptest::proptest! {
        /// The hand-written digits say what jiff's own formatting says, for any instant.
        #[test]
        fn formats_as_jiff_does(ms in proptest::prelude::any::<i64>()) {
            let instant = jiff::Timestamp::from_millisecond(ms.max(0))
                .unwrap_or(jiff::Timestamp::MAX);
            let expected = instant.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            proptest::prop_assert_eq!(rfc3339_ms(ms), expected);
        }

        #[test]
        fn parses_back_what_it_formats(ms in 0i64..253_402_300_799_999) {
            proptest::prop_assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Some(ms));
        }
    }
}
