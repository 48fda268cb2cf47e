//! The header of a spec file: `# Title`, `**Status:** …`, `**Last Updated:** YYYY-MM-DD`, as the
//! spec picker and run naming read it.

/// What a spec's header says. Missing parts are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecHeader {
    pub title: Option<String>,
    pub status: Option<String>,
    pub last_updated: Option<String>,
}

/// Lines read before giving up on finding the header.
const HEADER_LINES: usize = 40;

impl SpecHeader {
    pub fn parse(text: &str) -> SpecHeader {
        let mut header = SpecHeader::default();
        for line in text.lines().take(HEADER_LINES) {
            let line = line.trim();
            if header.title.is_none()
                && let Some(title) = line.strip_prefix("# ")
            {
                header.title = Some(title.trim().to_owned()).filter(|t| !t.is_empty());
            } else if let Some(value) = field(line, "Status") {
                header.status.get_or_insert(value);
            } else if let Some(value) = field(line, "Last Updated") {
                header.last_updated.get_or_insert(value);
            }
        }
        header
    }
}

/// `**Name:** value` (also `**Name**: value`), case-insensitive on the name.
fn field(line: &str, name: &str) -> Option<String> {
    let rest = line.strip_prefix("**")?;
    let head = rest.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    let rest = &rest[name.len()..];
    let value = rest
        .strip_prefix(":**")
        .or_else(|| rest.strip_prefix("**:"))?
        .trim();
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_title_status_and_date() {
        let header = SpecHeader::parse(
            "# Event log\n\n**Status:** In Progress\n**Last Updated:** 2026-11-25\n\n# Later heading\n",
        );
        assert_eq!(header.title.as_deref(), Some("Event log"));
        assert_eq!(header.status.as_deref(), Some("In Progress"));
        assert_eq!(header.last_updated.as_deref(), Some("2026-11-25"));
    }

    #[test]
    fn missing_parts_are_none() {
        assert_eq!(
            SpecHeader::parse("no header here\n**Status:**\n"),
            SpecHeader::default()
        );
        let header = SpecHeader::parse("**status**: draft");
        assert_eq!(header.status.as_deref(), Some("draft"));
    }
}
