//! The postmortem's analyses: three prompts that ask an agent what happened in a finished run.
//!
//! The prompts are fed from what the run's projections say — `summary.json`, `report.tsv`,
//! `run.log`, the tail of the last implementation step — and from the git snapshots taken when
//! the run ended, never from raw agent streams. Each part is bounded (the end of a long
//! timeline is what matters), so a prompt stays a few tens of kilobytes whatever the run's
//! length. The runtime reads the files and passes their text in; this module only assembles
//! prompts, so `loopctl analyze --prompt-only` prints exactly what would be sent.

use std::fmt::Write as _;

/// The directory of the run directory that holds the postmortem's files.
pub const ANALYSIS_DIR: &str = "analysis";

/// The git snapshots of the run's working tree, in the order they are taken.
pub const GIT_SNAPSHOTS: [&str; 4] = [
    "git-status.txt",
    "git-last-commit.txt",
    "git-last-commit.patch",
    "git-diff.patch",
];

/// Lines of `run.log` a prompt carries (the last ones).
const RUN_LOG_LINES: usize = 300;
/// Rows of `report.tsv` a prompt carries (the last ones), besides the header.
const REPORT_ROWS: usize = 200;
/// Bytes of the last step's tail a prompt carries (its end).
const TAIL_BYTES: usize = 16 * 1024;
/// Bytes of `git status` and of the last commit's summary a prompt carries (their start).
const GIT_TEXT_BYTES: usize = 8 * 1024;
/// Bytes of an earlier analysis the summary carries (its start).
const EARLIER_BYTES: usize = 16 * 1024;

/// One analysis of a postmortem. They run in [`Analysis::ALL`] order, so the summary can read
/// the other two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Analysis {
    /// The implementation against the spec and the plan.
    SpecCompliance,
    /// The run's timeline: anomalies, protocol slips, improvements to prompt and plan.
    RunQuality,
    /// The root cause class, its evidence, and the changes to make.
    Summary,
}

impl Analysis {
    pub const ALL: [Analysis; 3] = [
        Analysis::SpecCompliance,
        Analysis::RunQuality,
        Analysis::Summary,
    ];

    /// The name its files carry: `spec-compliance`, `run-quality`, `summary`.
    pub const fn name(self) -> &'static str {
        match self {
            Analysis::SpecCompliance => "spec-compliance",
            Analysis::RunQuality => "run-quality",
            Analysis::Summary => "summary",
        }
    }

    /// `<name>.prompt.txt`, in [`ANALYSIS_DIR`].
    pub fn prompt_file(self) -> String {
        format!("{}.prompt.txt", self.name())
    }

    /// `<name>.md`, the agent's answer, in [`ANALYSIS_DIR`].
    pub fn answer_file(self) -> String {
        format!("{}.md", self.name())
    }
}

/// What the prompts are built from: the run's projections and snapshots as text, and paths as
/// the agent sees them from its working directory.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inputs<'a> {
    pub run_id: &'a str,
    pub run_name: &'a str,
    /// `COMPLETED`, `FAILED` or `CANCELED`.
    pub status: &'a str,
    /// How it ended in words: `complete_plan`, `claude_failed: <reason>`, ….
    pub ending: &'a str,
    pub spec_path: &'a str,
    pub plan_path: &'a str,
    /// The directory holding the git snapshots (and the analyses).
    pub analysis_dir: &'a str,
    pub summary_json: &'a str,
    pub report_tsv: &'a str,
    pub run_log: &'a str,
    /// The last implementation step's `.tail.txt`, when there is one.
    pub last_tail: Option<&'a str>,
    /// `git-status.txt` and `git-last-commit.txt`.
    pub git_status: &'a str,
    pub git_last_commit: &'a str,
    /// Sizes of the two patches, which are referenced rather than included.
    pub last_commit_patch_bytes: u64,
    pub diff_bytes: u64,
    /// The answers of the analyses that ran before this one (the summary reads them).
    pub earlier: &'a [(Analysis, &'a str)],
}

/// The prompt of `analysis` for the run `inputs` describes.
pub fn prompt(analysis: Analysis, inputs: &Inputs<'_>) -> String {
    let mut text = preamble(inputs);
    match analysis {
        Analysis::SpecCompliance => {
            section(&mut text, "summary.json", "json", inputs.summary_json);
            git_sections(&mut text, inputs);
            text.push_str(SPEC_COMPLIANCE_TASK);
        }
        Analysis::RunQuality => {
            section(&mut text, "summary.json", "json", inputs.summary_json);
            section(
                &mut text,
                "report.tsv (one row per notable event)",
                "tsv",
                &last_rows(inputs.report_tsv, REPORT_ROWS),
            );
            section(
                &mut text,
                "run.log (the timeline, one line per event)",
                "",
                &last_lines(inputs.run_log, RUN_LOG_LINES),
            );
            if let Some(tail) = inputs.last_tail {
                section(
                    &mut text,
                    "The end of the last implementation step's output",
                    "",
                    &last_bytes(tail, TAIL_BYTES),
                );
            }
            text.push_str(RUN_QUALITY_TASK);
        }
        Analysis::Summary => {
            section(&mut text, "summary.json", "json", inputs.summary_json);
            git_sections(&mut text, inputs);
            for other in [Analysis::SpecCompliance, Analysis::RunQuality] {
                let title = format!("The {} analysis", other.name());
                match inputs.earlier.iter().find(|(done, _)| *done == other) {
                    Some((_, answer)) => {
                        section(&mut text, &title, "", &first_bytes(answer, EARLIER_BYTES));
                    }
                    None => {
                        let _ = writeln!(
                            text,
                            "\n## {title}\n\nNot available here; if {}/{} exists, read it.",
                            inputs.analysis_dir,
                            other.answer_file()
                        );
                    }
                }
            }
            text.push_str(SUMMARY_TASK);
        }
    }
    text
}

fn preamble(inputs: &Inputs<'_>) -> String {
    let dir = inputs.analysis_dir;
    format!(
        "You are looking back at a finished run of `loop`, a tool that drives a coding agent \
         through a plan one task per iteration, with a review and a verification after each \
         task.\n\
         \n\
         Run {name} ({id}) ended {status}: {ending}.\n\
         The spec: @{spec}\n\
         The plan: @{plan}\n\
         Snapshots of the run's working tree, taken when it ended, are in {dir}/: \
         git-status.txt, git-last-commit.txt, git-last-commit.patch ({last} bytes) and \
         git-diff.patch ({diff} bytes: everything the run's branch changed since it left its \
         base).\n\
         \n\
         This is a read-only analysis: change no file, run nothing that writes. Base every \
         claim on the material below or on files you read, and say which. Answer in Markdown.\n",
        name = inputs.run_name,
        id = inputs.run_id,
        status = inputs.status,
        ending = inputs.ending,
        spec = inputs.spec_path,
        plan = inputs.plan_path,
        last = inputs.last_commit_patch_bytes,
        diff = inputs.diff_bytes,
    )
}

fn git_sections(text: &mut String, inputs: &Inputs<'_>) {
    section(
        text,
        "git status when the run ended",
        "",
        &first_bytes(inputs.git_status, GIT_TEXT_BYTES),
    );
    section(
        text,
        "The last commit",
        "",
        &first_bytes(inputs.git_last_commit, GIT_TEXT_BYTES),
    );
}

const SPEC_COMPLIANCE_TASK: &str = "\n## Your task: spec compliance\n\n\
Compare what the run built with what the spec and the plan ask for. Read the spec and the plan, \
then the change itself (git-diff.patch; git-last-commit.patch for the last commit alone).\n\
\n\
Answer with these sections:\n\
- `## Verdict`: one line, `compliant`, `partly compliant` or `not compliant`, and why in a \
sentence.\n\
- `## Requirements`: each requirement of the spec and each task of the plan, marked met, partly \
met, not met or not attempted, with the file, test or commit that shows it.\n\
- `## Deviations`: where the implementation departs from the spec, including work nobody asked \
for and tests that are missing.\n\
- `## Plan accuracy`: tasks checked off that are not done, and done work whose box is still \
open.\n";

const RUN_QUALITY_TASK: &str = "\n## Your task: run quality\n\n\
Judge how the run went, from its timeline rather than its code.\n\
\n\
Answer with these sections:\n\
- `## Timeline`: the run in a few lines: iterations, how long they took, what each achieved.\n\
- `## Anomalies`: agent retries, usage-limit waits, watchdog signals, rejected completion \
claims, failed reviews or verifications, steps that were slow or silent; quote the row or line \
that shows each.\n\
- `## Protocol slips`: answers that did not end with `DONE:`, `BLOCKED:` or the completion \
token, iterations that took more than one task, plan boxes changed wrongly, work left \
uncommitted.\n\
- `## Improvements`: concrete changes to the prompt, the plan or the configuration \
(iterations, timeouts, verify_cmds, reviewer) that would have made this run shorter or \
better.\n";

const SUMMARY_TASK: &str = "\n## Your task: the summary\n\n\
Write the postmortem's conclusion, using the analyses above where they exist.\n\
\n\
Answer with these sections:\n\
- `## Outcome`: one paragraph: what the run set out to do, what it delivered, how it ended.\n\
- `## Root cause`: first line exactly one of `spec gap` (the spec or plan was missing, \
ambiguous or wrong), `implementation deviation` (the agent did something other than what was \
asked), `execution failure` (the agent, tools, limits or environment got in the way) or `none` \
(the run did what was asked); then why.\n\
- `## Evidence`: the rows, lines, files or commits that show it.\n\
- `## Changes to make`: a short list, each naming what to change (spec, plan, prompt, config \
or code) and how.\n";

/// Appends `## title` and `body` in a fenced block (a fence longer than any in the body).
fn section(text: &mut String, title: &str, lang: &str, body: &str) {
    let longest = body
        .lines()
        .map(|line| line.len() - line.trim_start_matches('`').len())
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let body = body.trim_end_matches('\n');
    let _ = write!(text, "\n## {title}\n\n{fence}{lang}\n{body}\n{fence}\n");
}

/// The last `n` lines of `text`, with a note of how many were left out.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= n {
        return text.to_owned();
    }
    let left_out = lines.len() - n;
    let mut kept = format!("[{left_out} earlier lines left out]\n");
    for line in &lines[left_out..] {
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

/// The header and the last `n` rows of a TSV file.
fn last_rows(tsv: &str, n: usize) -> String {
    match tsv.split_once('\n') {
        Some((header, rows)) => format!("{header}\n{}", last_lines(rows, n)),
        None => tsv.to_owned(),
    }
}

/// The end of `text`, at most `max` bytes, cut at a line start.
fn last_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = text.len() - max;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    let rest = &text[cut..];
    let rest = rest.split_once('\n').map_or(rest, |(_, after)| after);
    format!(
        "[{} earlier bytes left out]\n{rest}",
        text.len() - rest.len()
    )
}

/// The start of `text`, at most `max` bytes, cut at a character boundary.
fn first_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}\n[{} more bytes left out]\n",
        &text[..cut],
        text.len() - cut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(earlier: &'a [(Analysis, &'a str)]) -> Inputs<'a> {
        Inputs {
            run_id: "0196f3c2-0000-7000-8000-000000000000",
            run_name: "tidy-otter",
            status: "FAILED",
            ending: "claude_failed: overloaded",
            spec_path: "specs/feature.md",
            plan_path: "specs/planning/feature-plan.md",
            analysis_dir: "/repo/logs/loop/run-1/analysis",
            summary_json: "{\"iterations_run\": 3}\n",
            report_tsv: "timestamp_ms\tkind\n1\tRUN_START\n2\tRUN_END\n",
            run_log: "2026 RUN_STARTED\n2026 RUN_FAILED claude_failed\n",
            last_tail: Some("Working on task 3\n"),
            git_status: "## run/feature\n M src/lib.rs\n",
            git_last_commit: "commit abc\n\n    task 2\n",
            last_commit_patch_bytes: 120,
            diff_bytes: 4096,
            earlier,
        }
    }

    #[test]
    fn each_prompt_carries_the_run_and_its_own_material() {
        let earlier = [(Analysis::SpecCompliance, "## Verdict\npartly compliant\n")];
        let inputs = inputs(&earlier);
        let table: [(Analysis, &[&str], &[&str]); 3] = [
            (
                Analysis::SpecCompliance,
                &[
                    "## Verdict",
                    "git-diff.patch (4096 bytes",
                    "M src/lib.rs",
                    "task 2",
                ],
                &["RUN_START", "Working on task 3"],
            ),
            (
                Analysis::RunQuality,
                &[
                    "## Protocol slips",
                    "RUN_START",
                    "RUN_FAILED",
                    "Working on task 3",
                ],
                &["M src/lib.rs"],
            ),
            (
                Analysis::Summary,
                &[
                    "`spec gap`",
                    "`implementation deviation`",
                    "`execution failure`",
                    "partly compliant",
                    "analysis/run-quality.md",
                ],
                &["RUN_START"],
            ),
        ];
        for (analysis, present, absent) in table {
            let text = prompt(analysis, &inputs);
            for part in [
                "tidy-otter",
                "ended FAILED: claude_failed: overloaded",
                // Each reference ends its line: punctuation after it would be read as part of
                // the path, and the file not attached.
                "@specs/feature.md\n",
                "@specs/planning/feature-plan.md\n",
                "read-only",
                "\"iterations_run\": 3",
            ]
            .iter()
            .chain(present)
            {
                assert!(text.contains(part), "{}: missing {part:?}", analysis.name());
            }
            for part in absent {
                assert!(!text.contains(part), "{}: has {part:?}", analysis.name());
            }
        }
    }

    #[test]
    fn long_material_is_cut_to_its_end_or_start() {
        let log: String = (1..=1000).map(|n| format!("line {n}\n")).collect();
        let kept = last_lines(&log, RUN_LOG_LINES);
        assert!(kept.starts_with("[700 earlier lines left out]\nline 701\n"));
        assert!(kept.ends_with("line 1000\n"));

        let tsv = format!("header\n{log}");
        assert!(last_rows(&tsv, 2).starts_with("header\n[998 earlier lines left out]\nline 999"));

        let tail = "é".repeat(20_000);
        let cut = last_bytes(&format!("{tail}\nlast line\n"), 100);
        assert!(cut.ends_with("last line\n"), "{cut}");
        let start = first_bytes(&tail, 101);
        assert!(start.starts_with(&"é".repeat(50)));
        assert!(start.contains("more bytes left out"));
    }

    #[test]
    fn a_fence_inside_the_material_does_not_close_the_section() {
        let mut text = String::new();
        section(&mut text, "t", "", "```rust\nfn main() {}\n```\n");
        assert!(text.contains("\n````\n```rust\n"), "{text}");
        assert!(text.ends_with("```\n````\n"), "{text}");
    }

    #[test]
    fn file_names_follow_the_analysis_name() {
        let names: Vec<(String, String)> = Analysis::ALL
            .iter()
            .map(|a| (a.prompt_file(), a.answer_file()))
            .collect();
        assert_eq!(
            names[2],
            ("summary.prompt.txt".to_owned(), "summary.md".to_owned())
        );
        assert_eq!(
            Analysis::ALL.map(Analysis::name),
            ["spec-compliance", "run-quality", "summary"]
        );
    }
}
