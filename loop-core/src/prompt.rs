//! The prompts: what the agent is asked to do in an implementation step and in a review step.
//!
//! The runtime reads the files (custom template, notes) and passes their content or paths in;
//! this module only assembles text, so `loopctl prompt` can print exactly what would be sent.

use crate::completion::TOKEN;
use crate::event::{ChangesRequested, DiffSide};
use crate::plan::Task;

/// Everything an implementation prompt is built from.
#[derive(Clone, Copy, Debug, Default)]
pub struct ImplementationInputs<'a> {
    /// Paths as the agent sees them from its working directory.
    pub spec_path: &'a str,
    pub plan_path: &'a str,
    /// A custom template (`prompt_file` or `.loop/prompt.txt`) with `SPEC_PATH`/`PLAN_PATH`
    /// placeholders; `None` for the default prompt.
    pub template: Option<&'a str>,
    /// Extra files to read first, referenced as `@path`.
    pub context_files: &'a [String],
    /// Path of `runner-notes.txt` when the last verification failed.
    pub runner_notes: Option<&'a str>,
    /// Path of `review-notes.txt` when the reviewer asked for changes.
    pub review_notes: Option<&'a str>,
    /// The task this iteration should take.
    pub task: Option<&'a Task>,
    /// What a person asked to change after reviewing the run's work.
    pub changes_requested: Option<&'a ChangesRequested>,
}

/// The `@references` of a prompt that an agent would not resolve: Claude Code reads `@` and
/// every non-blank character after it as the path, so `@specs/plan.md.` or `(@notes.txt)`
/// names a file that does not exist, and the file is silently not attached.
pub fn unresolvable_references(prompt: &str) -> Vec<&str> {
    prompt
        .split_whitespace()
        .filter_map(|word| word.find('@').map(|at| &word[at..]))
        .filter(|reference| {
            reference.len() > 1
                && reference.ends_with(['.', ',', ';', ':', '!', '?', ')', ']', '"', '\'', '`'])
        })
        .collect()
}

/// The implementation prompt for one iteration.
pub fn implementation_prompt(inputs: &ImplementationInputs<'_>) -> String {
    let mut prompt = match inputs.template {
        Some(template) => template
            .replace("SPEC_PATH", inputs.spec_path)
            .replace("PLAN_PATH", inputs.plan_path),
        None => default_prompt(inputs.spec_path, inputs.plan_path),
    };
    if !prompt.ends_with('\n') {
        prompt.push('\n');
    }
    if !inputs.context_files.is_empty() {
        prompt.push_str("\nRead these files for context before you start:\n");
        for path in inputs.context_files {
            prompt.push_str(&format!("@{path}\n"));
        }
    }
    if let Some(notes) = inputs.runner_notes {
        prompt.push_str(&format!(
            "\nVerification failed after the last iteration. The failing commands and their \
             output are in this file:\n@{notes}\nMake them pass before anything else.\n"
        ));
    }
    if let Some(notes) = inputs.review_notes {
        prompt.push_str(&format!(
            "\nThe reviewer asked for changes, listed in this file:\n@{notes}\nAddress every \
             one of them in this iteration.\n"
        ));
    }
    if let Some(requested) = inputs.changes_requested {
        prompt
            .push_str("\nA person reviewed the work on this branch and asked for these changes:\n");
        prompt.push_str(&requested_list(requested));
        prompt.push_str(
            "Make every one of them in this iteration, with tests where they apply, and commit. \
             Leave the plan's boxes as they are.\n",
        );
    }
    if let Some(task) = inputs.task {
        prompt.push_str(&format!(
            "\nThis iteration's task (line {} of the plan): {}\n",
            task.line, task.text
        ));
    }
    prompt
}

/// The person's comments, one `- ` item each (`path, line N: body`, the body's further lines
/// indented under it), then their words about the whole change.
fn requested_list(requested: &ChangesRequested) -> String {
    let mut list = String::new();
    let mut item = |place: String, body: &str| {
        let mut lines = body.trim().lines();
        list.push_str(&format!("- {place}{}\n", lines.next().unwrap_or("")));
        for line in lines {
            list.push_str(&format!("  {line}\n"));
        }
    };
    for comment in &requested.comments {
        let place = match comment.side {
            DiffSide::New => format!("{}, line {}: ", comment.path, comment.line),
            DiffSide::Old => format!(
                "{}, removed line {} (of the base's version): ",
                comment.path, comment.line
            ),
        };
        item(place, &comment.body);
    }
    if let Some(body) = &requested.body {
        item("On the whole change: ".to_owned(), body);
    }
    list
}

fn default_prompt(spec: &str, plan: &str) -> String {
    format!(
        "You are working through a plan, one task per iteration.\n\
         \n\
         Read both of these files first:\n\
         - the spec: @{spec}\n\
         - the plan: @{plan}\n\
         \n\
         In this iteration:\n\
         1. Take exactly one task: the one named below, or else the first unchecked `- [ ]` \
            task of the plan.\n\
         2. Implement it fully, with tests, following the spec. Run the project's checks.\n\
         3. Mark it done in the plan: `- [ ]` becomes `- [x]`. Change no other task's box.\n\
         4. Commit all of it, plan included, in one commit whose message names the task.\n\
         \n\
         If the task cannot be done (a missing decision, access, or dependency), mark it \
         `- [~]`, add an indented note under it saying what is needed, commit, and stop.\n\
         \n\
         Do not start a second task. Do not rewrite the plan's other tasks.\n\
         \n\
         End your answer with exactly one line, the last one:\n\
         - `DONE: <the task, in a few words>` after committing a finished task,\n\
         - `BLOCKED: <what is needed>` after marking a task `[~]`,\n\
         - `{TOKEN}` only when the plan has no `- [ ]` and no `- [~]` task left.\n"
    )
}

/// Everything a review prompt is built from.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReviewInputs<'a> {
    pub spec_path: &'a str,
    pub plan_path: &'a str,
    /// The commit range or ref the reviewer should read, e.g. `HEAD~1..HEAD`.
    pub changes: &'a str,
    pub task: Option<&'a Task>,
    /// What a person asked to change, which this change should have made.
    pub changes_requested: Option<&'a ChangesRequested>,
}

/// The word a reviewer answers with when nothing needs to change.
pub const APPROVED: &str = "APPROVED";

/// The review prompt for the change an implementation step just made.
pub fn review_prompt(inputs: &ReviewInputs<'_>) -> String {
    let mut task = inputs
        .task
        .map(|task| format!("The task was: {}\n\n", task.text))
        .unwrap_or_default();
    if let Some(requested) = inputs.changes_requested {
        task.push_str("The change answers a person's review, which asked for:\n");
        task.push_str(&requested_list(requested));
        task.push_str("Check that each of these is done.\n\n");
    }
    format!(
        "Review the change just made for a task of this plan:\n\
         @{plan}\n\
         The spec it follows:\n\
         @{spec}\n\
         \n\
         {task}Read the change with `git diff {changes}` and `git log -1`. Check that it does \
         what the task asks and the spec requires, that it has tests, that nothing unrelated \
         changed, and that the task's box in the plan is `[x]`.\n\
         \n\
         Do not edit any file.\n\
         \n\
         If the change is right, answer with the single line `{APPROVED}`.\n\
         Otherwise answer with a list of required changes, one `- ` line each, specific enough \
         to act on without you.\n",
        plan = inputs.plan_path,
        spec = inputs.spec_path,
        changes = inputs.changes,
    )
}

/// What a reviewer's answer says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Approved,
    /// The required changes, as the reviewer wrote them.
    ChangesRequired(String),
}

/// Reads a review answer: approved when its last non-empty line is `APPROVED` (markup such as
/// backticks or bold around it is tolerated).
pub fn review_verdict(answer: &str) -> Verdict {
    let last = answer.lines().map(str::trim).rfind(|line| !line.is_empty());
    let approved = last.is_some_and(|line| line.trim_matches(['`', '*', '.', ' ']) == APPROVED);
    if approved {
        Verdict::Approved
    } else {
        Verdict::ChangesRequired(answer.trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Task, TaskState};

    #[test]
    fn default_prompt_names_files_notes_context_and_task() {
        let task = Task {
            line: 7,
            state: TaskState::Pending,
            optional: false,
            text: "write the parser".to_owned(),
            section: None,
            blocking: true,
        };
        let context = ["docs/api.md".to_owned()];
        let prompt = implementation_prompt(&ImplementationInputs {
            spec_path: "specs/a.md",
            plan_path: "specs/planning/a-plan.md",
            context_files: &context,
            runner_notes: Some("logs/loop/run-1/runner-notes.txt"),
            review_notes: Some("logs/loop/run-1/review-notes.txt"),
            task: Some(&task),
            ..ImplementationInputs::default()
        });
        for part in [
            "@specs/a.md",
            "@specs/planning/a-plan.md",
            "@docs/api.md",
            "@logs/loop/run-1/runner-notes.txt",
            "@logs/loop/run-1/review-notes.txt",
            "(line 7 of the plan): write the parser",
            TOKEN,
        ] {
            assert!(prompt.contains(part), "missing {part:?} in\n{prompt}");
        }
    }

    #[test]
    fn no_built_in_prompt_puts_punctuation_right_after_a_reference() {
        let task = Task {
            line: 3,
            state: TaskState::Pending,
            optional: false,
            text: "write the parser".to_owned(),
            section: None,
            blocking: true,
        };
        let context = ["docs/api.md".to_owned(), "docs/design.md".to_owned()];
        let implementation = implementation_prompt(&ImplementationInputs {
            spec_path: "specs/a.md",
            plan_path: "specs/planning/a-plan.md",
            context_files: &context,
            runner_notes: Some("logs/loop/run-1/runner-notes.txt"),
            review_notes: Some("logs/loop/run-1/review-notes.txt"),
            task: Some(&task),
            ..ImplementationInputs::default()
        });
        let review = review_prompt(&ReviewInputs {
            spec_path: "specs/a.md",
            plan_path: "specs/planning/a-plan.md",
            changes: "HEAD~1..HEAD",
            task: Some(&task),
            changes_requested: None,
        });
        for prompt in [&implementation, &review] {
            assert_eq!(
                unresolvable_references(prompt),
                Vec::<&str>::new(),
                "{prompt}"
            );
            assert!(prompt.contains("@specs/planning/a-plan.md\n"), "{prompt}");
        }
    }

    #[test]
    fn requested_changes_reach_the_implementation_and_the_review_prompt() {
        use crate::event::{ChangesRequested, DiffSide, ReviewComment};
        let requested = ChangesRequested {
            comments: vec![
                ReviewComment {
                    path: "calc/ops.py".to_owned(),
                    line: 12,
                    body: "Divide by zero raises, say so.\nAnd test it.".to_owned(),
                    side: DiffSide::New,
                },
                ReviewComment {
                    path: "README.md".to_owned(),
                    line: 3,
                    body: "Keep this line.".to_owned(),
                    side: DiffSide::Old,
                },
            ],
            body: Some("Nice work otherwise.".to_owned()),
        };
        let implementation = implementation_prompt(&ImplementationInputs {
            spec_path: "specs/a.md",
            plan_path: "specs/planning/a-plan.md",
            changes_requested: Some(&requested),
            ..ImplementationInputs::default()
        });
        let review = review_prompt(&ReviewInputs {
            spec_path: "specs/a.md",
            plan_path: "specs/planning/a-plan.md",
            changes: "HEAD~1..HEAD",
            changes_requested: Some(&requested),
            ..ReviewInputs::default()
        });
        let list = "- calc/ops.py, line 12: Divide by zero raises, say so.\n  And test it.\n\
                    - README.md, removed line 3 (of the base's version): Keep this line.\n\
                    - On the whole change: Nice work otherwise.\n";
        for prompt in [&implementation, &review] {
            assert!(prompt.contains(list), "{prompt}");
            assert_eq!(unresolvable_references(prompt), Vec::<&str>::new());
        }
        assert!(implementation.contains("asked for these changes"));
        assert!(review.contains("Check that each of these is done."));
    }

    #[test]
    fn a_reference_ending_in_punctuation_is_unresolvable() {
        assert_eq!(
            unresolvable_references("the plan is @specs/p.md. Read (@notes.txt) and @a.md\n@b, ok"),
            vec!["@specs/p.md.", "@notes.txt)", "@b,"]
        );
        assert!(unresolvable_references("mail me @ noon; user@example.com").is_empty());
    }

    #[test]
    fn a_template_gets_its_placeholders_filled() {
        let prompt = implementation_prompt(&ImplementationInputs {
            spec_path: "s.md",
            plan_path: "p.md",
            template: Some("Do SPEC_PATH by PLAN_PATH"),
            ..ImplementationInputs::default()
        });
        assert_eq!(prompt, "Do s.md by p.md\n");
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            review_verdict("Looks good.\n\nAPPROVED\n"),
            Verdict::Approved
        );
        assert_eq!(review_verdict("**APPROVED**"), Verdict::Approved);
        assert_eq!(
            review_verdict("- add a test\n"),
            Verdict::ChangesRequired("- add a test".to_owned())
        );
        assert!(matches!(
            review_verdict("APPROVED\n- but fix x"),
            Verdict::ChangesRequired(_)
        ));
    }
}
