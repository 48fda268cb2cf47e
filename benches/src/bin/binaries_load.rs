//! The orchestrator through the binaries a person uses, beside the same processes run bare.
//!
//! Three kinds of round, alternated in rotating order, each on a fresh repository of the same
//! plan (`--tasks N`, default 20):
//!
//! - `exec`: `loopctl exec specs/feature.md --no-worktree --db <dir>/loopd.db`, the embedded
//!   runtime, timed as the process's wall time;
//! - `loopd`: `loopctl run specs/feature.md --no-worktree --wait` against a release `loopd`
//!   started once for all rounds, timed as that command's wall time;
//! - `bare`: the same processes one after the other and nothing else: per iteration the agent
//!   as implementer (its prompt on stdin), the agent as reviewer, and `sh -c true`, each through
//!   `sh -c` in its own process group with its output read to the end, until the plan has no
//!   open box after a verification (where the runtime completes the run) or the agent says
//!   `<promise>COMPLETE</promise>`.
//!
//! The agent is `testkit/agents/one_task.sh` (composed, not recorded: it behaves as the real CLI
//! does on a plan): it reads its prompt, checks that the files the prompt references exist,
//! ticks the plan's next box, appends to a file and commits; as reviewer it approves. Config
//! (`.loop/config`, committed): `agent=command`, `reviewer=true`, `verify_cmds=true`,
//! `postmortem=false`, `run_naming_mode=spec_slug`.
//!
//! The figure per round is (wall − bare wall of the same round) / steps; printed as the median
//! and range over the rounds (`--rounds R`, default 5), after one warm-up round of each.
//!
//! usage: binaries_load [--tasks N] [--rounds R]   (from benches/load/run.sh binaries)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use loop_benches::bare::spawn_like_runtime;
use loop_benches::daemon;
use loop_testkit::repo::PLAN;

const VERIFY: &str = "true";

fn loopctl_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("LOOPCTL_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    for candidate in [dir.join("loopctl"), dir.join("../loopctl")] {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "no loopctl beside {}: build it (cargo build --release -p loopctl) or set LOOPCTL_BIN",
        exe.display()
    );
}

fn agent_cmd() -> String {
    loop_testkit::agents::cmd("one_task.sh")
}

/// A fresh repository with the plan and the committed `.loop/config`.
fn repo(root: &Path, name: &str, tasks: usize) -> PathBuf {
    let config = format!(
        "agent=command\nagent_cmd={}\nreviewer=true\nverify_cmds={VERIFY}\npostmortem=false\n\
         run_naming_mode=spec_slug\niterations={}\n",
        agent_cmd(),
        tasks + 10
    );
    loop_testkit::Repo::at(root.join(name))
        .tasks(tasks)
        .config(&config)
        .create()
}

/// Runs `loopctl <args>` in `repo` to its end; its wall time and the run's iteration.
fn loopctl(repo: &Path, data_dir: &Path, args: &[&str]) -> (Duration, u64) {
    let started = Instant::now();
    let output = Command::new(loopctl_bin())
        .arg("--json")
        .args(args)
        .current_dir(repo)
        .env("LOOPD_DATA_DIR", data_dir)
        .env_remove("LOOP_CONFIG")
        .output()
        .expect("run loopctl");
    let wall = started.elapsed();
    assert!(
        output.status.success(),
        "loopctl {args:?}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let document: serde_json::Value = String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no JSON document from loopctl {args:?}"));
    let iteration = document["run"]["iteration"].as_u64().unwrap_or(0);
    assert_eq!(document["run"]["status"], "COMPLETED", "{document}");
    (wall, iteration)
}

fn exec_round(root: &Path, n: usize, tasks: usize) -> (Duration, u64, PathBuf) {
    let repo = repo(root, &format!("exec-{n}"), tasks);
    let data = root.join(format!("exec-data-{n}"));
    let db = data.join("loopd.db");
    let (wall, iteration) = loopctl(
        &repo,
        &data,
        &[
            "exec",
            loop_testkit::repo::SPEC,
            "--no-worktree",
            "--db",
            &db.to_string_lossy(),
        ],
    );
    (wall, iteration, repo)
}

fn daemon_round(root: &Path, n: usize, tasks: usize, addr: &str, data: &Path) -> (Duration, u64) {
    let repo = repo(root, &format!("loopd-{n}"), tasks);
    loopctl(
        &repo,
        data,
        &[
            "--addr",
            addr,
            "run",
            loop_testkit::repo::SPEC,
            "--no-worktree",
            "--wait",
        ],
    )
}

/// The processes of a run one after the other; wall time and iterations.
fn bare_round(
    root: &Path,
    n: usize,
    tasks: usize,
    prompts: &(Vec<u8>, Vec<u8>),
) -> (Duration, u64) {
    let repo = repo(root, &format!("bare-{n}"), tasks);
    let plan = repo.join(PLAN).to_string_lossy().into_owned();
    let spec = repo
        .join(loop_testkit::repo::SPEC)
        .to_string_lossy()
        .into_owned();
    let agent = agent_cmd();
    let started = Instant::now();
    let mut iteration = 0u64;
    loop {
        iteration += 1;
        let it = iteration.to_string();
        let env = |phase| {
            [
                ("LOOP_PHASE", phase),
                ("LOOP_PLAN_PATH", plan.as_str()),
                ("LOOP_SPEC_PATH", spec.as_str()),
                ("LOOP_ITERATION", it.as_str()),
            ]
        };
        let answer = spawn_like_runtime(&agent, &repo, &env("implementation"), &prompts.0);
        spawn_like_runtime(&agent, &repo, &env("review"), &prompts.1);
        spawn_like_runtime(VERIFY, &repo, &env("verification"), b"");
        // The run ends once the plan is done and verified, as the runtime decides it.
        let plan_done = std::fs::read_to_string(&plan).is_ok_and(|text| !text.contains("- [ ]"));
        if plan_done
            || answer.contains("<promise>COMPLETE</promise>")
            || iteration > tasks as u64 + 10
        {
            break;
        }
    }
    (started.elapsed(), iteration)
}

/// The prompts a run sent, from its run directory.
fn prompts_of(repo: &Path) -> (Vec<u8>, Vec<u8>) {
    let run_dir = std::fs::read_dir(repo.join("logs/loop"))
        .expect("the run's log dir")
        .flatten()
        .next()
        .expect("a run dir")
        .path();
    let read = |name: &str| std::fs::read(run_dir.join(name)).expect(name);
    (read("prompt.txt"), read("review-prompt.txt"))
}

fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
    )
}

fn main() {
    let mut tasks = 20usize;
    let mut rounds = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--tasks" => tasks = value(),
            "--rounds" => rounds = value().max(1),
            other => panic!("unknown argument {other:?}"),
        }
    }
    let root = loop_benches::bench_dir();
    let daemon_data = root.path().join("loopd-data");
    let mut loopd = daemon::start(&daemon_data, &[]);
    let addr = loopd.base.clone();

    // Warm-up: page cache, binaries, and the prompts the bare rounds are given.
    let (_, warm_iterations, warm_repo) = exec_round(root.path(), 0, tasks);
    let prompts = prompts_of(&warm_repo);
    daemon_round(root.path(), 0, tasks, &addr, &daemon_data);
    let (_, bare_iterations) = bare_round(root.path(), 0, tasks, &prompts);
    assert_eq!(
        warm_iterations, bare_iterations,
        "the bare processes do the run's iterations"
    );
    let steps = (3 * bare_iterations) as f64;

    let (mut exec, mut served, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let mut order = ["exec", "loopd", "bare"];
        order.rotate_left(round % 3);
        for what in order {
            let secs = match what {
                "exec" => {
                    let (wall, iterations, _) = exec_round(root.path(), round, tasks);
                    assert_eq!(iterations, bare_iterations);
                    exec.push(wall.as_secs_f64());
                    wall
                }
                "loopd" => {
                    let (wall, iterations) =
                        daemon_round(root.path(), round, tasks, &addr, &daemon_data);
                    assert_eq!(iterations, bare_iterations);
                    served.push(wall.as_secs_f64());
                    wall
                }
                _ => {
                    let (wall, iterations) = bare_round(root.path(), round, tasks, &prompts);
                    assert_eq!(iterations, bare_iterations);
                    bare.push(wall.as_secs_f64());
                    wall
                }
            };
            eprintln!("  round {round} {what}: {:.3} s", secs.as_secs_f64());
        }
    }
    let hwm = daemon::mib(daemon::Measured::memory(&loopd).hwm);
    loopd.stop();
    let over = |walls: &[f64]| -> Vec<f64> {
        walls
            .iter()
            .zip(&bare)
            .map(|(wall, bare)| (wall - bare) * 1e3 / steps)
            .collect()
    };
    let (bare_mid, _, _) = spread(&bare);
    for (what, walls) in [
        ("loopctl exec", &exec),
        ("loopctl run --wait via loopd", &served),
    ] {
        let (mid, low, high) = spread(&over(walls));
        let (wall, _, _) = spread(walls);
        loop_benches::row(&[
            what,
            &format!("{tasks} tasks, {steps} steps"),
            &format!("{:.2} ms", wall * 1e3 / steps),
            &format!("{:.2} ms", bare_mid * 1e3 / steps),
            &format!("{mid:.2} ms ({low:.2}–{high:.2}, {rounds} rounds)"),
        ]);
    }
    eprintln!("loopd VmHWM over all rounds: {hwm:.1} MiB");
}
