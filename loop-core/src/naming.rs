//! Run names: a short agent call proposes one, and only a well-formed answer is taken.

/// The longest name taken.
pub const MAX_NAME: usize = 64;

/// The prompt of the naming call, from the spec's title and first lines.
pub fn naming_prompt(spec_title: Option<&str>, spec_text: &str) -> String {
    let excerpt: String = spec_text.lines().take(30).collect::<Vec<_>>().join("\n");
    format!(
        "Name a piece of work in two to four lowercase English words joined by hyphens, like \
         `quiet-harbor-lights`. Answer with the name alone on one line, nothing else.\n\n\
         The work is described by this spec{}:\n\n{excerpt}\n",
        spec_title
            .map(|t| format!(" titled \"{t}\""))
            .unwrap_or_default()
    )
}

/// The name in an answer: its last non-empty line, stripped of quotes and markup, when it is
/// two to four ASCII words joined by hyphens and at most [`MAX_NAME`] characters.
pub fn proposed_name(answer: &str) -> Option<String> {
    let line = answer.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let name = line
        .trim_matches(|c: char| matches!(c, '`' | '"' | '\'' | '*' | '.' | ' '))
        .to_ascii_lowercase();
    let words: Vec<&str> = name.split('-').collect();
    let well_formed = (2..=4).contains(&words.len())
        && words.iter().all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    (well_formed && name.len() <= MAX_NAME).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_only_well_formed_names() {
        for (answer, name) in [
            ("quiet-harbor-lights", Some("quiet-harbor-lights")),
            ("Sure!\n\n`Tidy-Otter`\n", Some("tidy-otter")),
            ("one", None),
            ("too-many-words-in-this-name", None),
            ("spaces in-name", None),
            ("naïve-name", None),
            ("", None),
        ] {
            assert_eq!(proposed_name(answer).as_deref(), name, "{answer:?}");
        }
        assert!(
            naming_prompt(Some("Event log"), "# Event log\nBuild it").contains("\"Event log\"")
        );
    }
}
