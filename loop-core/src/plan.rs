//! The checklist plan: which tasks are pending, done, reviewed or blocked, and which is next.
//!
//! A task is a list item with a box: `- [ ]` pending, `- [x]` done and awaiting review,
//! `- [R]` reviewed, `- [~]` blocked, and `- [ ]?` for an optional task. Boxes inside code
//! fences are not tasks. Boxes under a heading that names verification or manual QA are checks
//! for a person: they are listed but never block completion.

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    Pending,
    /// Done by the agent, awaiting review.
    Done,
    Reviewed,
    Blocked,
}

/// One task of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// 1-based line in the plan file.
    pub line: usize,
    pub state: TaskState,
    pub optional: bool,
    pub text: String,
    /// The nearest heading above the task.
    pub section: Option<String>,
    /// Whether the task counts toward completion (not optional, not a verification check).
    pub blocking: bool,
}

/// A parsed plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub tasks: Vec<Task>,
}

impl Plan {
    pub fn parse(text: &str) -> Plan {
        let mut tasks = Vec::new();
        let mut fence: Option<&str> = None;
        // Headings above the current line: (level, title, is a verification section).
        let mut headings: Vec<(usize, String, bool)> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim_start();
            if let Some(open) = fence {
                if line.starts_with(open) {
                    fence = None;
                }
                continue;
            }
            if line.starts_with("```") {
                fence = Some("```");
                continue;
            }
            if line.starts_with("~~~") {
                fence = Some("~~~");
                continue;
            }
            if let Some((level, title)) = heading(line) {
                headings.retain(|(l, _, _)| *l < level);
                let checks = is_check_section(title);
                headings.push((level, title.to_owned(), checks));
                continue;
            }
            let Some((state, optional, text)) = task(line) else {
                continue;
            };
            let in_checks = headings.iter().any(|(_, _, checks)| *checks);
            tasks.push(Task {
                line: index + 1,
                state,
                optional,
                text: text.to_owned(),
                section: headings.last().map(|(_, title, _)| title.clone()),
                blocking: !optional && !in_checks,
            });
        }
        Plan { tasks }
    }

    fn blocking(&self) -> impl Iterator<Item = &Task> {
        self.tasks.iter().filter(|task| task.blocking)
    }

    /// Tasks that count toward completion.
    pub fn tasks_total(&self) -> u32 {
        self.blocking().count() as u32
    }

    /// Counted tasks that are done or reviewed.
    pub fn tasks_done(&self) -> u32 {
        self.blocking()
            .filter(|task| matches!(task.state, TaskState::Done | TaskState::Reviewed))
            .count() as u32
    }

    /// Counted tasks still to do: pending or blocked.
    pub fn pending(&self) -> impl Iterator<Item = &Task> {
        self.blocking()
            .filter(|task| matches!(task.state, TaskState::Pending | TaskState::Blocked))
    }

    /// Counted tasks done but not yet reviewed.
    pub fn awaiting_review(&self) -> impl Iterator<Item = &Task> {
        self.blocking().filter(|task| task.state == TaskState::Done)
    }

    /// Whether nothing counted is pending or blocked.
    pub fn is_complete(&self) -> bool {
        self.pending().next().is_none()
    }

    /// Tasks still written as a template's placeholder (`<first task: …>`, the way
    /// `loopctl init` writes them): an agent given one would invent the work.
    pub fn placeholders(&self) -> impl Iterator<Item = &Task> {
        self.pending().filter(|task| {
            let text = task.text.trim();
            text.len() > 2
                && text.starts_with('<')
                && text.ends_with('>')
                && !text.starts_with("</")
        })
    }

    /// The task the next iteration should take: the first counted pending one, else the first
    /// optional pending one.
    pub fn next_task(&self) -> Option<&Task> {
        self.blocking()
            .find(|task| task.state == TaskState::Pending)
            .or_else(|| {
                self.tasks
                    .iter()
                    .find(|task| task.optional && task.state == TaskState::Pending)
            })
    }
}

fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|b| *b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some((level, rest.trim().trim_end_matches('#').trim()))
}

fn is_check_section(title: &str) -> bool {
    let title = title.to_ascii_lowercase();
    title.contains("verification") || title.contains("manual qa") || title.contains("manual test")
}

/// `- [x] text`, `* [ ]? text`, `1. [~] text` → (state, optional, text).
fn task(line: &str) -> Option<(TaskState, bool, &str)> {
    let rest = if let Some(rest) = line.strip_prefix(['-', '*', '+']) {
        rest
    } else {
        let digits = line.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        line[digits..].strip_prefix(['.', ')'])?
    };
    let rest = rest.strip_prefix([' ', '\t'])?.trim_start();
    let mut chars = rest.chars();
    if chars.next()? != '[' {
        return None;
    }
    let mark = chars.next()?;
    if chars.next()? != ']' {
        return None;
    }
    let state = match mark {
        ' ' => TaskState::Pending,
        'x' | 'X' => TaskState::Done,
        'R' | 'r' => TaskState::Reviewed,
        '~' => TaskState::Blocked,
        _ => return None,
    };
    let after = &rest[1 + mark.len_utf8() + 1..];
    let (optional, text) = match after.strip_prefix('?') {
        Some(text) => (true, text),
        None => (false, after),
    };
    Some((state, optional, text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "# Plan\n\
        \n\
        ## Tasks\n\
        - [R] set up the crate\n\
        - [x] parse the input\n\
        - [ ] write the output\n\
        - [~] publish (needs a token)\n\
        - [ ]? nice error colours\n\
        1. [ ] numbered task\n\
        \n\
        ```md\n\
        - [ ] not a task: inside a fence\n\
        ```\n\
        \n\
        ## Verification\n\
        - [ ] run it by hand\n\
        ### Details\n\
        - [ ] still a check\n\
        ## After\n\
        * [ ] counted again\n";

    #[test]
    fn a_template_placeholder_is_found_and_written_tasks_are_not() {
        let template = "## Tasks\n- [ ] <first task: the smallest piece>\n- [ ] <second task>\n";
        let found: Vec<usize> = Plan::parse(template)
            .placeholders()
            .map(|t| t.line)
            .collect();
        assert_eq!(found, [2, 3]);
        let written = "## Tasks\n- [ ] render <title> in the header\n- [ ] accept <br> tags\n\
            - [x] <done placeholder>\n";
        assert_eq!(Plan::parse(written).placeholders().count(), 0);
        assert_eq!(Plan::parse(PLAN).placeholders().count(), 0);
    }

    #[test]
    fn reads_every_state_and_section() {
        let plan = Plan::parse(PLAN);
        let states: Vec<(TaskState, bool, bool)> = plan
            .tasks
            .iter()
            .map(|t| (t.state, t.optional, t.blocking))
            .collect();
        use TaskState::*;
        assert_eq!(
            states,
            [
                (Reviewed, false, true),
                (Done, false, true),
                (Pending, false, true),
                (Blocked, false, true),
                (Pending, true, false),
                (Pending, false, true),
                (Pending, false, false),
                (Pending, false, false),
                (Pending, false, true),
            ]
        );
        assert_eq!((plan.tasks_done(), plan.tasks_total()), (2, 6));
        assert_eq!(
            plan.next_task().map(|t| t.text.as_str()),
            Some("write the output")
        );
        assert_eq!(plan.tasks[2].line, 6);
        assert_eq!(plan.tasks[6].section.as_deref(), Some("Verification"));
        assert_eq!(plan.awaiting_review().count(), 1);
        assert!(!plan.is_complete());
    }

    #[test]
    fn a_plan_with_only_checks_and_optional_tasks_left_is_complete() {
        let plan = Plan::parse("- [x] a\n- [R] b\n- [ ]? c\n## Manual QA\n- [ ] try it\n");
        assert!(plan.is_complete());
        assert_eq!(plan.next_task().map(|t| t.text.as_str()), Some("c"));
    }

    #[test]
    fn a_blocked_task_keeps_the_plan_open() {
        assert!(!Plan::parse("- [x] a\n- [~] b\n").is_complete());
    }

    #[test]
    fn things_that_look_like_boxes_are_not_tasks() {
        for line in [
            "[ ] no marker",
            "-[ ] no space",
            "- [?] unknown mark",
            "- [] empty",
            "#heading-not",
        ] {
            assert!(Plan::parse(line).tasks.is_empty(), "{line}");
        }
    }
}
