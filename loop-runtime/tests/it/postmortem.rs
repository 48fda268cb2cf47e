//! The postmortem: git snapshots and three analyses after a run ends, through the claude
//! stub (`LOOP_PHASE=postmortem`), on demand, prompts only, and when the agent fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use loop_core::event::{Event, PostmortemStatus};
use loop_core::projection::Export;
use loop_core::{EventRecord, RunId, RunStatus};
use loop_runtime::agent::DemoAgent;
use loop_runtime::{Claim, PostmortemReport, PostmortemState, RunRequest, Runtime};
use loop_store::SqliteStore;

use crate::support::{Scratch, count, finish, request_without_agent, runtime, scratch, types};

const ANALYSES: [&str; 3] = ["spec-compliance", "run-quality", "summary"];
const SNAPSHOTS: [&str; 4] = [
    "git-status.txt",
    "git-last-commit.txt",
    "git-last-commit.patch",
    "git-diff.patch",
];

/// A run of the claude stub in a git worktree, with its postmortem on.
fn claude_run(scratch: &Scratch, config: &[(&str, &str)]) -> RunRequest {
    let stub = loop_testkit::agents::path("claude_stub.sh");
    let stub = stub.to_string_lossy().into_owned();
    let mut request = request_without_agent(scratch, &[]);
    for (key, value) in [
        ("agent", "claude"),
        ("claude_bin", stub.as_str()),
        ("reviewer", "false"),
        ("worktree_provider", "git"),
        ("postmortem", "true"),
    ]
    .iter()
    .chain(config)
    {
        request
            .config
            .insert((*key).to_owned(), (*value).to_owned());
    }
    request
}

fn analysis_dir(scratch: &Scratch, run_id: RunId) -> PathBuf {
    scratch
        .repo()
        .join("logs/loop")
        .join(format!("run-{run_id}"))
        .join("analysis")
}

async fn postmortem_ends(runtime: &Runtime, run_id: RunId) -> PostmortemReport {
    tokio::time::timeout(Duration::from_secs(60), runtime.wait_postmortem(run_id))
        .await
        .expect("the postmortem ends within a minute")
        .expect("wait for the postmortem")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The events from the first `POSTMORTEM_START` on.
fn from_postmortem(records: &[EventRecord]) -> Vec<&EventRecord> {
    let start = records
        .iter()
        .position(|r| matches!(r.event, Event::PostmortemStart(_)))
        .expect("a postmortem started");
    records[start..].iter().collect()
}

fn artifact_kinds(records: &[&EventRecord]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::ArtifactWritten(a) => Some(format!("{}:{:?}", a.kind, a.location)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_completed_run_gets_git_snapshots_and_three_analyses() {
    let scratch = scratch(1);
    std::fs::write(scratch.repo().join(".stub-plan"), "\n").expect("stub plan");
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(claude_run(&scratch, &[]))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let report = postmortem_ends(&runtime, run.id).await;
    assert_eq!(report.status, Some(PostmortemState::Ok), "{report:?}");
    assert_eq!(report.started_because.as_deref(), Some("run completed"));
    assert_eq!(report.reason, None);

    let dir = analysis_dir(&scratch, run.id);
    assert_eq!(Path::new(&report.dir), dir);
    let listed: Vec<&str> = report.files.iter().map(|f| f.name.as_str()).collect();
    for name in SNAPSHOTS {
        assert!(listed.contains(&name), "{name} in {listed:?}");
    }
    for analysis in ANALYSES {
        let prompt = read(&dir.join(format!("{analysis}.prompt.txt")));
        let answer = read(&dir.join(format!("{analysis}.md")));
        assert!(
            answer.starts_with(&format!("# {analysis} of {}", run.id)),
            "{answer}"
        );
        assert!(prompt.contains("## summary.json"), "{prompt}");
        assert!(
            prompt.contains(&format!("Run feature ({})", run.id)),
            "{prompt}"
        );
    }
    // The summary reads the other two answers; run quality reads the timeline.
    let summary_prompt = read(&dir.join("summary.prompt.txt"));
    assert!(summary_prompt.contains(&format!("# spec-compliance of {}", run.id)));
    assert!(summary_prompt.contains(&format!("# run-quality of {}", run.id)));
    assert!(read(&dir.join("run-quality.prompt.txt")).contains("RUN_COMPLETED"));

    // The snapshots are of the run's branch: its status, its last commit, its diff from main.
    assert!(read(&dir.join("git-status.txt")).starts_with("## run/feature"));
    assert!(read(&dir.join("git-last-commit.txt")).contains("task 1"));
    assert!(read(&dir.join("git-last-commit.patch")).contains("+call 1"));
    let diff = read(&dir.join("git-diff.patch"));
    assert!(
        diff.contains("work.txt") && diff.contains("- [x] task 1"),
        "{diff}"
    );

    // The log: START after the end, every file recorded in both copies, END ok; the run is
    // still COMPLETED, and its files were rewritten with the postmortem's rows.
    let records = runtime.events(run.id).await.expect("events");
    let after = from_postmortem(&records);
    assert!(matches!(&after[0].event, Event::PostmortemStart(s) if s.reason == "run completed"));
    assert!(matches!(
        &after.last().unwrap().event,
        Event::PostmortemEnd(end) if end.status == PostmortemStatus::Ok
    ));
    let kinds = artifact_kinds(&after);
    for kind in ["git_snapshot", "analysis_prompt", "analysis"] {
        let n = |location: &str| {
            kinds
                .iter()
                .filter(|k| **k == format!("{kind}:{location}"))
                .count()
        };
        let expected = if kind == "git_snapshot" { 4 } else { 3 };
        assert_eq!(
            (n("Workspace"), n("Global")),
            (expected, expected),
            "{kind}: {kinds:?}"
        );
    }
    let view = runtime.get(run.id).await.expect("run");
    assert_eq!(view.status, RunStatus::Completed);
    assert_eq!(view.postmortem.as_deref(), Some("ok"));
    let run_dir = dir.parent().expect("run dir");
    let export = Export::of(&records).expect("export");
    for (name, text) in export.files() {
        assert_eq!(read(&run_dir.join(name)), text, "{name} equals the export");
    }
    let report_tsv = read(&run_dir.join("report.tsv"));
    assert!(
        report_tsv.contains("\tPOSTMORTEM_START\t") && report_tsv.contains("\tPOSTMORTEM_END\t")
    );
    let mirrored = scratch
        .data_dir()
        .join("runs")
        .join(format!("run-{}", run.id))
        .join("analysis/summary.md");
    assert_eq!(read(&mirrored), read(&dir.join("summary.md")));
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_failing_or_silent_analysis_ends_the_postmortem_failed_and_leaves_the_run_completed() {
    let scratch = scratch(1);
    std::fs::write(
        scratch.repo().join(".stub-analysis"),
        "run-quality=fail\nsummary=hang\n",
    )
    .expect("stub analysis");
    let runtime = runtime(&scratch);
    // No worktree: the analyses run in the workspace, where the stub finds `.stub-analysis`.
    let run = runtime
        .submit(claude_run(
            &scratch,
            &[("worktree_provider", "none"), ("claude_timeout_sec", "1")],
        ))
        .await
        .expect("submit");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Completed);
    let report = postmortem_ends(&runtime, run.id).await;
    assert_eq!(report.status, Some(PostmortemState::Failed), "{report:?}");
    let reason = report.reason.clone().unwrap_or_default();
    assert!(reason.contains("run-quality: "), "{reason}");
    assert!(reason.contains("summary: no answer within 1 s"), "{reason}");
    let dir = analysis_dir(&scratch, run.id);
    assert!(dir.join("spec-compliance.md").is_file());
    assert!(!dir.join("run-quality.md").exists());
    assert!(!dir.join("summary.md").exists());
    for analysis in ANALYSES {
        assert!(
            dir.join(format!("{analysis}.prompt.txt")).is_file(),
            "{analysis}"
        );
    }
    // Worked in place on main: no branch to compare, so an empty diff.
    assert_eq!(read(&dir.join("git-diff.patch")), "");
    let view = runtime.get(run.id).await.expect("run");
    assert_eq!(
        (view.status, view.postmortem.as_deref()),
        (RunStatus::Completed, Some("failed"))
    );
    let report_tsv = read(&dir.parent().unwrap().join("report.tsv"));
    assert!(report_tsv.contains("POSTMORTEM_END\t"), "{report_tsv}");
    assert!(
        report_tsv.contains("failed: spec-compliance")
            || report_tsv.contains("failed: run-quality")
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn an_agent_this_runtime_lacks_fails_the_postmortem_and_prompt_only_asks_no_one() {
    let scratch = scratch(1);
    let store = Arc::new(SqliteStore::open(scratch.db()).expect("open log"));
    // The run's agent is an adapter registered under a name of the embedder's choosing.
    let runtime = Runtime::builder()
        .store(Arc::clone(&store) as Arc<dyn loop_store::EventStore>)
        .data_dir(scratch.data_dir())
        .agent("helper", Arc::new(DemoAgent::new(Duration::ZERO)))
        .build()
        .expect("runtime");
    let run = runtime
        .submit(request_without_agent(
            &scratch,
            &[("agent", "helper"), ("reviewer", "false")],
        ))
        .await
        .expect("submit");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Completed);
    let records = runtime.events(run.id).await.expect("events");
    assert_eq!(
        count(&records, |e| matches!(e, Event::PostmortemStart(_))),
        0
    );
    runtime.shutdown().await;

    // A runtime without that adapter, as `loopctl analyze` embeds one.
    let offline = Runtime::builder()
        .store(store)
        .data_dir(scratch.data_dir())
        .claim(Claim::Nothing)
        .build()
        .expect("runtime");
    offline
        .postmortem(run.id, None, false)
        .await
        .expect("a postmortem on demand");
    let report = postmortem_ends(&offline, run.id).await;
    assert_eq!(report.status, Some(PostmortemState::Failed));
    assert_eq!(report.started_because.as_deref(), Some("on demand"));
    assert!(
        report
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("no agent adapter named \"helper\""),
        "{report:?}"
    );

    // Prompts only: the snapshots and the three prompts, no answer, `skipped`.
    let dir = analysis_dir(&scratch, run.id);
    for analysis in ANALYSES {
        let _ = std::fs::remove_file(dir.join(format!("{analysis}.prompt.txt")));
    }
    offline
        .postmortem(run.id, Some("sonnet".to_owned()), true)
        .await
        .expect("prompts only");
    let report = postmortem_ends(&offline, run.id).await;
    assert_eq!(report.status, Some(PostmortemState::Skipped), "{report:?}");
    assert_eq!(report.started_because.as_deref(), Some("prompt only"));
    for analysis in ANALYSES {
        assert!(
            dir.join(format!("{analysis}.prompt.txt")).is_file(),
            "{analysis}"
        );
        assert!(!dir.join(format!("{analysis}.md")).exists(), "{analysis}");
    }
    let records = offline.events(run.id).await.expect("events");
    assert_eq!(
        count(&records, |e| matches!(e, Event::PostmortemEnd(_))),
        2,
        "{:?}",
        types(&records)
    );
    assert_eq!(
        offline.get(run.id).await.expect("run").status,
        RunStatus::Completed
    );
    offline.shutdown().await;
}

#[tokio::test]
async fn a_failed_run_is_snapshotted_before_its_worktree_goes_and_a_retry_stops_its_postmortem() {
    let scratch = scratch(1);
    // The first agent call hits a usage limit, which fails the run (no waiting); analyses of
    // spec compliance hang until the retry stops them.
    std::fs::write(scratch.repo().join(".stub-plan"), "limit:4102444800\n").expect("plan");
    std::fs::write(
        scratch.repo().join(".stub-analysis"),
        "spec-compliance=hang\n",
    )
    .expect("stub analysis");
    std::process::Command::new("git")
        .args(["add", ".stub-analysis", ".stub-plan"])
        .current_dir(scratch.repo())
        .status()
        .expect("git add");
    std::process::Command::new("git")
        .args(["commit", "-qm", "stubs"])
        .current_dir(scratch.repo())
        .status()
        .expect("git commit");
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(claude_run(&scratch, &[("usage_limit_wait", "false")]))
        .await
        .expect("submit");
    let failed = finish(&runtime, run.id).await;
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    let worktree = PathBuf::from(failed.worktree.worktree_path.clone().expect("a worktree"));
    assert!(!worktree.exists(), "a failed run's worktree is cleaned up");
    let dir = analysis_dir(&scratch, run.id);
    assert!(read(&dir.join("git-status.txt")).starts_with("## run/feature"));
    assert_eq!(
        runtime
            .get(run.id)
            .await
            .expect("run")
            .postmortem
            .as_deref(),
        Some("running")
    );

    // The analyses run in the workspace now that the worktree is gone, and hang there; a
    // second postmortem meanwhile is refused.
    let again = runtime.postmortem(run.id, None, true).await;
    assert!(
        matches!(again, Err(loop_runtime::RuntimeError::Domain(_))),
        "{again:?}"
    );
    let retried = runtime
        .retry(run.id)
        .await
        .expect("a retry stops the postmortem");
    assert_eq!(retried.status, RunStatus::Pending);
    let records = runtime.events(run.id).await.expect("events");
    let ends: Vec<&Event> = records
        .iter()
        .map(|r| &r.event)
        .filter(|e| matches!(e, Event::PostmortemEnd(_) | Event::RunRetried(_)))
        .collect();
    assert!(
        matches!(
            ends.as_slice(),
            [Event::PostmortemEnd(end), Event::RunRetried(_)]
                if end.status == PostmortemStatus::Failed
                    && end.reason.as_deref().unwrap_or_default().starts_with("interrupted")
        ),
        "{:?}",
        types(&records)
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_postmortem_cut_short_by_a_crash_is_ended_when_the_daemon_starts_again() {
    use loop_core::event::{ExitReason, NameSource, PostmortemStart, RunCompleted, RunCreated};
    use loop_core::{Command, RunState, decide};
    use loop_store::EventStore;

    let scratch = scratch(0);
    let store = SqliteStore::open(scratch.db()).expect("open log");
    let run_id = RunId::from_uuid(uuid::Uuid::now_v7());
    let mut state = RunState::new();
    let created = RunCreated {
        name: "crashed".to_owned(),
        name_source: NameSource::Explicit,
        workspace_root: scratch.repo().to_string_lossy().into_owned(),
        spec_path: "specs/feature.md".to_owned(),
        plan_path: "specs/planning/feature-plan.md".to_owned(),
        config: Default::default(),
        prompt_template: Default::default(),
        tasks_done: None,
        tasks_total: None,
    };
    let commands = [
        Command::Create(created),
        Command::Start,
        Command::Complete(RunCompleted {
            exit_reason: ExitReason::CompletePlan,
            completed_iteration: 1,
        }),
        Command::StartPostmortem(PostmortemStart {
            reason: "run completed".to_owned(),
        }),
    ];
    for command in commands {
        let events = decide(&state, command).expect("legal");
        for record in store
            .append(run_id, state.version(), 1_790_000_000_000, events)
            .expect("append")
        {
            state.apply(&record).expect("apply");
        }
    }
    drop(store);

    let runtime = runtime(&scratch);
    let report = postmortem_ends(&runtime, run_id).await;
    assert_eq!(report.status, Some(PostmortemState::Failed), "{report:?}");
    assert!(
        report
            .reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("interrupted"),
        "{report:?}"
    );
    // Ended, the run can be analysed again.
    runtime
        .postmortem(run_id, None, true)
        .await
        .expect("a new postmortem");
    assert_eq!(
        postmortem_ends(&runtime, run_id).await.status,
        Some(PostmortemState::Skipped)
    );
    runtime.shutdown().await;
}

/// No call of any kind goes to a held account: a run canceled while its account waits for a
/// usage limit's reset gets its postmortem prompts, and no analysis is asked of the agent
/// (before, the three analyses called the held account).
#[tokio::test]
async fn a_postmortem_asks_no_analysis_of_a_held_account() {
    let scratch = scratch(1);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    std::fs::write(
        scratch.repo().join(".stub-plan"),
        format!("limit:{}\n", now_s + 3600),
    )
    .expect("plan");
    for args in [&["add", ".stub-plan"][..], &["commit", "-qm", "stub plan"]] {
        std::process::Command::new("git")
            .args(args)
            .current_dir(scratch.repo())
            .status()
            .expect("git");
    }
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(claude_run(&scratch, &[]))
        .await
        .expect("submit");
    let started = std::time::Instant::now();
    loop {
        let view = runtime.get(run.id).await.expect("view");
        if view
            .waiting
            .as_ref()
            .is_some_and(|w| w.code == "usage_limit")
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{view:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    runtime.cancel(run.id).await.expect("cancel");
    let report = postmortem_ends(&runtime, run.id).await;
    let records = runtime.events(run.id).await.expect("events");
    let end = records
        .iter()
        .rev()
        .find_map(|r| match &r.event {
            Event::PostmortemEnd(end) => Some(end.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no postmortem end: {report:?} {:?}", types(&records)));
    assert_eq!(end.status, PostmortemStatus::Skipped, "{end:?}");
    let reason = end.reason.unwrap_or_default();
    assert!(reason.contains("held by a usage limit"), "{reason}");
    let dir = analysis_dir(&scratch, run.id);
    let run_dir = dir.parent().expect("the run's directory");
    assert!(
        !run_dir.join("analysis-calls").exists(),
        "an analysis called the held account: {}",
        std::fs::read_to_string(run_dir.join("analysis-calls")).unwrap_or_default()
    );
    assert!(
        std::fs::read_dir(&dir).expect("analysis/").count() > 0,
        "the prompts are written"
    );
    runtime.shutdown().await;
}
