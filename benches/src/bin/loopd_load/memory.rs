//! `loopd_load memory`: bursts of clients, downloads and output against the daemon's memory.

use super::*;

/// The daemon's memory under many clients replaying a finished run's history at once, and under
/// parallel downloads of a large artifact: the peak during each burst, and what is left once the
/// clients are gone (the hardening bars: bounded per client, returned after).
pub(super) async fn memory(
    clients: usize,
    bursts: usize,
    tasks: usize,
    downloads: usize,
    mebibytes: u64,
) {
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
