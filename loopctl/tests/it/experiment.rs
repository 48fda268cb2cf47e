//! An experiment as `loopctl` shows it: `inspect` gives its standing (goal, start, best,
//! iterations kept and discarded, why it stopped) where a plan's run shows its plan and tasks,
//! and `experiment` its table. The run is real: the loops bench of `loop_testkit::projects`, the
//! `experimenter.sh` stub (better, then worse), a real daemon.

use loop_testkit::Scratch;
use loop_testkit::repo::git;

use crate::daemon::{Project, start_daemon, stub};
use crate::support::text;

#[test]
fn inspect_shows_an_experiments_standing_instead_of_a_plan() {
    let config = "mode=experiment\nmeasure_cmd=sh bench.sh\nmeasure_repeats=3\npatience=0\n\
                  baseline_every=0\niterations=2\n";
    let scratch = Scratch::with(|repo| repo.command_agent(&stub("experimenter.sh"), config));
    git(&scratch.repo(), &["rm", "-q", loop_testkit::repo::PLAN]);
    loop_testkit::projects::add_loops(&scratch.repo());
    let daemon = start_daemon(&scratch.data_dir(), "127.0.0.1:0", &[]);
    let project = Project { scratch, daemon };
    let id = project.create(&[]);
    let run = project.wait(&id);
    assert_eq!(run["status"], "COMPLETED", "{run}");

    let inspect = project.loopctl(&["inspect", &id]);
    let shown = text(&inspect.stdout);
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    let facts: Vec<&str> = shown.lines().take_while(|l| !l.is_empty()).collect();
    let fact = |key: &str| {
        facts
            .iter()
            .find(|l| l.split_whitespace().next() == Some(key))
            .map(|l| l[key.len()..].trim().to_owned())
            .unwrap_or_else(|| panic!("no {key} line in:\n{shown}"))
    };
    assert!(
        fact("goal").starts_with("minimize metric (keep: better by more than 1.0%"),
        "{shown}"
    );
    // 1000 loops, measured with ±1% jitter, at the starting commit.
    let start: f64 = fact("start")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a figure");
    assert!((990.0..=1010.0).contains(&start), "{shown}");
    // Iteration 1 ran 30% fewer loops (kept); iteration 2 30% more (discarded).
    assert!(fact("best").contains("(iteration 1)"), "{shown}");
    assert_eq!(fact("iterations"), "2 decided: 1 kept, 1 discarded");
    assert_eq!(
        fact("stopped"),
        "iterations_exhausted — its 2 iterations ran"
    );
    // No plan and no tasks: an experiment has neither.
    assert!(facts.iter().all(|l| !l.starts_with("plan ")), "{shown}");
    assert!(!fact("progress").contains("tasks"), "{shown}");

    let json = project.json(&["inspect", &id]);
    assert_eq!(json["experiment"]["kept"], 1, "{json}");
    assert_eq!(json["experiment"]["best_iteration"], 1, "{json}");

    // Nor does the closing line count tasks.
    let closing = text(&project.loopctl(&["wait", &id]).stdout);
    assert!(
        closing.contains("COMPLETED (iterations_exhausted)"),
        "{closing}"
    );
    assert!(!closing.contains("tasks"), "{closing}");

    let table = project.loopctl(&["experiment", &id]);
    let table = text(&table.stdout);
    assert!(table.contains("run 30% more loops"), "{table}");
}
