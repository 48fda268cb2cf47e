//! `loopd_load output`: an agent printing many MiB, captured to disk and streamed live; throughput and memory growth.

use super::*;

pub(super) async fn output(mebibytes: u64, line_bytes: u64) {
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

pub(super) fn print_times(path: &Path) -> (f64, f64) {
    let text = std::fs::read_to_string(path).expect("the agent's timing file");
    let line = text.lines().next().expect("a timing line");
    let mut parts = line
        .split_whitespace()
        .map(|n| n.parse::<f64>().expect("ns") / 1e6);
    (parts.next().expect("start"), parts.next().expect("end"))
}

pub(super) fn print_seconds(path: &Path) -> f64 {
    let (start, end) = print_times(path);
    (end - start) / 1e3
}

// ---------------------------------------------------------------------------------------------
// fanout: many SSE subscribers on one run's events.
