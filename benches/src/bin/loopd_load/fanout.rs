//! `loopd_load fanout`: many SSE subscribers on one run; every event reaches all, with its latency percentiles.

use super::*;

/// What one subscriber saw: every seq, and the latency (receive time - ts_ms) of each event
/// stamped at or after `from_ms`.
pub(super) struct Seen {
    seqs: Vec<u64>,
    latencies: Vec<f64>,
}

pub(super) async fn subscribe(
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

pub(super) async fn fanout_round(
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

pub(super) async fn fanout(subscribers: usize, tasks: usize, sleep_ms: u64, baseline: bool) {
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
