//! The review desk: a finished run's diff, highlighted, and a merge from the page.

use serde_json::json;

use super::browser::{Browser, needs_browser};
use super::{create, run};
use crate::support::{Daemon, get_json, repo, run_body, start_daemon, stub, wait_for_end};

#[test]
fn a_merge_from_the_review_tab_lands() {
    if !needs_browser("a_merge_from_the_review_tab_lands") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    // A target that is not checked out: a merge never moves a branch under a checkout.
    loop_testkit::git(&repo, &["branch", "release"]);
    let before = loop_testkit::git(&repo, &["rev-parse", "release"]);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let mut body = run_body(&repo, "one_task.sh", json!({}));
    body["no_worktree"] = json!(false);
    body["worktree_provider"] = json!("git");
    let id = create(&daemon, &body);
    assert_eq!(wait_for_end(&daemon, &id)["status"], "COMPLETED");

    let browser = Browser::start();
    browser.goto(&daemon.url(&format!("/#/runs/{id}/review")));
    browser.wait_text("#review .diff-summary", "the diff", |t| {
        t.contains("against main: 1 commit")
    });
    let files = browser.text("#review").unwrap_or_default();
    assert!(files.contains("work.txt"), "{files}");
    assert!(files.contains("+work 1"), "the patch: {files}");
    browser.type_into("#merge-target", "release");
    browser.click("#merge-button");
    let outcome = browser.wait_text("#merge-outcome", "the merge's outcome", |t| {
        t.starts_with("Merged") || t.starts_with("Not merged")
    });
    assert!(outcome.starts_with("Merged into release"), "{outcome}");
    let after = loop_testkit::git(&repo, &["rev-parse", "release"]);
    assert_ne!(before, after, "release moved");
    assert!(outcome.contains(&after[..12]), "{outcome} names {after}");
    assert_eq!(
        loop_testkit::git(&repo, &["show", "release:work.txt"]),
        "work 1"
    );
}

#[test]
fn patches_in_the_review_are_syntax_highlighted_as_text() {
    if !needs_browser("patches_in_the_review_are_syntax_highlighted_as_text") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    // An agent that adds a Rust file (with markup in a comment and a string) to its commit.
    let script = dir.path().join("rusty.sh");
    std::fs::write(
        &script,
        format!(
            "mkdir -p src\ncat > src/lib.rs <<'EOF'\n\
             // A comment <script>alert(1)</script>\n\
             pub fn answer() -> u32 {{\n    let _s = \"a <b>bold</b> string\";\n    42\n}}\n\
             EOF\nexec {}\n",
            stub("one_task.sh")
        ),
    )
    .expect("write the agent");
    let mut body = run_body(&repo, "one_task.sh", json!({}));
    body["config"]["agent_cmd"] = json!(format!("sh {}", script.display()));
    body["no_worktree"] = json!(false);
    body["worktree_provider"] = json!("git");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let id = create(&daemon, &body);
    assert_eq!(wait_for_end(&daemon, &id)["status"], "COMPLETED");

    let browser = Browser::start();
    browser.goto(&daemon.url(&format!("/#/runs/{id}/review")));
    browser.wait_text("#review .diff-summary", "the diff", |t| {
        t.contains("against main")
    });
    let tokens = |class: &str| {
        browser.js(&format!(
            "return [...document.querySelectorAll(\"#review .diff[data-lang='rust'] .{class}\")]\
             .map((el) => el.textContent);"
        ))
    };
    assert_eq!(tokens("tok-k"), json!(["pub", "fn", "let"]));
    assert_eq!(tokens("tok-s"), json!(["\"a <b>bold</b> string\""]));
    assert_eq!(
        tokens("tok-c"),
        json!(["// A comment <script>alert(1)</script>"])
    );
    // `u32` is a name, not a number.
    assert_eq!(tokens("tok-n"), json!(["42"]));
    // Added lines keep their colour under the tokens; markup in the code stays text.
    assert_eq!(
        browser.js(
            "return document.querySelectorAll(\"#review .d-add .tok-k\").length > 0 \
             && document.querySelectorAll('#review script, #review b').length;"
        ),
        json!(0)
    );
    // A file the highlighter does not know is shown as plain lines.
    assert_eq!(
        browser.js(
            "const file = [...document.querySelectorAll('#review .diff-file')]\
             .find((d) => d.querySelector('summary').textContent.startsWith('work.txt'));\
             return [file.querySelector('.diff').dataset.lang, file.querySelectorAll('.diff .code span').length];"
        ),
        json!(["", 0])
    );
}

#[test]
fn opening_the_review_tab_appends_nothing_to_the_log() {
    if !needs_browser("opening_the_review_tab_appends_nothing_to_the_log") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let mut body = run_body(&repo, "one_task.sh", json!({}));
    body["no_worktree"] = json!(false);
    body["worktree_provider"] = json!("git");
    let id = create(&daemon, &body);
    let ended = wait_for_end(&daemon, &id);
    assert_eq!(ended["status"], "COMPLETED");
    let events = |daemon: &Daemon| get_json(daemon, &format!("/runs/{id}/events?format=json"));
    let before = events(&daemon);

    let browser = Browser::start();
    for _ in 0..2 {
        browser.goto(&daemon.url(&format!("/#/runs/{id}/review")));
        browser.wait_text("#review .diff-summary", "the diff", |t| {
            t.contains("against main: 1 commit")
        });
    }
    // Reading is not doing: no event, and the run's times stay where its last fact put them.
    assert_eq!(events(&daemon), before);
    let after = run(&daemon, &id);
    assert_eq!(after["last_seq"], ended["last_seq"]);
    assert_eq!(after["updated_at"], ended["updated_at"]);
}
