//! `decide` after a run ended: a person's review actions, comments and requests for changes.

use super::*;

#[test]
fn review_actions_only_apply_to_finished_runs() {
    let review = Command::Review(ReviewAction {
        action: "merge".into(),
        detail: BTreeMap::new(),
    });
    assert_eq!(
        decide(&running().state, review.clone()),
        Err(DomainError::IllegalInState {
            action: "review",
            status: RunStatus::Running
        })
    );
    for ending in ["complete", "fail", "cancel"] {
        let events = decide(&ended_by(ending).state, review.clone()).unwrap();
        assert_eq!(types(&events), [EventType::ReviewAction]);
    }
}

fn worktree() -> Command {
    Command::CreateWorktree(WorktreeCreated {
        provider: "git".into(),
        path: "/work/demo.run-tidy-parser".into(),
        base_branch: "main".into(),
        run_branch: "run/tidy-parser".into(),
        reused: false,
    })
}

fn comment(path: &str, line: u32, body: &str) -> Command {
    Command::Comment(ReviewComment {
        path: path.into(),
        line,
        body: body.into(),
        side: DiffSide::New,
    })
}

#[test]
fn a_request_for_changes_carries_the_comments_made_since_and_sends_the_run_back() {
    let mut driver = run([
        Command::Create(created()),
        Command::Start,
        worktree(),
        complete(),
    ]);
    // Comments wait with the finished run; a request takes them, in order, and the words.
    driver
        .submit(comment("src/lib.rs", 4, "Name it total."))
        .unwrap();
    driver
        .submit(comment("src/lib.rs", 9, "A test for zero."))
        .unwrap();
    let events = driver
        .submit(Command::RequestChanges {
            body: Some("Close.".into()),
        })
        .unwrap();
    let [record] = events.as_slice() else {
        panic!("one event: {events:?}");
    };
    let Event::ChangesRequested(requested) = &record.event else {
        panic!("{record:?}");
    };
    let lines: Vec<u32> = requested.comments.iter().map(|c| c.line).collect();
    assert_eq!(lines, [4, 9]);
    assert_eq!(requested.body.as_deref(), Some("Close."));
    assert_eq!(driver.state.status(), Some(RunStatus::Pending));
    assert!(
        driver.state.pending_comments().is_empty(),
        "taken by the request"
    );
    // The run starts again like any pending run.
    driver.submit(Command::Start).unwrap();
    assert_eq!(driver.state.status(), Some(RunStatus::Running));
}

#[test]
fn a_request_for_changes_asks_for_something_of_a_finished_run_that_has_its_worktree() {
    let empty = Command::RequestChanges {
        body: Some("  ".into()),
    };
    let finished = run([
        Command::Create(created()),
        Command::Start,
        worktree(),
        complete(),
    ]);
    assert_eq!(
        decide(&finished.state, empty),
        Err(DomainError::NothingRequested)
    );
    let words = Command::RequestChanges {
        body: Some("Use the stdlib.".into()),
    };
    assert_eq!(
        types(&decide(&finished.state, words.clone()).unwrap()),
        [EventType::ChangesRequested]
    );
    // No worktree (never made, or removed by a scrap or gc): nothing to go back to work in.
    assert_eq!(
        decide(&ended_by("complete").state, words.clone()),
        Err(DomainError::NoWorktree)
    );
    assert_eq!(
        decide(&running().state, words),
        Err(DomainError::IllegalInState {
            action: "request changes of",
            status: RunStatus::Running
        })
    );
    // A comment needs a path, a line and words, and a finished run.
    for (bad, missing) in [
        (comment(" ", 3, "x"), "a path"),
        (comment("a.py", 0, "x"), "a line, counted from 1"),
        (comment("a.py", 3, "\n"), "a body"),
    ] {
        assert_eq!(
            decide(&finished.state, bad),
            Err(DomainError::IncompleteComment(missing))
        );
    }
    assert_eq!(
        decide(&running().state, comment("a.py", 3, "x")),
        Err(DomainError::IllegalInState {
            action: "comment on",
            status: RunStatus::Running
        })
    );
}

#[test]
fn after_a_request_for_changes_the_next_step_is_a_new_iteration_with_the_comments() {
    use loop_core::config::RunConfig;
    use loop_core::progress::{LoopProgress, Next, next};

    let mut driver = run([
        Command::Create(created()),
        Command::Start,
        worktree(),
        start(step(1), Phase::Implementation),
        finish(step(1), Phase::Implementation),
        complete(),
    ]);
    driver
        .submit(comment("src/lib.rs", 4, "Name it total."))
        .unwrap();
    driver
        .submit(Command::RequestChanges { body: None })
        .unwrap();
    let progress = LoopProgress::fold(&driver.records);
    let config = RunConfig::from_frozen(&BTreeMap::new());
    // The plan is complete, yet the changes are work: an implementation comes first.
    assert_eq!(
        next(&progress, &config, true),
        Next::Implement {
            iteration: 2,
            attempt: 1
        }
    );
    let requested = progress.requested_changes.expect("the changes");
    assert_eq!(requested.comments[0].body, "Name it total.");
}
