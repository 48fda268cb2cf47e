//! The review desk on a real-looking project (`testkit/projects/wordfreq`, a Python package
//! and an agent that does its four tasks for real): the diff exactly as the patch has it, in
//! both layouts; comments on its lines and *Request changes*, which send the run back to work;
//! every step of the run in Output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::browser::{Browser, needs_browser};
use super::{PATIENCE, create, run};
use crate::support::{Daemon, get_json, start_daemon, stub, wait_for_end};

/// The wordfreq project at `dir/wordfreq`, and a run body for it: the wordfreq agent, a
/// review after each implementation, the project's tests as verification, a run branch in a
/// worktree of its own.
pub fn wordfreq(dir: &Path, extra: Value) -> (PathBuf, Value) {
    let repo = loop_testkit::projects::wordfreq(dir.join("wordfreq"));
    let mut config = json!({
        "agent": "command",
        "agent_cmd": stub("wordfreq.sh"),
        "reviewer": true,
        "postmortem": false,
        "run_naming_mode": "spec_slug",
        "verify_cmds": loop_testkit::projects::WORDFREQ_VERIFY,
    });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            config.insert(key.clone(), value.clone());
        }
    }
    let body = json!({
        "spec_path": loop_testkit::projects::WORDFREQ_SPEC,
        "workspace_root": repo,
        "worktree_provider": "git",
        "config": config,
    });
    (repo, body)
}

/// The lines of a patch as the review shows them: from its first hunk on.
fn hunk_lines(patch: &str) -> Vec<String> {
    patch
        .lines()
        .skip_while(|line| !line.starts_with("@@"))
        .map(str::to_owned)
        .collect()
}

/// Each file's lines in the base (`old`) and the run's branch (`new`), by number, as the patch
/// says.
pub fn numbered(patch: &str) -> (BTreeMap<u64, String>, BTreeMap<u64, String>) {
    let (mut old, mut new) = (BTreeMap::new(), BTreeMap::new());
    let (mut o, mut n) = (0, 0);
    for line in hunk_lines(patch) {
        if let Some(head) = line.strip_prefix("@@ -") {
            let mut parts = head.split(' ');
            let start = |part: &str| -> u64 {
                part.trim_start_matches(['-', '+'])
                    .split(',')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("a hunk start")
            };
            o = start(parts.next().expect("old"));
            n = start(parts.next().expect("new"));
        } else if let Some(text) = line.strip_prefix('+') {
            new.insert(n, text.to_owned());
            n += 1;
        } else if let Some(text) = line.strip_prefix('-') {
            old.insert(o, text.to_owned());
            o += 1;
        } else if !line.starts_with('\\') {
            let text = line.get(1..).unwrap_or("").to_owned();
            old.insert(o, text.clone());
            new.insert(n, text);
            o += 1;
            n += 1;
        }
    }
    (old, new)
}

/// A finished wordfreq run (4 tasks, reviewed and verified), its id.
fn finished_wordfreq(daemon: &Daemon, dir: &Path) -> String {
    let (_, body) = wordfreq(dir, json!({}));
    let id = create(daemon, &body);
    let done = wait_for_end(daemon, &id);
    assert_eq!(done["status"], "COMPLETED", "{done}");
    id
}

/// Opens every file of the review and waits until each is drawn in `layout`.
fn open_every_file(browser: &Browser, layout: &str) {
    browser.js(
        "for (const d of document.querySelectorAll('#review .diff-file')) d.open = true; return null;",
    );
    let script = format!(
        "return [...document.querySelectorAll('#review .diff-file')]\
         .every((d) => d.querySelector('.diff.{layout}'));"
    );
    loop_testkit::until("every file drawn", PATIENCE, || {
        browser.js(&script) == Value::Bool(true)
    });
}

#[test]
fn every_rendered_diff_line_is_its_patch_line_with_its_indentation_in_both_layouts() {
    if !needs_browser(
        "every_rendered_diff_line_is_its_patch_line_with_its_indentation_in_both_layouts",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let id = finished_wordfreq(&daemon, dir.path());
    let diff = get_json(&daemon, &format!("/runs/{id}/diff"))["diff"].clone();
    let patches: BTreeMap<String, String> = diff["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| {
            Some((
                f["path"].as_str()?.to_owned(),
                f["patch"].as_str()?.to_owned(),
            ))
        })
        .collect();
    assert!(patches.contains_key("wordfreq/counter.py"), "{patches:?}");

    let browser = Browser::start();
    browser.goto(&daemon.url(&format!("/#/runs/{id}/review")));
    browser.wait_text("#review .diff-summary", "the diff", |t| {
        t.contains("against main")
    });
    browser.click("#layout-unified");
    open_every_file(&browser, "unified");
    // What a person sees of each line (innerText follows the layout: a token drawn as a block
    // of its own would break its line), and whether any line is taller than one line.
    let shown = browser.js("const out = {};
         for (const d of document.querySelectorAll('#review .diff-file')) {
           const lines = [...d.querySelectorAll('.diff.unified > .dl')];
           out[d.dataset.path] = {
             lines: lines.map((el) => el.innerText),
             tall: lines.filter((el) => el.getBoundingClientRect().height >
                 1.6 * parseFloat(getComputedStyle(el).lineHeight)).map((el) => el.innerText),
           };
         }
         return out;");
    for (path, patch) in &patches {
        let lines: Vec<String> =
            serde_json::from_value(shown[path]["lines"].clone()).expect("lines");
        assert_eq!(lines, hunk_lines(patch), "{path}");
        assert_eq!(
            shown[path]["tall"],
            json!([]),
            "{path}: lines broken in two"
        );
    }
    // Python is highlighted: its keywords as tokens, inside their lines.
    let keywords = browser.js(
        "return [...document.querySelectorAll(\"#review .diff-file[data-path='wordfreq/counter.py'] .tok-k\")]\
         .map((el) => el.textContent);",
    );
    for keyword in ["def", "return", "for", "in"] {
        assert!(
            keywords
                .as_array()
                .expect("tokens")
                .contains(&json!(keyword)),
            "{keyword} in {keywords}"
        );
    }

    // Side by side: the base's line numbers and text on the left, the branch's on the right.
    browser.click("#layout-split");
    open_every_file(&browser, "split");
    let cells = browser.js("const out = {};
         for (const d of document.querySelectorAll('#review .diff-file')) {
           out[d.dataset.path] = [...d.querySelectorAll('.diff.split > .sl')].map((row) =>
             [...row.children].map((cell) => cell.classList.contains('d-none') ? null
               : [Number(cell.querySelector('.ln').dataset.n), cell.innerText]));
         }
         return out;");
    for (path, patch) in &patches {
        let (old, new) = numbered(patch);
        let rows = cells[path].as_array().expect("rows");
        let mut seen = (0, 0);
        for row in rows {
            for (side, lines, count) in [(0, &old, &mut seen.0), (1, &new, &mut seen.1)] {
                if let Some(cell) = row[side].as_array() {
                    let n = cell[0].as_u64().expect("a number");
                    assert_eq!(
                        Some(cell[1].as_str().expect("text")),
                        lines.get(&n).map(String::as_str),
                        "{path}: line {n} on side {side}"
                    );
                    *count += 1;
                }
            }
        }
        assert_eq!(seen, (old.len(), new.len()), "{path}: every line once");
    }
}

#[test]
fn request_changes_sends_the_line_comment_to_another_implementation_then_review_and_verification() {
    if !needs_browser(
        "request_changes_sends_the_line_comment_to_another_implementation_then_review_and_verification",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let id = finished_wordfreq(&daemon, dir.path());
    let before = run(&daemon, &id);

    let browser = Browser::start();
    browser.goto(&daemon.url(&format!("/#/runs/{id}/review")));
    browser.wait_text("#review .diff-summary", "the diff", |t| {
        t.contains("against main")
    });
    browser.click("#layout-unified");
    open_every_file(&browser, "unified");
    assert_eq!(
        browser.js("return document.querySelector('#request-changes').disabled;"),
        json!(true),
        "nothing to ask for yet"
    );
    // The line of `def top(` in the branch's counter.py: its comment button.
    let line = browser.js(
        "const el = [...document.querySelectorAll(\"#review .diff.unified > .dl[data-path='wordfreq/counter.py'][data-side='new']\")]\
         .find((el) => el.innerText.includes('def top('));
         el.querySelector('.add-comment').click();
         return Number(el.dataset.line);",
    );
    let line = line.as_u64().expect("a line number");
    browser.type_into(
        ".comment-form textarea",
        "top() should refuse a negative n.",
    );
    browser.click(".comment-form button[type=submit]");
    browser.wait_text(
        &format!("#review .thread[data-line='{line}'] .comment-body"),
        "the comment under its line",
        |t| t == "top() should refuse a negative n.",
    );
    let comments = get_json(&daemon, &format!("/runs/{id}/comments"))["comments"].clone();
    assert_eq!(comments[0]["path"], "wordfreq/counter.py");
    assert_eq!(comments[0]["line"], json!(line));
    assert_eq!(comments[0]["request"], Value::Null);
    browser.wait_text("#request-changes", "the count", |t| {
        t == "Request changes (1 comment)"
    });
    browser.click("#request-changes");
    browser.wait_text("#request-note", "the run sent back", |t| {
        t.starts_with("Sent back to work with 1 comment")
    });
    let again = wait_for_end(&daemon, &id);
    assert_eq!(again["status"], "COMPLETED", "{again}");

    // One more implementation, whose prompt holds the comment, then review and verification.
    let events = get_json(&daemon, &format!("/runs/{id}/events?format=json"))["events"].clone();
    let events = events.as_array().expect("events");
    let asked = events
        .iter()
        .position(|e| e["type"] == "CHANGES_REQUESTED")
        .expect("CHANGES_REQUESTED");
    let after: Vec<&Value> = events[asked..]
        .iter()
        .filter(|e| e["type"] == "STEP_STARTED")
        .collect();
    let phases: Vec<&str> = after
        .iter()
        .map(|e| e["payload"]["phase"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        &phases[..3],
        ["implementation", "review", "verification"],
        "{phases:?}"
    );
    assert_eq!(
        after[0]["payload"]["iteration"],
        json!(before["iteration"].as_u64().expect("iteration") + 1)
    );
    let prompt_path = after[0]["payload"]["prompt_path"]
        .as_str()
        .expect("a prompt");
    let prompt = std::fs::read_to_string(prompt_path).expect("the prompt");
    assert!(
        prompt.contains(&format!(
            "- wordfreq/counter.py, line {line}: top() should refuse a negative n."
        )),
        "{prompt}"
    );
    // The page, back on the finished run, shows the comment as sent and the new work.
    browser.wait_text(
        "#review .thread[data-line] .comment-state",
        "the comment sent",
        |t| t.starts_with("Sent to the agent with request 1"),
    );
    let review = browser.text("#review").unwrap_or_default();
    assert!(
        review.contains("raise ValueError"),
        "the requested change: {review}"
    );
}

#[test]
fn output_opened_right_after_submit_holds_every_step_with_status_and_duration() {
    if !needs_browser("output_opened_right_after_submit_holds_every_step_with_status_and_duration")
    {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let (_, body) = wordfreq(dir.path(), json!({}));
    let browser = Browser::start();
    browser.goto(&daemon.url("/"));
    let id = create(&daemon, &body);
    browser.goto(&daemon.url(&format!("/#/runs/{id}")));
    assert_eq!(wait_for_end(&daemon, &id)["status"], "COMPLETED");
    let steps = get_json(&daemon, &format!("/runs/{id}/steps"))["steps"].clone();
    let steps = steps.as_array().expect("steps");
    assert!(
        steps.len() >= 12,
        "4 tasks, each implemented, reviewed, verified: {steps:?}"
    );
    let expected: Vec<Value> = steps
        .iter()
        .map(|s| json!([s["id"], s["status"], s["phase"]]))
        .collect();
    let shown_steps = "return [...document.querySelectorAll('#output details.step')]\
         .map((d) => [d.dataset.step, d.querySelector('.status').textContent, d.dataset.phase]);";
    loop_testkit::until("every step on the page", PATIENCE, || {
        browser.js(shown_steps) == Value::Array(expected.clone())
    });
    // Each with its duration; the first step's output from its first line.
    let durations = browser.js(
        "return [...document.querySelectorAll('#output details.step .step-time')].map((el) => el.textContent);",
    );
    assert!(
        durations
            .as_array()
            .expect("durations")
            .iter()
            .all(|d| d.as_str().is_some_and(|d| d.ends_with('s'))),
        "{durations}"
    );
    browser.js("document.querySelector('#output details.step').open = true; return null;");
    let first = browser.wait_text(
        "#output details.step .log",
        "the first step's output",
        |t| t.contains("Task 1 is done."),
    );
    assert!(
        first.starts_with("I'll start by reading the spec, the plan and the code this touches.\n"),
        "{first}"
    );
    // Tool calls and their results are styled as such.
    let tools = browser.js(
        "const log = document.querySelector('#output details.step .log');
         return [log.querySelectorAll('.tool').length, log.querySelectorAll('.result').length,
                 log.querySelector('.tool').textContent];",
    );
    assert!(
        tools[0].as_u64().unwrap_or(0) >= 4 && tools[1].as_u64().unwrap_or(0) >= 4,
        "{tools}"
    );
    let tool = tools[2].as_str().expect("a tool line");
    assert!(
        tool.starts_with("● Read(/")
            && tool.ends_with(&format!("/{})\n", loop_testkit::projects::WORDFREQ_SPEC)),
        "{tool}"
    );

    // The timeline: a span per step on the time axis, a lane per iteration; the raw events a
    // click away, each once, the files written folded.
    browser.click("#tab-timeline");
    let iterations = run(&daemon, &id)["iteration"].as_u64().expect("iteration");
    loop_testkit::until("a span per step", PATIENCE, || {
        browser.js("return document.querySelectorAll('#timeline-spans .span.k-step').length;")
            == json!(steps.len())
    });
    assert_eq!(
        browser.js("return document.querySelectorAll('#timeline-spans .lane[data-iteration]:not([data-iteration=run])').length;"),
        json!(iterations)
    );
    let events = get_json(&daemon, &format!("/runs/{id}/events?format=json"))["events"].clone();
    let events = events.as_array().expect("events");
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    let shown = browser.js(
        "return [...document.querySelectorAll('#raw-events [data-seq]')].map((el) => Number(el.dataset.seq));",
    );
    let mut shown: Vec<u64> = serde_json::from_value(shown).expect("seqs");
    let artifacts = events
        .iter()
        .filter(|e| e["type"] == "ARTIFACT_WRITTEN")
        .count();
    assert!(artifacts > 0);
    // A file written to two places is one line: fewer lines than events, none twice.
    let mut unique = shown.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), shown.len(), "an event shown twice");
    shown.retain(|seq| seqs.contains(seq));
    assert!(shown.len() <= seqs.len());
    assert_eq!(
        browser.js("return document.querySelectorAll('#raw-events details[data-type=ARTIFACT_WRITTEN]:not(.artifact-fold)').length;"),
        json!(0),
        "every ARTIFACT_WRITTEN folded"
    );
    let non_artifacts = events
        .iter()
        .filter(|e| e["type"] != "ARTIFACT_WRITTEN")
        .count();
    assert_eq!(
        browser.js("return document.querySelectorAll('#raw-events details[data-seq]').length;"),
        json!(non_artifacts)
    );
}
