//! Load tests of the real daemon binary against the quality bars (`benches/load/run.sh` runs
//! them all). Each prints its figures and its same-run baseline.
//!
//! ```text
//! loopd_load scale  [--runs 200] [--sleep-ms 1000] [--tasks 1]
//! loopd_load output [--mib 100] [--line-bytes 1024]
//! loopd_load fanout [--subscribers 1000] [--tasks 20] [--sleep-ms 200] [--baseline 1]
//! loopd_load cli    [--runs 10000] [--repeat 20]
//! loopd_load memory [--clients 2000] [--bursts 3] [--tasks 100] [--downloads 10] [--mib 100]
//! loopd_load takeover [--runs 4] [--lease-ms 5000]
//! ```
//!
//! `loopd` and `noop_agent` are taken from beside this binary (or `$LOOPD_BIN`, `$NOOP_AGENT`);
//! scratch files go under `$LOOP_BENCH_DIR` (else the system temp dir).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use loop_benches::bench_dir;
use loop_benches::daemon::{
    Daemon, Measured, Memory, api, cpu_of, memory_of, mib, noop_agent_bin, now_ms, open_files,
    run_body, start,
};
use loop_benches::scratch::{git_repo, git_repos};
use loop_core::{RunId, Seq};
use serde_json::{Value, json};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: loopd_load scale|output|fanout [--flag value]…");
        std::process::exit(2);
    }
    let command = args.remove(0);
    let flags: HashMap<String, String> = args
        .chunks(2)
        .map(|pair| {
            let key = pair[0].trim_start_matches("--").to_owned();
            let value = pair.get(1).cloned().unwrap_or_default();
            (key, value)
        })
        .collect();
    let flag = |name: &str, default: u64| -> u64 {
        flags
            .get(name)
            .map_or(default, |v| v.replace('_', "").parse().expect("a number"))
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match command.as_str() {
        "scale" => tokio.block_on(scale(
            flag("runs", 200) as usize,
            flag("sleep-ms", 1000),
            flag("tasks", 1) as usize,
        )),
        "output" => tokio.block_on(output(flag("mib", 100), flag("line-bytes", 1024))),
        "fanout" => tokio.block_on(fanout(
            flag("subscribers", 1000) as usize,
            flag("tasks", 20) as usize,
            flag("sleep-ms", 200),
            flag("baseline", 1) != 0,
        )),
        "cli" => cli(flag("runs", 10_000), flag("repeat", 20) as usize, &tokio),
        "memory" => tokio.block_on(memory(
            flag("clients", 2000) as usize,
            flag("bursts", 3) as usize,
            flag("tasks", 100) as usize,
            flag("downloads", 10) as usize,
            flag("mib", 100),
        )),
        "takeover" => takeover(flag("runs", 4) as usize, flag("lease-ms", 5000)),
        other => {
            eprintln!("unknown command {other:?}: scale, output, fanout, cli, memory or takeover");
            std::process::exit(2);
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("http client")
}

async fn post_run(client: &reqwest::Client, daemon: &Daemon, body: &Value) -> String {
    let response = client
        .post(daemon.url("/runs"))
        .json(body)
        .send()
        .await
        .expect("POST /runs");
    let status = response.status();
    let value: Value = response.json().await.expect("POST /runs answers JSON");
    assert!(status.is_success(), "POST /runs: {status} {value}");
    value["run"]["id"].as_str().expect("run id").to_owned()
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

/// Samples the daemon's memory every `every` until stopped; returns the peak RSS seen.
fn sampler(pid: u32, every: Duration) -> (Arc<AtomicBool>, std::thread::JoinHandle<Memory>) {
    let (stop, timeline) = timeline(pid, every);
    let handle = std::thread::spawn(move || {
        let samples = timeline.join().expect("sampler");
        samples
            .into_iter()
            .map(|(_, m)| m)
            .max_by_key(|m| m.rss)
            .unwrap_or_default()
    });
    (stop, handle)
}

/// Samples the daemon's memory every `every` until stopped: (Unix ms, memory) pairs.
#[allow(clippy::type_complexity)]
fn timeline(
    pid: u32,
    every: Duration,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<Vec<(f64, Memory)>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !flag.load(Ordering::Relaxed) {
            samples.push((now_ms(), memory_of(pid)));
            std::thread::sleep(every);
        }
        samples
    });
    (stop, handle)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------------------------
// scale: N concurrent runs whose agent sleeps a while each step.

async fn scale(runs: usize, sleep_ms: u64, tasks: usize) {
    let dir = bench_dir();
    let started_setup = Instant::now();
    let repos = git_repos(dir.path(), runs, tasks);
    eprintln!(
        "scale: {runs} workspaces of {tasks} task(s) in {:.1} s",
        started_setup.elapsed().as_secs_f64()
    );
    let noop = noop_agent_bin();
    let agent_cmd = format!("{} --sleep-ms {sleep_ms}", noop.display());
    // A finished, verified plan completes the run without another call: one call per task.
    let iterations = tasks;

    // Baseline: the same agent processes, `runs` at a time, with nothing around them.
    let baseline = {
        let plans = dir.path().join("baseline");
        std::fs::create_dir_all(&plans).expect("baseline dir");
        let started = Instant::now();
        for _ in 0..iterations {
            let children: Vec<std::process::Child> = (0..runs)
                .map(|n| {
                    std::process::Command::new("sh")
                        .args(["-c", &agent_cmd])
                        .env("LOOP_PHASE", "implementation")
                        .env("LOOP_PLAN_PATH", plans.join(format!("plan-{n}.md")))
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .spawn()
                        .expect("spawn the agent")
                })
                .collect();
            for mut child in children {
                child.wait().expect("wait");
            }
        }
        started.elapsed()
    };
    eprintln!(
        "scale: baseline, {runs} bare agents x {iterations} rounds: {:.2} s",
        baseline.as_secs_f64()
    );

    let data = dir.path().join("data");
    let max = runs.to_string();
    let daemon = start(&data, &["--max-concurrency", &max]);
    let client = client();
    let idle = daemon.memory();
    let cpu0 = daemon.cpu();
    let (stop, peak) = sampler(daemon.pid(), Duration::from_millis(50));

    // Follow every run's start and end on the global stream (from the first event: none is
    // missed however late the stream connects).
    let mut events = api(&daemon, client.clone()).events(None, Seq(0));
    let started = Instant::now();
    let follower = tokio::spawn(async move {
        let (mut running, mut peak_running, mut ended, mut steps) =
            (0usize, 0usize, 0usize, 0usize);
        let mut ends: Vec<f64> = Vec::new();
        let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
        while let Some(record) = events.next().await {
            let Ok(record) = record else { continue };
            match record.event.event_type().as_str() {
                "STEP_STARTED" => steps += 1,
                "RUN_STARTED" => {
                    running += 1;
                    peak_running = peak_running.max(running);
                }
                kind @ ("RUN_COMPLETED" | "RUN_FAILED" | "RUN_CANCELED") => {
                    running = running.saturating_sub(1);
                    ended += 1;
                    ends.push(started.elapsed().as_secs_f64());
                    *statuses.entry(kind.to_owned()).or_default() += 1;
                    if ended == runs {
                        break;
                    }
                }
                _ => {}
            }
        }
        (peak_running, ends, statuses, steps)
    });

    let mut submits = tokio::task::JoinSet::new();
    for repo in &repos {
        let body = run_body(repo, &agent_cmd, json!({ "reviewer": false }));
        let (client, url) = (client.clone(), daemon.url("/runs"));
        submits.spawn(async move {
            let response = client.post(url).json(&body).send().await.expect("POST");
            assert!(response.status().is_success(), "POST /runs");
        });
    }
    submits.join_all().await;
    let submitted = started.elapsed();
    let (peak_running, ends, statuses, steps) =
        match tokio::time::timeout(Duration::from_secs(600), follower).await {
            Ok(result) => result.expect("follower"),
            Err(_) => panic!("not every run ended within 10 minutes"),
        };
    let all_ended = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak = peak.join().expect("sampler");
    let end = daemon.memory();
    let cpu = daemon.cpu() - cpu0;

    let listed = get_json(&client, &daemon.url("/runs?limit=1000")).await;
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for run in listed["runs"].as_array().into_iter().flatten() {
        *by_status
            .entry(run["status"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    let median_end = {
        let mut ends = ends.clone();
        ends.sort_by(f64::total_cmp);
        percentile(&ends, 50.0)
    };
    println!("scale: {runs} runs x {iterations} iterations, agent sleeps {sleep_ms} ms a call");
    println!(
        "  submitted all in {:.2} s; all ended in {:.2} s (median run end {:.2} s); peak running at once {peak_running}",
        submitted.as_secs_f64(),
        all_ended.as_secs_f64(),
        median_end
    );
    println!("  terminal events {statuses:?}; GET /runs statuses {by_status:?}");
    println!(
        "  baseline: the bare agents, {runs} at a time, {iterations} rounds: {:.2} s; loopd/baseline {:.2}",
        baseline.as_secs_f64(),
        all_ended.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "  daemon memory: idle RSS {:.1} MiB; peak RSS sampled {:.1} MiB ({} threads then); VmHWM {:.1} MiB (bar < 300); RSS after {:.1} MiB",
        mib(idle.rss),
        mib(peak.rss),
        peak.threads,
        mib(end.hwm),
        mib(end.rss)
    );
    println!(
        "  daemon CPU during the test: {:.2} s ({:.1} ms per run, {:.2} ms per step over {steps} steps)",
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e3 / runs as f64,
        cpu.as_secs_f64() * 1e3 / steps.max(1) as f64
    );
    let completed = statuses.get("RUN_COMPLETED").copied().unwrap_or(0);
    loop_benches::row(&[
        &format!("{runs}"),
        &format!("{completed}/{runs}"),
        &format!("{:.2} s", all_ended.as_secs_f64()),
        &format!("{:.2} s", baseline.as_secs_f64()),
        &format!(
            "{:.2} ms",
            (all_ended.as_secs_f64() - baseline.as_secs_f64()).max(0.0) * 1e3 / steps.max(1) as f64
        ),
        &format!("{:.2} ms", cpu.as_secs_f64() * 1e3 / steps.max(1) as f64),
        &format!("{:.1} MiB", mib(peak.rss)),
        &format!("{:.1} MiB", mib(end.hwm)),
    ]);
}

// ---------------------------------------------------------------------------------------------
// output: one agent printing a lot; the log on disk and the live SSE stream.

async fn output(mebibytes: u64, line_bytes: u64) {
    let dir = bench_dir();
    let bytes = mebibytes * 1024 * 1024;
    let noop = noop_agent_bin();
    let timing = dir.path().join("timing");
    let print = format!(
        "{} --print-bytes {bytes} --line-bytes {line_bytes}",
        noop.display()
    );

    // Baselines: the same printing into a file through a shell redirect, and through a pipe.
    let baseline = |what: &str, sink: &str| {
        let timing = dir.path().join(format!("timing-{what}"));
        let plan = dir.path().join(format!("plan-{what}.md"));
        std::fs::write(&plan, "- [ ] one\n").expect("plan");
        let out = dir.path().join(format!("out-{what}"));
        let command = format!(
            "{print} --timing {} {sink} {}",
            timing.display(),
            out.display()
        );
        let started = Instant::now();
        let status = std::process::Command::new("sh")
            .args(["-c", &command])
            .env("LOOP_PLAN_PATH", &plan)
            .env("LOOP_PHASE", "implementation")
            .stdin(std::process::Stdio::null())
            .status()
            .expect("baseline");
        assert!(status.success());
        let wall = started.elapsed();
        let _ = std::fs::remove_file(&out);
        (wall, print_seconds(&timing))
    };
    let (file_wall, file_print) = baseline("file", ">");
    let (pipe_wall, pipe_print) = baseline("pipe", "| cat >");

    let repo = git_repo(dir.path(), "repo", 1);
    let daemon = start(&dir.path().join("data"), &[]);
    let client = client();
    // Let the daemon settle before its idle RSS is taken.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = daemon.memory();
    let cpu0 = daemon.cpu();
    let client_cpu0 = cpu_of(std::process::id());
    let (stop, samples) = timeline(daemon.pid(), Duration::from_millis(10));

    // The agent waits for a file, so the live stream is attached before it prints.
    let go = dir.path().join("go");
    let agent_cmd = format!(
        "{print} --timing {} --wait-file {}",
        timing.display(),
        go.display()
    );
    let body = run_body(&repo, &agent_cmd, json!({ "reviewer": false }));
    let run_id = post_run(&client, &daemon, &body).await;
    let api = api(&daemon, client.clone());
    let mut events = api.events(Some(run_id.parse().expect("a run id")), Seq(0));
    let step_id = loop {
        let record = events
            .next()
            .await
            .expect("a STEP_STARTED")
            .expect("an event");
        if let loop_core::event::Event::StepStarted(started) = record.event {
            break started.step_id;
        }
    };
    // The rest of the run's events, with their stamps: when the step and the run finished.
    let follow = tokio::spawn(async move {
        let mut stamps: Vec<(String, f64)> = Vec::new();
        while let Some(record) = events.next().await {
            let Ok(record) = record else { continue };
            let kind = record.event.event_type().as_str().to_owned();
            stamps.push((kind, record.ts_ms as f64));
        }
        stamps
    });
    let mut output = api.output(run_id.parse().expect("a run id"), Some(step_id), 0);
    std::fs::write(&go, "").expect("release the agent");
    let (mut content, mut frames) = (0u64, 0u64);
    let mut first_ms = None;
    let mut last_content_ms = f64::NAN;
    let mut contiguous = true;
    let mut next_offset = 0u64;
    while let Some(chunk) = output.next().await {
        let chunk = chunk.expect("a chunk of output");
        contiguous &= chunk.offset == next_offset;
        next_offset = chunk.offset + chunk.content.len() as u64;
        content += chunk.content.len() as u64;
        frames += 1;
        last_content_ms = now_ms();
        first_ms.get_or_insert(last_content_ms);
    }
    let stream_end_ms = now_ms();
    let client_cpu = cpu_of(std::process::id()) - client_cpu0;
    let step_id = step_id.to_string();
    // Wait for the run to end (its artifacts are recorded after the step's output).
    loop {
        let run = get_json(&client, &daemon.url(&format!("/runs/{run_id}"))).await;
        let status = run["run"]["status"].as_str().unwrap_or("").to_owned();
        if ["COMPLETED", "FAILED", "CANCELED"].contains(&status.as_str()) {
            assert_eq!(status, "COMPLETED", "{run}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = samples.join().expect("sampler");
    let end = daemon.memory();
    let cpu = daemon.cpu() - cpu0;
    let stamps = follow.await.expect("events");
    let stamp = |kind: &str| {
        stamps
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(f64::NAN, |(_, ts)| *ts)
    };
    let (print_start, print_end) = print_times(&timing);
    let step_finished = stamp("STEP_FINISHED");
    let peak_in = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, m)| m.rss)
            .max()
            .unwrap_or(0)
    };
    let peak_printing = peak_in(print_start, print_end);
    let peak_after = peak_in(print_end, f64::INFINITY);
    let peak = samples.iter().map(|(_, m)| m.rss).max().unwrap_or(0);
    let steps = get_json(&client, &daemon.url(&format!("/runs/{run_id}/steps"))).await;
    let step = steps["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == step_id.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    let log_bytes = step["output_bytes"].as_u64().unwrap_or(0);
    let on_disk = step["output_path"]
        .as_str()
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len());

    // Baseline for the live stream: the same bytes over plain HTTP from the same daemon to the
    // same client (GET of the finished .log as an artifact; after the memory was read, since
    // the daemon reads the file whole to serve it).
    let log_name = step["output_path"]
        .as_str()
        .and_then(|p| Path::new(p).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let started = Instant::now();
    let mut response = client
        .get(daemon.url(&format!("/runs/{run_id}/artifacts/{log_name}")))
        .send()
        .await
        .expect("GET artifact");
    let mut fetched = 0u64;
    while let Ok(Some(chunk)) = response.chunk().await {
        fetched += chunk.len() as u64;
    }
    let fetch_s = started.elapsed().as_secs_f64();

    let rate = |bytes: u64, secs: f64| bytes as f64 / secs / 1e6;
    println!(
        "  baseline for the live stream: GET of the finished .log as an artifact, {fetched} B in {fetch_s:.2} s = {:.0} MB/s",
        rate(fetched, fetch_s)
    );
    let capture_s = (print_end - print_start) / 1e3;
    let sse_s = (last_content_ms - print_start) / 1e3;
    println!(
        "output: the agent prints {mebibytes} MiB in lines of {line_bytes} B ({} lines)",
        bytes / line_bytes
    );
    println!(
        "  baseline, same printing into a file (sh redirect): {:.0} MB/s ({:.2} s wall); through a pipe into cat > file: {:.0} MB/s ({:.2} s wall)",
        rate(bytes, file_print),
        file_wall.as_secs_f64(),
        rate(bytes, pipe_print),
        pipe_wall.as_secs_f64()
    );
    println!(
        "  captured by loopd: the agent's printing took {:.2} s = {:.0} MB/s (bar >= 200 MB/s); step output_bytes {log_bytes}, .log on disk {on_disk} B",
        capture_s,
        rate(bytes, capture_s)
    );
    println!(
        "  live SSE: {content} B of content in {frames} frames, contiguous offsets: {contiguous}; \
         first frame {:.0} ms after printing began, last {:.2} s after: {:.0} MB/s of content (bar >= 200 MB/s); \
         the stream closed {:.2} s after printing began; client CPU {:.2} s",
        first_ms.unwrap_or(f64::NAN) - print_start,
        sse_s,
        rate(content, sse_s),
        (stream_end_ms - print_start) / 1e3,
        client_cpu.as_secs_f64()
    );
    println!(
        "  the agent's printing ended {:.2} s after it began; STEP_FINISHED stamped {:.2} s after it ended; RUN_COMPLETED {:.2} s after",
        (print_end - print_start) / 1e3,
        (step_finished - print_end) / 1e3,
        (stamp("RUN_COMPLETED") - print_end) / 1e3
    );
    println!(
        "  daemon memory: idle RSS {:.1} MiB; peak RSS sampled {:.1} MiB ({:.1} MiB while the agent printed, {:.1} MiB after); \
         VmHWM {:.1} MiB; growth HWM - idle = {:.1} MiB (bar < 50); RSS after {:.1} MiB",
        mib(idle.rss),
        mib(peak),
        mib(peak_printing),
        mib(peak_after),
        mib(end.hwm),
        mib(end.hwm.saturating_sub(idle.rss)),
        mib(end.rss)
    );
    println!("  daemon CPU during the run: {:.2} s", cpu.as_secs_f64());
    loop_benches::row(&[
        &format!("{mebibytes} MiB in lines of {line_bytes} B"),
        &format!("{:.0} MB/s", rate(bytes, capture_s)),
        &format!("{:.0} MB/s", rate(content, sse_s)),
        &format!("{:.0} MB/s", rate(bytes, pipe_print)),
        &format!("{:.0} MB/s", rate(bytes, file_print)),
        &format!("{:.1} MiB", mib(end.hwm.saturating_sub(idle.rss))),
    ]);
}

fn print_times(path: &Path) -> (f64, f64) {
    let text = std::fs::read_to_string(path).expect("the agent's timing file");
    let line = text.lines().next().expect("a timing line");
    let mut parts = line
        .split_whitespace()
        .map(|n| n.parse::<f64>().expect("ns") / 1e6);
    (parts.next().expect("start"), parts.next().expect("end"))
}

fn print_seconds(path: &Path) -> f64 {
    let (start, end) = print_times(path);
    (end - start) / 1e3
}

// ---------------------------------------------------------------------------------------------
// fanout: many SSE subscribers on one run's events.

/// What one subscriber saw: every seq, and the latency (receive time - ts_ms) of each event
/// stamped at or after `from_ms`.
struct Seen {
    seqs: Vec<u64>,
    latencies: Vec<f64>,
}

async fn subscribe(
    client: loop_client::Client,
    run_id: RunId,
    connected: Arc<AtomicU64>,
    from_ms: Arc<AtomicU64>,
) -> Seen {
    let mut events = client.events(Some(run_id), Seq(0));
    let mut seen = Seen {
        seqs: Vec::new(),
        latencies: Vec::new(),
    };
    while let Some(record) = events.next().await {
        let received = now_ms();
        let record = record.expect("an event");
        if seen.seqs.is_empty() {
            // The run's history comes first: its first event says the stream is open.
            connected.fetch_add(1, Ordering::SeqCst);
        }
        seen.seqs.push(record.seq.0);
        let from = from_ms.load(Ordering::SeqCst) as f64;
        let ts_ms = record.ts_ms as f64;
        if from > 0.0 && ts_ms >= from {
            seen.latencies.push(received - ts_ms);
        }
    }
    seen
}

async fn fanout_round(
    daemon: &Daemon,
    client: &reqwest::Client,
    repo: &Path,
    gate: &Path,
    subscribers: usize,
    sleep_ms: u64,
) {
    let agent_cmd = format!(
        "{} --sleep-ms {sleep_ms} --wait-file {}",
        noop_agent_bin().display(),
        gate.display()
    );
    let body = run_body(
        repo,
        &agent_cmd,
        json!({ "reviewer": true, "verify_cmds": "true", "iterations": 500 }),
    );
    let run_id = post_run(client, daemon, &body).await;
    let connected = Arc::new(AtomicU64::new(0));
    let from_ms = Arc::new(AtomicU64::new(0));
    let api = api(daemon, client.clone());
    let run_id: RunId = run_id.parse().expect("a run id");
    let mut tasks = tokio::task::JoinSet::new();
    let connect_started = Instant::now();
    for _ in 0..subscribers {
        tasks.spawn(subscribe(
            api.clone(),
            run_id,
            Arc::clone(&connected),
            Arc::clone(&from_ms),
        ));
    }
    while connected.load(Ordering::SeqCst) < subscribers as u64 {
        assert!(
            connect_started.elapsed() < Duration::from_secs(60),
            "only {} of {subscribers} subscribers connected in 60 s",
            connected.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connect_time = connect_started.elapsed();
    let mem_connected = daemon.memory();
    let fds_connected = open_files(daemon.pid(), "loopd.db");
    // Count only events stamped from now on: the catch-up of earlier ones is no latency.
    tokio::time::sleep(Duration::from_millis(200)).await;
    from_ms.store(now_ms().ceil() as u64, Ordering::SeqCst);
    let cpu0 = daemon.cpu();
    let started = Instant::now();
    std::fs::write(gate, "").expect("open the gate");
    let seen: Vec<Seen> = tasks.join_all().await;
    let elapsed = started.elapsed();
    let cpu = daemon.cpu() - cpu0;
    let _ = std::fs::remove_file(gate);

    let all: Value = get_json(
        client,
        &daemon.url(&format!("/runs/{run_id}/events?format=json")),
    )
    .await;
    let expected: Vec<u64> = all["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    let expected_set: HashSet<u64> = expected.iter().copied().collect();
    let complete = seen
        .iter()
        .filter(|s| {
            s.seqs == expected || s.seqs.iter().copied().collect::<HashSet<_>>() == expected_set
        })
        .count();
    let in_order = seen.iter().filter(|s| s.seqs == expected).count();
    let missing: usize = seen
        .iter()
        .map(|s| {
            let got: HashSet<u64> = s.seqs.iter().copied().collect();
            expected_set.difference(&got).count()
        })
        .sum();
    let mut latencies: Vec<f64> = seen.iter().flat_map(|s| s.latencies.clone()).collect();
    latencies.sort_by(f64::total_cmp);
    let timed_events = seen.first().map_or(0, |s| s.latencies.len());
    println!(
        "fanout: {subscribers} subscriber(s) on one run ({} events; {timed_events} stamped after all were connected, timed)",
        expected.len()
    );
    let mem_after = daemon.memory();
    let fds_after = open_files(daemon.pid(), "loopd.db");
    println!(
        "  connected all in {:.2} s; daemon RSS then {:.1} MiB, {} threads, {} open fds of which {} on loopd.db; \
         after the run and its streams ended: RSS {:.1} MiB, {} threads, {} fds on loopd.db",
        connect_time.as_secs_f64(),
        mib(mem_connected.rss),
        mem_connected.threads,
        fds_connected.0,
        fds_connected.1,
        mib(mem_after.rss),
        mem_after.threads,
        fds_after.1
    );
    println!(
        "  every event reached every subscriber: {} ({complete}/{subscribers} complete, {in_order} in seq order, {missing} (subscriber, event) pairs missing)",
        complete == subscribers
    );
    println!(
        "  latency receive - ts_ms over {} deliveries: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms (bar < 100), max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  the run took {:.2} s after the gate opened; daemon CPU then {:.2} s",
        elapsed.as_secs_f64(),
        cpu.as_secs_f64()
    );
    loop_benches::row(&[
        &format!("{subscribers}"),
        &format!("{complete}/{subscribers}"),
        &format!("{:.1} ms", percentile(&latencies, 50.0)),
        &format!("{:.1} ms", percentile(&latencies, 99.0)),
        &format!("{:.1} MiB", mib(mem_connected.rss)),
    ]);
}

async fn fanout(subscribers: usize, tasks: usize, sleep_ms: u64, baseline: bool) {
    let dir = bench_dir();
    let daemon = start(&dir.path().join("data"), &["--max-concurrency", "4"]);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = daemon.memory();
    // Baseline in the same daemon: one subscriber on the same kind of run (`--baseline 0`
    // skips it, so the log is nearly empty when the many subscribers connect).
    if baseline {
        let one = git_repo(dir.path(), "repo-one", tasks);
        fanout_round(
            &daemon,
            &client,
            &one,
            &dir.path().join("gate-one"),
            1,
            sleep_ms,
        )
        .await;
    }
    let many = git_repo(dir.path(), "repo-many", tasks);
    fanout_round(
        &daemon,
        &client,
        &many,
        &dir.path().join("gate-many"),
        subscribers,
        sleep_ms,
    )
    .await;
    let end = daemon.memory();
    println!(
        "  daemon memory: idle RSS {:.1} MiB, VmHWM {:.1} MiB; client process CPU {:.2} s",
        mib(idle.rss),
        mib(end.hwm),
        cpu_of(std::process::id()).as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// cli: `loopctl list --json` against a daemon whose log holds many finished runs.

/// `loopctl` beside this binary, or `$LOOPCTL_BIN`.
fn loopctl_bin() -> std::path::PathBuf {
    if let Some(bin) = std::env::var_os("LOOPCTL_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe.parent().expect("exe dir").join("loopctl");
    assert!(
        bin.is_file(),
        "no loopctl beside {}: cargo build --release -p loopctl, or set LOOPCTL_BIN",
        exe.display()
    );
    bin
}

/// Times `command` `repeat` times; (median, p90, min) seconds, and the last stdout's length.
fn time_command(
    mut command: impl FnMut() -> std::process::Command,
    repeat: usize,
) -> (f64, f64, f64, usize) {
    let mut times = Vec::with_capacity(repeat);
    let mut out_len = 0;
    for _ in 0..repeat {
        let mut cmd = command();
        let started = Instant::now();
        let output = cmd.output().expect("run the command");
        times.push(started.elapsed().as_secs_f64());
        assert!(output.status.success(), "{cmd:?}: {output:?}");
        out_len = output.stdout.len();
    }
    times.sort_by(f64::total_cmp);
    (
        percentile(&times, 50.0),
        percentile(&times, 90.0),
        times[0],
        out_len,
    )
}

fn cli(runs: u64, repeat: usize, tokio: &tokio::runtime::Runtime) {
    let dir = bench_dir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    // 10,000 finished runs: each the events of a real run with 3 iterations (24 events), then
    // RUN_COMPLETED, appended in one go, from 8 threads.
    let started = Instant::now();
    loop_benches::fill_finished_runs(&data.join("loopd.db"), runs, 8);
    eprintln!(
        "cli: {runs} finished runs (25 events each) written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let daemon = start(&data, &[]);
    let loopctl = loopctl_bin();
    let base = daemon.base.clone();
    let list = |extra: &'static [&'static str]| {
        let (loopctl, base) = (loopctl.clone(), base.clone());
        move || {
            let mut cmd = std::process::Command::new(&loopctl);
            cmd.args(["--addr", &base, "list", "--json"])
                .args(extra)
                .env_remove("LOOPD_TOKEN")
                .stdin(std::process::Stdio::null());
            cmd
        }
    };
    // Warm-up: page cache, the daemon's first reads.
    let _ = time_command(list(&[]), 2);
    let default = time_command(list(&[]), repeat);
    let all = time_command(list(&["--limit", "0"]), repeat.min(5));
    let version = time_command(
        || {
            let mut cmd = std::process::Command::new(&loopctl);
            cmd.arg("--version");
            cmd
        },
        repeat,
    );
    let curl_url = daemon.url("/runs?limit=50");
    let curl = time_command(
        || {
            let mut cmd = std::process::Command::new("curl");
            cmd.args(["-sf", "-o", "/dev/null", &curl_url]);
            cmd
        },
        repeat,
    );
    // The same request from a warm in-process client: the daemon's own time plus loopback.
    let client = client();
    let mut inproc: Vec<f64> = tokio.block_on(async {
        let mut times = Vec::new();
        for _ in 0..repeat {
            let started = Instant::now();
            let body = client
                .get(daemon.url("/runs?limit=50"))
                .send()
                .await
                .expect("GET /runs")
                .bytes()
                .await
                .expect("body");
            times.push(started.elapsed().as_secs_f64());
            assert!(!body.is_empty());
        }
        times
    });
    inproc.sort_by(f64::total_cmp);
    // Every page, as `--limit 0` fetches them, from the warm in-process client.
    let mut paged: Vec<f64> = tokio.block_on(async {
        let mut times = Vec::new();
        for _ in 0..repeat.min(5) {
            let started = Instant::now();
            let mut before: Option<String> = None;
            let mut seen = 0usize;
            loop {
                let mut url = daemon.url("/runs?limit=1000");
                if let Some(id) = &before {
                    url.push_str(&format!("&before={id}"));
                }
                let page = get_json(&client, &url).await;
                seen += page["runs"].as_array().map_or(0, Vec::len);
                match page["next"].as_str() {
                    Some(next) => before = Some(next.to_owned()),
                    None => break,
                }
            }
            times.push(started.elapsed().as_secs_f64());
            assert_eq!(seen as u64, runs, "every run listed");
        }
        times
    });
    paged.sort_by(f64::total_cmp);
    // One run's events as SSE from the start (`GET /runs/{id}/events`), for the newest run of
    // the log, beside the same events as JSON (`?format=json`, read by run).
    let (sse_events, sse_s, json_events, json_s, sse_rss) = tokio.block_on(async {
        let newest = get_json(&client, &daemon.url("/runs?limit=1")).await;
        let id = newest["runs"][0]["id"].as_str().expect("a run").to_owned();
        let before = daemon.memory().rss;
        let started = Instant::now();
        let mut events =
            api(&daemon, client.clone()).events(Some(id.parse().expect("a run id")), Seq(0));
        let mut count = 0usize;
        while events.next().await.is_some() {
            count += 1;
        }
        let sse_s = started.elapsed().as_secs_f64();
        let rss = daemon.memory().rss.saturating_sub(before);
        let started = Instant::now();
        let all = get_json(
            &client,
            &daemon.url(&format!("/runs/{id}/events?format=json")),
        )
        .await;
        let json_s = started.elapsed().as_secs_f64();
        let json_count = all["events"].as_array().map_or(0, Vec::len);
        (count, sse_s, json_count, json_s, rss)
    });
    let ms = |s: f64| s * 1e3;
    println!(
        "cli: loopctl list --json against loopd with {runs} finished runs in its log ({repeat} times each)"
    );
    println!(
        "  loopctl list --json (newest 50, the default): median {:.1} ms, p90 {:.1} ms, min {:.1} ms, {} B of JSON (bar < 50 ms)",
        ms(default.0),
        ms(default.1),
        ms(default.2),
        default.3
    );
    println!(
        "  loopctl list --json --limit 0 (all {runs}, pages of 1000): median {:.1} ms, p90 {:.1} ms, min {:.1} ms, {} B",
        ms(all.0),
        ms(all.1),
        ms(all.2),
        all.3
    );
    println!(
        "  baselines: loopctl --version {:.1} ms; curl of GET /runs?limit=50 {:.1} ms; the same GET from a warm in-process client {:.1} ms (medians)",
        ms(version.0),
        ms(curl.0),
        ms(percentile(&inproc, 50.0))
    );
    println!(
        "  every page of 1000 (what --limit 0 asks for) from the warm in-process client, JSON parsed: median {:.1} ms",
        ms(percentile(&paged, 50.0))
    );
    println!(
        "  the newest run's {sse_events} events as SSE from the start: {:.1} ms (daemon RSS +{:.1} MiB); as JSON (?format=json): {json_events} events in {:.1} ms",
        ms(sse_s),
        mib(sse_rss),
        ms(json_s)
    );
    loop_benches::row(&[
        &format!("{runs}"),
        &format!("{:.1} ms", ms(default.0)),
        &format!("{:.1} ms", ms(all.0)),
        &format!("{:.1} ms", ms(curl.0)),
        &format!("{:.1} ms", ms(version.0)),
    ]);
}

/// The daemon's memory under many clients replaying a finished run's history at once, and under
/// parallel downloads of a large artifact: the peak during each burst, and what is left once the
/// clients are gone (the hardening bars: bounded per client, returned after).
async fn memory(clients: usize, bursts: usize, tasks: usize, downloads: usize, mebibytes: u64) {
    let dir = bench_dir();
    let repo = git_repo(dir.path(), "history", tasks);
    let daemon = start(&dir.path().join("data"), &[]);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");
    let agent_cmd = noop_agent_bin().display().to_string();
    let body = run_body(
        &repo,
        &agent_cmd,
        json!({ "reviewer": true, "verify_cmds": "true", "iterations": tasks + 5 }),
    );
    let run_id = post_run(&client, &daemon, &body).await;
    let url = daemon.url(&format!("/runs/{run_id}"));
    loop {
        let run = get_json(&client, &url).await;
        if ["COMPLETED", "FAILED", "CANCELED"]
            .contains(&run["run"]["status"].as_str().unwrap_or(""))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = get_json(
        &client,
        &daemon.url(&format!("/runs/{run_id}/events?format=json")),
    )
    .await["events"]
        .as_array()
        .map_or(0, Vec::len);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = daemon.memory();
    println!(
        "memory: history of {events} events; idle daemon RSS {:.1} MiB, db files open {}",
        mib(idle.rss),
        open_files(daemon.pid(), "loopd.db").1
    );
    for burst in 1..=bursts {
        let (stop, peak) = sampler(daemon.pid(), Duration::from_millis(20));
        let started = Instant::now();
        let mut readers = Vec::with_capacity(clients);
        let api = api(&daemon, client.clone());
        let run: RunId = run_id.parse().expect("a run id");
        for _ in 0..clients {
            let mut events = api.events(Some(run), Seq(0));
            readers.push(tokio::spawn(async move {
                let mut frames = 0usize;
                while events.next().await.is_some() {
                    frames += 1;
                }
                frames
            }));
        }
        let mut short = 0;
        for reader in readers {
            if reader.await.expect("reader") < events {
                short += 1;
            }
        }
        let took = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        let peak = peak.join().expect("sampler");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let soon = daemon.memory();
        // Idle blocking threads end after 10 s, handing back what they held.
        tokio::time::sleep(Duration::from_secs(12)).await;
        let later = daemon.memory();
        println!(
            "memory: burst {burst}: {clients} SSE clients replayed {events} events each in {:.1} s \
             ({short} short); peak RSS {:.1} MiB (+{:.1} over idle); after they left {:.1} MiB at \
             3 s, {:.1} MiB at 15 s; db files open {}, threads {} then {}",
            took.as_secs_f64(),
            mib(peak.rss),
            mib(peak.rss.saturating_sub(idle.rss)),
            mib(soon.rss),
            mib(later.rss),
            open_files(daemon.pid(), "loopd.db").1,
            soon.threads,
            later.threads
        );
        loop_benches::row(&[
            &format!("burst {burst}: {clients} SSE clients x {events} events"),
            &format!("{:.1} MiB", mib(idle.rss)),
            &format!("{:.1} MiB", mib(peak.rss)),
            &format!("{:.1} MiB", mib(later.rss)),
            &format!("{}", open_files(daemon.pid(), "loopd.db").1),
        ]);
    }
    // Downloads: a large file in the run's directory, fetched by many at once.
    let listed = get_json(&client, &daemon.url(&format!("/runs/{run_id}/artifacts"))).await;
    assert!(listed["artifacts"].is_array(), "{listed}");
    let run_dir = [
        repo.join(format!("logs/loop/run-{run_id}")),
        dir.path().join(format!("data/runs/run-{run_id}")),
    ]
    .into_iter()
    .find(|dir| dir.join("report.tsv").is_file())
    .expect("the run directory");
    let big = run_dir.join("big.log");
    {
        use std::io::Write;
        let chunk = vec![b'x'; 1024 * 1024];
        let mut file = std::fs::File::create(&big).expect("big file");
        for _ in 0..mebibytes {
            file.write_all(&chunk).expect("write");
        }
    }
    let before = daemon.memory();
    let (stop, peak) = sampler(daemon.pid(), Duration::from_millis(20));
    let started = Instant::now();
    let mut fetches = Vec::new();
    for _ in 0..downloads {
        let client = client.clone();
        let url = daemon.url(&format!("/runs/{run_id}/artifacts/big.log"));
        fetches.push(tokio::spawn(async move {
            let mut response = client.get(url).send().await.expect("download");
            let mut total = 0u64;
            while let Some(chunk) = response.chunk().await.expect("chunk") {
                total += chunk.len() as u64;
            }
            total
        }));
    }
    for fetch in fetches {
        assert_eq!(fetch.await.expect("fetch"), mebibytes * 1024 * 1024);
    }
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let peak = peak.join().expect("sampler");
    println!(
        "memory: {downloads} parallel downloads of {mebibytes} MiB in {:.1} s: peak RSS {:.1} MiB \
         (+{:.1} over before)",
        took.as_secs_f64(),
        mib(peak.rss),
        mib(peak.rss.saturating_sub(before.rss))
    );
    loop_benches::row(&[
        &format!("{downloads} downloads of {mebibytes} MiB"),
        &format!("{:.1} MiB", mib(before.rss)),
        &format!("{:.1} MiB", mib(peak.rss)),
        "",
        "",
    ]);
}

// ---------------------------------------------------------------------------------------------
// takeover: two nodes over one PostgreSQL log; the one driving every run is killed with SIGKILL,
// and the other claims each run. The baseline is the lease itself: no node may take a run
// sooner, so what is measured is the time beyond it.

fn takeover(runs: usize, lease_ms: u64) {
    let Some(server) = loop_testkit::postgres::Postgres::start("loopd_load takeover") else {
        eprintln!("takeover needs PostgreSQL (Debian: apt-get install postgresql)");
        std::process::exit(1);
    };
    let dir = bench_dir();
    let repos = git_repos(dir.path(), runs, 1);
    let lease = lease_ms.to_string();
    let concurrency = runs.to_string();
    // Nodes trust only nodes that prove the same token.
    let token_file = dir
        .path()
        .join("cluster-token")
        .to_string_lossy()
        .into_owned();
    let node = |name: &str| {
        start(
            &dir.path().join(name),
            &[
                "--store",
                server.url.as_str(),
                "--token-file",
                token_file.as_str(),
                "--lease-ms",
                lease.as_str(),
                "--max-concurrency",
                concurrency.as_str(),
                "--max-runs-per-workspace",
                concurrency.as_str(),
                "--node-name",
                name,
            ],
        )
    };
    let http = reqwest::blocking::Client::new();
    let get = |daemon: &Daemon, path: &str| -> Value {
        http.get(daemon.url(path))
            .send()
            .and_then(reqwest::blocking::Response::json)
            .unwrap_or(Value::Null)
    };
    let this_node = |daemon: &Daemon| -> String {
        get(daemon, "/nodes")["nodes"]
            .as_array()
            .and_then(|nodes| nodes.iter().find(|n| n["this"] == true))
            .and_then(|n| n["id"].as_str())
            .expect("the node in its own /nodes")
            .to_owned()
    };
    let mut a = node("a");
    let a_id = this_node(&a);
    // Only a drives: b starts once every run is a's.
    let agent = format!("{} --sleep-ms 600000", noop_agent_bin().display());
    let ids: Vec<String> = repos
        .iter()
        .map(|repo| {
            let body = run_body(repo, &agent, json!({"reviewer": false}));
            let answer: Value = http
                .post(a.url("/runs"))
                .json(&body)
                .send()
                .and_then(reqwest::blocking::Response::json)
                .expect("POST /runs");
            answer["run"]["id"].as_str().expect("a run id").to_owned()
        })
        .collect();
    let owner_and_step = |daemon: &Daemon, id: &str| {
        let run = get(daemon, &format!("/runs/{id}"))["run"].clone();
        (
            run["node"].as_str().unwrap_or_default().to_owned(),
            run["current_step"].is_object(),
        )
    };
    loop_testkit::until(
        "node a mid-step in every run",
        Duration::from_secs(60),
        || {
            ids.iter()
                .all(|id| owner_and_step(&a, id) == (a_id.clone(), true))
        },
    );
    let b = node("b");
    let b_id = this_node(&b);
    let killed = Instant::now();
    a.kill();
    let mut claimed: Vec<Option<f64>> = vec![None; ids.len()];
    let deadline = killed + Duration::from_millis(lease_ms * 4 + 30_000);
    while claimed.iter().any(Option::is_none) && Instant::now() < deadline {
        for (id, at) in ids.iter().zip(claimed.iter_mut()) {
            if at.is_none() && owner_and_step(&b, id).0 == b_id {
                *at = Some(killed.elapsed().as_secs_f64() * 1000.0);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut times: Vec<f64> = claimed.iter().flatten().copied().collect();
    times.sort_by(f64::total_cmp);
    assert_eq!(times.len(), ids.len(), "every run taken over: {claimed:?}");
    let first = times[0];
    let last = times[times.len() - 1];
    println!(
        "takeover: {runs} runs of a node killed with SIGKILL, lease {lease_ms} ms; claimed by the \
         other node after {first:.0}–{last:.0} ms (median {:.0}), {:.0}–{:.0} ms beyond the lease",
        percentile(&times, 50.0),
        first - lease_ms as f64,
        last - lease_ms as f64,
    );
    println!(
        "| takeover after SIGKILL ({runs} runs) | lease {lease_ms} ms | first claim {first:.0} ms \
         | last claim {last:.0} ms | beyond the lease {:.0}–{:.0} ms |",
        first - lease_ms as f64,
        last - lease_ms as f64,
    );
    drop(b);
}
