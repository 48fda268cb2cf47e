//! `config_parse`: `.loop/config` text ([`loop_core::config::parse`]).

use loop_core::config::{self, ConfigError, Layer, check_value, find_key};

/// The name the input is parsed under, as a file's path would be.
const SOURCE: &str = "fuzz/.loop/config";

/// Parses arbitrary text as a config file and checks what came out.
///
/// Parsing never panics, and:
/// - on `Ok`, every key is a known key ([`find_key`]), every value is already normal (it checks
///   again with [`check_value`] to itself), and writing the layer back as `key=value` lines
///   (quoted where the value needs it) and parsing that gives the same layer;
/// - on `Err`, the error names the input and a line of it (1 to the line count); the lines above
///   that one parse, and that line alone fails the same way, as line 1;
/// - either way, the same text with `\r\n` line endings parses the same.
pub fn config_parse(data: &[u8]) -> Result<Layer, ConfigError> {
    let text = crate::text(data);
    let parsed = config::parse(SOURCE, &text);
    match &parsed {
        Ok(layer) => check_layer(layer),
        Err(error) => check_error(&text, error),
    }
    let crlf = text.replace('\n', "\r\n");
    assert_eq!(
        config::parse(SOURCE, &crlf),
        parsed,
        "\\r\\n line endings parse otherwise\ntext: {text:?}"
    );
    parsed
}

fn check_layer(layer: &Layer) {
    for (name, value) in layer {
        assert!(find_key(name).is_some(), "parsed an unknown key {name:?}");
        match check_value("check", name, value) {
            Ok(again) => assert_eq!(
                &again, value,
                "{name}: a parsed value normalizes again to something else"
            ),
            Err(e) => panic!("{name}: a parsed value does not check: {e}"),
        }
    }
    let rendered = render(layer);
    match config::parse(SOURCE, &rendered) {
        Ok(again) => assert_eq!(
            &again, layer,
            "a layer written back parses otherwise\nwritten: {rendered:?}"
        ),
        Err(e) => panic!("a layer written back does not parse: {e}\nwritten: {rendered:?}"),
    }
}

/// A layer as a config file: `key=value` lines, the value in double quotes when it would not
/// read back as it is (surrounding whitespace, or quotes of its own around it). A list (a value
/// of several lines, as `verify_cmds` is kept) is one line per item, the key repeated.
fn render(layer: &Layer) -> String {
    let mut out = String::new();
    for (name, value) in layer {
        if value.contains('\n') {
            for item in value.lines() {
                out.push_str(&format!("{name}={item}\n"));
            }
            continue;
        }
        let quoted = value.len() >= 2
            && ['"', '\'']
                .iter()
                .any(|q| value.starts_with(*q) && value.ends_with(*q));
        if value.trim() != value || quoted {
            out.push_str(&format!("{name}=\"{value}\"\n"));
        } else {
            out.push_str(&format!("{name}={value}\n"));
        }
    }
    out
}

fn check_error(text: &str, error: &ConfigError) {
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        (1..=lines.len()).contains(&error.line),
        "the error names line {} of {}: {error}",
        error.line,
        lines.len()
    );
    assert_eq!(error.source_name, SOURCE, "the error names another source");
    let prefix = format!("{SOURCE}:{}: {}: ", error.line, error.key);
    assert!(
        error.to_string().starts_with(&prefix),
        "the message does not start with {prefix:?}: {error}"
    );
    assert!(!error.problem.is_empty(), "the error names no problem");

    let above: String = lines[..error.line - 1]
        .iter()
        .map(|line| format!("{line}\n"))
        .collect();
    if let Err(e) = config::parse(SOURCE, &above) {
        panic!(
            "the error is on line {}, but line {} fails: {e}",
            error.line, e.line
        );
    }
    let bad_line = lines[error.line - 1];
    match config::parse(SOURCE, bad_line) {
        Ok(_) => panic!("line {} fails, but not alone: {bad_line:?}", error.line),
        Err(alone) => assert_eq!(
            (alone.line, &alone.key, &alone.problem),
            (1, &error.key, &error.problem),
            "line {} fails otherwise when alone: {bad_line:?}",
            error.line
        ),
    }
}
