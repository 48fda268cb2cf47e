//! `loopd_load scale`: many concurrent runs of a sleeping agent; completion, peak RSS and the growth curve.

use super::*;

pub(super) async fn scale(runs: usize, sleep_ms: u64, tasks: usize) {
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
        "  daemon memory: idle RSS {:.1} MiB; peak RSS sampled {:.1} MiB ({:.1} anonymous, {:.1} files; {} threads then); VmHWM {:.1} MiB (bar < 300); RSS after {:.1} MiB",
        mib(idle.rss),
        mib(peak.rss),
        mib(peak.anon),
        mib(peak.file),
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
