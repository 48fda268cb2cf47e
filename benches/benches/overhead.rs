//! Orchestration overhead (quality bar: ≤ 2 ms of the runtime's own wall time per step,
//! (loop wall − the same processes run bare, same round) / steps, median of alternated rounds;
//! the older bar: a 100-iteration run with reviewer and one verify command ≥ 3× faster than a
//! plain shell loop).
//!
//! Three things, alternated round by round in one process so their ratios are comparable:
//!
//! - `runtime`: one run through the embedded [`Runtime`] (`agent=command` with the compiled
//!   no-op agent `noop_agent`, `reviewer=true`, `verify_cmds=true`, `worktree_provider=none`,
//!   `run_naming_mode=spec_slug`, `postmortem=false`), from `submit` until `wait` returns. A plan
//!   of N tasks takes N + 1 iterations (the last one claims completion) of 3 steps each.
//! - `bare`: the processes that run spawns and nothing else: for every iteration
//!   `sh -c <noop_agent>` as implementer (prompt on stdin, plan ticked), again as reviewer, and
//!   `sh -c true`, each with piped stdio read to the end, one after the other. The runtime's own
//!   time is its wall time minus this.
//! - `shell`: `benches/load/plain_loop.sh`, a plain shell loop doing the same work (agent,
//!   reviewer, verify, logs to files, grep of the log and the plan).
//!
//! The headline is per round: (runtime wall − bare wall of the same round) / steps, reported
//! as the median and range over the rounds (whose order rotates, so neither side always runs
//! first on a warm or a cold disk).
//!
//! Also measured: the runtime process's own CPU time (`getrusage(RUSAGE_SELF)`: every thread of
//! the runtime and the store, no child) and its children's (`RUSAGE_CHILDREN`).
//!
//! Knobs: `LOOP_BENCH_OVERHEAD_TASKS` (default 100), `LOOP_BENCH_OVERHEAD_ROUNDS` (default 5),
//! `LOOP_BENCH_OVERHEAD_ONLY` (`runtime`, `bare` or `shell`: only that, e.g. under `perf`),
//! `LOOP_BENCH_OVERHEAD_TRAMPOLINE=off` (children forked, without the keeper: its price),
//! `LOOP_BENCH_DIR`. `cargo test --benches` runs one round on 3 tasks.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loop_benches::bare::spawn_like_runtime;
use loop_benches::scratch::{PLAN, SPEC, git_repo, plan_text};
use loop_benches::{bench_dir, bench_size};
use loop_core::RunStatus;
use loop_core::config::Layer;
use loop_runtime::{RunRequest, Runtime};
use loop_store::SqliteStore;
use nix::sys::resource::{UsageWho, getrusage};

const NOOP: &str = env!("CARGO_BIN_EXE_noop_agent");
const PLAIN_LOOP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/load/plain_loop.sh");
const VERIFY: &str = "true";

fn cpu(who: UsageWho) -> Duration {
    let usage = getrusage(who).expect("getrusage");
    let micros = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Duration::from_micros(micros(usage.user_time()) + micros(usage.system_time()))
}

#[derive(Debug)]
struct RuntimeRound {
    wall: Duration,
    own_cpu: Duration,
    children_cpu: Duration,
    steps: usize,
    events: usize,
    iterations: u32,
    /// Wall time spent inside steps (sum of their `duration_ms`).
    in_steps: Duration,
    /// Journal appends and their total time.
    appends: (u64, f64),
    prompt: Vec<u8>,
    review_prompt: Vec<u8>,
}

fn runtime_round(tasks: usize) -> RuntimeRound {
    let dir = bench_dir();
    let repo = git_repo(dir.path(), "repo", tasks);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    tokio.block_on(async {
        let store = Arc::new(SqliteStore::open(dir.path().join("loop.db")).expect("open log"));
        let runtime = Runtime::builder()
            .store(store)
            .data_dir(dir.path().join("data"))
            .build()
            .expect("runtime");
        let mut config = Layer::new();
        for (key, value) in [
            ("agent", "command"),
            ("agent_cmd", NOOP),
            ("worktree_provider", "none"),
            ("run_naming_mode", "spec_slug"),
            ("postmortem", "false"),
            ("reviewer", "true"),
            ("verify_cmds", VERIFY),
            ("iterations", &(tasks + 10).to_string()),
        ] {
            config.insert(key.to_owned(), value.to_owned());
        }
        let request = RunRequest {
            repo_url: None,
            workspace_root: repo.clone(),
            spec_path: SPEC.to_owned(),
            config,
            ..RunRequest::default()
        };
        let (own0, children0) = (cpu(UsageWho::RUSAGE_SELF), cpu(UsageWho::RUSAGE_CHILDREN));
        let appends0 = runtime.append_latency().snapshot();
        let started = Instant::now();
        let run = runtime.submit(request).await.expect("submit");
        let view = runtime.wait(run.id).await.expect("wait");
        let wall = started.elapsed();
        let (own1, children1) = (cpu(UsageWho::RUSAGE_SELF), cpu(UsageWho::RUSAGE_CHILDREN));
        let appends1 = runtime.append_latency().snapshot();
        assert_eq!(
            view.status,
            RunStatus::Completed,
            "the run completes: {:?}",
            view.failure_reason
        );
        let steps = runtime.steps(run.id).await.expect("steps");
        let events = runtime.events(run.id).await.expect("events").len();
        let in_steps = steps
            .iter()
            .map(|s| Duration::from_millis(s.duration_ms.unwrap_or(0)))
            .sum();
        let run_dir = runtime.run_dir(run.id).await.expect("run dir");
        let read = |name: &str| std::fs::read(run_dir.join(name)).unwrap_or_default();
        let round = RuntimeRound {
            wall,
            own_cpu: own1 - own0,
            children_cpu: children1 - children0,
            steps: steps.len(),
            events,
            iterations: view.iteration,
            in_steps,
            appends: (appends1.0 - appends0.0, appends1.1 - appends0.1),
            prompt: read("prompt.txt"),
            review_prompt: read("review-prompt.txt"),
        };
        runtime.shutdown().await;
        round
    })
}

/// The processes of a run and nothing else; returns the wall time and the iterations.
fn bare_round(tasks: usize, prompt: &[u8], review_prompt: &[u8]) -> (Duration, u32) {
    let dir = bench_dir();
    let plan = dir.path().join("plan.md");
    std::fs::write(&plan, plan_text(tasks)).expect("write the plan");
    let plan_text = plan.to_string_lossy().into_owned();
    let started = Instant::now();
    let mut iteration = 0u32;
    loop {
        iteration += 1;
        let it = iteration.to_string();
        let env = |phase| {
            [
                ("LOOP_PHASE", phase),
                ("LOOP_PLAN_PATH", plan_text.as_str()),
                ("LOOP_ITERATION", it.as_str()),
            ]
        };
        let answer = spawn_like_runtime(NOOP, dir.path(), &env("implementation"), prompt);
        spawn_like_runtime(NOOP, dir.path(), &env("review"), review_prompt);
        spawn_like_runtime(VERIFY, dir.path(), &env("verification"), b"");
        if answer.contains("<promise>COMPLETE</promise>") {
            break;
        }
    }
    (started.elapsed(), iteration)
}

/// `plain_loop.sh`; returns the wall time and the iterations it reports.
fn shell_round(tasks: usize, prompt: &[u8], review_prompt: &[u8]) -> (Duration, u32) {
    let dir = bench_dir();
    let repo = git_repo(dir.path(), "repo", tasks);
    let prompt_file = dir.path().join("prompt.txt");
    let review_file = dir.path().join("review-prompt.txt");
    std::fs::write(&prompt_file, prompt).expect("write the prompt");
    std::fs::write(&review_file, review_prompt).expect("write the review prompt");
    let logs: PathBuf = repo.join("logs/plain");
    let started = Instant::now();
    let output = Command::new("sh")
        .arg(PLAIN_LOOP)
        .arg(NOOP)
        .arg(&repo)
        .arg(repo.join(PLAN))
        .arg(&prompt_file)
        .arg(&review_file)
        .arg(&logs)
        .arg((tasks + 10).to_string())
        .arg(VERIFY)
        .output()
        .expect("run plain_loop.sh");
    let wall = started.elapsed();
    assert!(output.status.success(), "plain_loop.sh: {output:?}");
    let iterations = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("plain_loop.sh prints its iterations");
    (wall, iterations)
}

/// Unit costs of what the runtime does around each step, measured here and now: a
/// `git rev-parse --verify --quiet HEAD` (the driver's `git::head`), a new 1 KiB file (a step's
/// `.log`, `.tail.txt`, `.jsonl` and their mirror copies), and a new file renamed over another
/// (the notifier's cursor). Seconds per operation.
fn unit_costs(n: usize) -> (f64, f64, f64) {
    let dir = bench_dir();
    let repo = git_repo(dir.path(), "repo", 1);
    let started = Instant::now();
    for _ in 0..n {
        let out = Command::new("git")
            .args(["rev-parse", "--verify", "--quiet", "HEAD"])
            .current_dir(&repo)
            .stdin(Stdio::null())
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .expect("git rev-parse");
        assert!(out.status.success());
    }
    let git = started.elapsed().as_secs_f64() / n as f64;
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).expect("files dir");
    let text = vec![b'x'; 1024];
    let started = Instant::now();
    for i in 0..n {
        std::fs::write(files.join(format!("iter-{i}.log")), &text).expect("write");
    }
    let create = started.elapsed().as_secs_f64() / n as f64;
    let started = Instant::now();
    for i in 0..n {
        let fresh = files.join("cursor.new");
        std::fs::write(&fresh, format!("{i}\n")).expect("write");
        std::fs::rename(&fresh, files.join("cursor")).expect("rename");
    }
    let rename = started.elapsed().as_secs_f64() / n as f64;
    (git, create, rename)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// (median, min, max).
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(values.to_vec()), min, max)
}

fn log_runtime_round(round: usize, r: &RuntimeRound) {
    eprintln!(
        "  round {round} runtime: {:.3} s wall, {} iterations, {} steps, {} events, \
         own CPU {:.3} s, children CPU {:.3} s, in steps {:.3} s, {} appends {:.3} s",
        r.wall.as_secs_f64(),
        r.iterations,
        r.steps,
        r.events,
        r.own_cpu.as_secs_f64(),
        r.children_cpu.as_secs_f64(),
        r.in_steps.as_secs_f64(),
        r.appends.0,
        r.appends.1,
    );
}

fn main() {
    // As loopd does: the runtime starts its children through this binary, not by forking it.
    // `LOOP_BENCH_OVERHEAD_TRAMPOLINE=off` prices that in the same hour: children forked from
    // the bench with a `pre_exec` hook, no keeper (and none of its guarantees for descendants).
    if std::env::var_os("LOOP_BENCH_OVERHEAD_TRAMPOLINE").is_none_or(|value| value != "off") {
        loop_runtime::process::trampoline::serve();
    }
    let tasks = bench_size("LOOP_BENCH_OVERHEAD_TASKS", 100, 3) as usize;
    let rounds = bench_size("LOOP_BENCH_OVERHEAD_ROUNDS", 5, 1) as usize;
    let only = std::env::var("LOOP_BENCH_OVERHEAD_ONLY").unwrap_or_default();
    let wants = |what: &str| only.is_empty() || only == what;

    // A warm-up run: page cache, binaries, and the prompts the other two are given.
    let warm = runtime_round(tasks);
    let (prompt, review_prompt) = (warm.prompt.clone(), warm.review_prompt.clone());
    eprintln!(
        "overhead: {tasks} tasks; warm-up run {:.3} s, {} steps, {} events, prompt {} B, review prompt {} B",
        warm.wall.as_secs_f64(),
        warm.steps,
        warm.events,
        prompt.len(),
        review_prompt.len()
    );

    let mut units: Vec<(f64, f64, f64)> = Vec::new();
    let mut runtime_rounds: Vec<RuntimeRound> = Vec::new();
    let mut bare: Vec<f64> = Vec::new();
    let mut shell: Vec<f64> = Vec::new();
    for round in 0..rounds {
        let mut order: Vec<&str> = vec!["runtime", "bare", "shell"];
        order.rotate_left(round % 3);
        for what in order {
            if !wants(what) {
                continue;
            }
            match what {
                "runtime" if only.is_empty() => {
                    let r = runtime_round(tasks);
                    let u = unit_costs(4 * (tasks + 1));
                    eprintln!(
                        "  round {round} unit costs: git rev-parse HEAD {:.2} ms, new 1 KiB file {:.3} ms, \
                         write + rename over {:.3} ms",
                        u.0 * 1e3,
                        u.1 * 1e3,
                        u.2 * 1e3
                    );
                    units.push(u);
                    log_runtime_round(round, &r);
                    runtime_rounds.push(r);
                }
                "runtime" => {
                    let r = runtime_round(tasks);
                    log_runtime_round(round, &r);
                    runtime_rounds.push(r);
                }
                "bare" => {
                    let (wall, iterations) = bare_round(tasks, &prompt, &review_prompt);
                    eprintln!(
                        "  round {round} bare: {:.3} s wall, {iterations} iterations",
                        wall.as_secs_f64()
                    );
                    bare.push(wall.as_secs_f64());
                }
                _ => {
                    let (wall, iterations) = shell_round(tasks, &prompt, &review_prompt);
                    eprintln!(
                        "  round {round} shell: {:.3} s wall, {iterations} iterations",
                        wall.as_secs_f64()
                    );
                    shell.push(wall.as_secs_f64());
                }
            }
        }
    }
    if runtime_rounds.is_empty() || bare.is_empty() || shell.is_empty() {
        return;
    }
    let steps = runtime_rounds[0].steps as f64;
    let iterations = runtime_rounds[0].iterations;
    let runtime_wall = median(
        runtime_rounds
            .iter()
            .map(|r| r.wall.as_secs_f64())
            .collect(),
    );
    let own_cpu = median(
        runtime_rounds
            .iter()
            .map(|r| r.own_cpu.as_secs_f64())
            .collect(),
    );
    let children_cpu = median(
        runtime_rounds
            .iter()
            .map(|r| r.children_cpu.as_secs_f64())
            .collect(),
    );
    let in_steps = median(
        runtime_rounds
            .iter()
            .map(|r| r.in_steps.as_secs_f64())
            .collect(),
    );
    let append_s = median(runtime_rounds.iter().map(|r| r.appends.1).collect());
    let appends = runtime_rounds[0].appends.0;
    let bare_wall = median(bare.clone());
    let shell_wall = median(shell.clone());
    let ms = |s: f64| s * 1e3;
    println!(
        "overhead: {rounds} rounds, {tasks} tasks = {iterations} iterations, {steps} steps (medians)"
    );
    println!(
        "  runtime run:   {:.3} s wall ({:.2} ms/step); own CPU {:.3} s ({:.2} ms/step); children CPU {:.3} s",
        runtime_wall,
        ms(runtime_wall) / steps,
        own_cpu,
        ms(own_cpu) / steps,
        children_cpu
    );
    println!(
        "  bare processes: {:.3} s wall ({:.2} ms/step)",
        bare_wall,
        ms(bare_wall) / steps
    );
    println!(
        "  plain shell loop: {:.3} s wall ({:.2} ms/step)",
        shell_wall,
        ms(shell_wall) / steps
    );
    // The bar's figure: per round, against the bare processes of the same round.
    let per_round: Vec<f64> = runtime_rounds
        .iter()
        .zip(&bare)
        .map(|(r, b)| ms(r.wall.as_secs_f64() - b) / steps)
        .collect();
    let (mid, low, high) = spread(&per_round);
    println!(
        "  runtime overhead per step, (runtime - bare of the same round) / steps: median {mid:.2} ms, \
         range {low:.2}-{high:.2} ms over {} rounds (bar 2 ms); per round {per_round:.2?}",
        per_round.len()
    );
    let append_ms = ms(median(runtime_rounds.iter().map(|r| r.appends.1).collect()))
        / runtime_rounds[0].appends.0 as f64;
    loop_benches::row(&[
        &format!("{tasks} tasks, {steps} steps"),
        &format!("{:.2} ms", ms(runtime_wall) / steps),
        &format!("{:.2} ms", ms(bare_wall) / steps),
        &format!(
            "{mid:.2} ms ({low:.2}–{high:.2}, {} rounds)",
            per_round.len()
        ),
        &format!("{:.2} ms", ms(own_cpu) / steps),
        &format!("{append_ms:.2} ms"),
        &format!("{:.2}", shell_wall / runtime_wall),
    ]);
    let ratios: Vec<f64> = runtime_rounds
        .iter()
        .zip(&bare)
        .map(|(r, b)| r.wall.as_secs_f64() / b)
        .collect();
    let (mid, low, high) = spread(&ratios);
    println!("  runtime / bare: median {mid:.2}, range {low:.2}-{high:.2}");
    println!(
        "  runtime overhead of the medians = runtime - bare: {:.3} s, {:.2} ms/step",
        runtime_wall - bare_wall,
        ms(runtime_wall - bare_wall) / steps
    );
    println!(
        "  shell loop overhead = shell - bare: {:.3} s, {:.2} ms/step",
        shell_wall - bare_wall,
        ms(shell_wall - bare_wall) / steps
    );
    println!(
        "  shell / runtime = {:.2} (bar >= 3)",
        shell_wall / runtime_wall
    );
    println!(
        "  between steps (wall - sum of step durations): {:.3} s, {:.2} ms/step; \
         {appends} journal appends took {:.3} s ({:.2} ms each)",
        runtime_wall - in_steps,
        ms(runtime_wall - in_steps) / steps,
        append_s,
        ms(append_s) / appends as f64
    );
    let ratios: Vec<f64> = runtime_rounds
        .iter()
        .zip(&shell)
        .map(|(r, s)| s / r.wall.as_secs_f64())
        .collect();
    println!("  per-round shell/runtime ratios: {ratios:.2?}");
    if !units.is_empty() {
        let git = median(units.iter().map(|u| u.0).collect());
        let create = median(units.iter().map(|u| u.1).collect());
        let rename = median(units.iter().map(|u| u.2).collect());
        println!(
            "  unit costs (medians): git rev-parse HEAD {:.2} ms, new 1 KiB file {:.3} ms, write + rename over {:.3} ms",
            ms(git),
            ms(create),
            ms(rename)
        );
    }
}
