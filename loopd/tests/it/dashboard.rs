//! The dashboard in a real browser: headless Chromium driven over WebDriver (chromedriver on an
//! ephemeral port) against the real `loopd` with stub agents. Each test says what a person sees
//! and does; the API and git confirm what the page claims. One module per part of the page:
//! the board, a run's live tabs, the review desk, the forms and figures, access (login, guard,
//! routes), and the screenshots.
//!
//! Without Chromium and chromedriver these tests say loudly that they were skipped and why, and
//! fail instead when `LOOP_REQUIRE_SYSTEM_TESTS` is set (as `.ci/run` does). With
//! `LOOPD_SCREENSHOTS=1`, `screenshots_of_every_page_at_both_widths` refreshes the committed
//! pictures in `docs/screenshots/`; otherwise it writes them to a temp dir.

mod access;
mod board;
mod browser;
mod desk;
mod experiment;
mod pages;
mod reader;
mod review;
mod run_page;
mod screenshots;

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{Daemon, client, stub};

/// How long the page may take to show what the daemon did (a shared, loaded machine).
pub const PATIENCE: Duration = Duration::from_secs(45);

pub fn create(daemon: &Daemon, body: &Value) -> String {
    let response = client()
        .post(daemon.url("/runs"))
        .json(body)
        .send()
        .expect("create");
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().expect("json");
    crate::support::run_id(&created)
}

pub fn run(daemon: &Daemon, id: &str) -> Value {
    let answer: Value = client()
        .get(daemon.url(&format!("/runs/{id}")))
        .send()
        .expect("get")
        .json()
        .expect("json");
    answer["run"].clone()
}

pub fn wait_status(daemon: &Daemon, id: &str, status: &str) {
    loop_testkit::until(&format!("run {id} {status}"), PATIENCE, || {
        run(daemon, id)["status"] == status
    });
}

/// An agent that prints `line 1` … `line <lines>`, a few a second, then does one task.
pub fn slow_printer(dir: &Path, lines: u32) -> String {
    let script = dir.join("printer.sh");
    std::fs::write(
        &script,
        format!(
            "cat > /dev/null\nfor i in $(seq 1 {lines}); do echo \"line $i\"; sleep 0.1; done\n\
             echo '● Bash(cargo test)'\nexec {} < /dev/null\n",
            stub("one_task.sh")
        ),
    )
    .expect("write the agent");
    format!("sh {}", script.display())
}
