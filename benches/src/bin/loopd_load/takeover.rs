//! `loopd_load takeover`: the time a node takes to take over a dead node's runs.

use super::*;

pub(super) fn takeover(runs: usize, lease_ms: u64) {
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
