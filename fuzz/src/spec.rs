//! `spec_header`: the header of a spec ([`loop_core::spec::SpecHeader::parse`]).

use loop_core::spec::SpecHeader;

/// Lines of a spec the header is looked for in (`loop_core::spec`'s own limit).
const HEADER_LINES: usize = 40;

/// Parses arbitrary text as a spec's header and checks what came out.
///
/// Parsing never panics, and:
/// - each field found is non-empty, has no surrounding whitespace, and is found on one of the
///   first 40 lines of the text;
/// - only those lines count: they alone give the same header;
/// - a trailing newline or `\r\n` line endings change nothing.
pub fn spec_header(data: &[u8]) -> SpecHeader {
    let text = crate::text(data);
    let header = SpecHeader::parse(&text);
    let head: Vec<&str> = text.lines().take(HEADER_LINES).collect();
    for (name, field) in [
        ("title", &header.title),
        ("status", &header.status),
        ("last_updated", &header.last_updated),
    ] {
        let Some(value) = field else { continue };
        assert!(!value.is_empty(), "{name} is empty");
        assert_eq!(value.trim(), value, "{name} is not trimmed");
        assert!(
            head.iter().any(|line| line.contains(value.as_str())),
            "{name} {value:?} is on none of the first {HEADER_LINES} lines"
        );
    }

    let head_alone: String = head.iter().map(|line| format!("{line}\n")).collect();
    assert_eq!(
        SpecHeader::parse(&head_alone),
        header,
        "the lines after the first {HEADER_LINES} change the header"
    );
    assert_eq!(
        SpecHeader::parse(&format!("{text}\n")),
        header,
        "a trailing newline changes the header"
    );
    assert_eq!(
        SpecHeader::parse(&text.replace('\n', "\r\n")),
        header,
        "\\r\\n line endings change the header"
    );
    header
}
