//! `loopd_load cli`: `loopctl list --json` over many runs beside the same request in-process and by curl.

use super::*;

/// `loopctl` beside this binary, or `$LOOPCTL_BIN`.
pub(super) fn loopctl_bin() -> std::path::PathBuf {
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
pub(super) fn time_command(
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

pub(super) fn cli(runs: u64, repeat: usize, tokio: &tokio::runtime::Runtime) {
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
