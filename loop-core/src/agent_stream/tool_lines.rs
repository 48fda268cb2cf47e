//! What a tool call and its answer look like on one line of a transcript, the same for every
//! agent (`Bash(cargo test)`, `ok … +3 lines`).

/// A tool's answer on one line: its first non-blank line, how many more there are, and
/// whether it was an error.
pub(crate) fn result_summary(text: &str, error: bool) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let first = lines
        .first()
        .map_or_else(|| "(no output)".to_owned(), |line| one_line(line, 100));
    let more = match lines.len() {
        0 | 1 => String::new(),
        n => format!(" … +{} lines", n - 1),
    };
    if error {
        format!("Error: {first}{more}")
    } else {
        format!("{first}{more}")
    }
}

/// `text` on one line, cut to `chars` characters.
pub(crate) fn one_line(text: &str, chars: usize) -> String {
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match words.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &words[..cut]),
        None => words,
    }
}
