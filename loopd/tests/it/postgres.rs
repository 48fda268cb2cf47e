//! `loopd --store postgres://…`: the log in a real PostgreSQL server (`loop_testkit::postgres`).

use serde_json::json;

use crate::support::{get_json, repo, run_body, start_daemon, submit, wait_for_end};

/// A run on a daemon whose log is PostgreSQL completes; a daemon started again on another data
/// dir over the same database knows it, its events and its steps, and the log replays clean.
#[test]
fn a_run_on_a_postgres_log_completes_and_another_daemon_over_it_knows_it() {
    let Some(server) = loop_testkit::postgres::Postgres::start(
        "postgres::a_run_on_a_postgres_log_completes_and_another_daemon_over_it_knows_it",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 2);
    let id = {
        let daemon = start_daemon(
            &dir.path().join("data-1"),
            &[],
            &[("LOOPD_STORE", server.url.as_str())],
        );
        let id = submit(&daemon, &run_body(&repo, "one_task.sh", json!({})));
        let run = wait_for_end(&daemon, &id);
        assert_eq!(run["status"], "COMPLETED", "{run}");
        id
    };
    let daemon = start_daemon(
        &dir.path().join("data-2"),
        &["--store", server.url.as_str()],
        &[],
    );
    let run = get_json(&daemon, &format!("/runs/{id}"));
    assert_eq!(run["run"]["status"], "COMPLETED", "{run}");
    let steps = get_json(&daemon, &format!("/runs/{id}/steps"));
    assert!(
        steps["steps"].as_array().is_some_and(|s| !s.is_empty()),
        "{steps}"
    );
    let store = loop_store::PgStore::connect(&server.url).expect("connect");
    let report = loop_store::replay(&store, None).expect("replay");
    assert_eq!(report.differences, vec![]);
    assert!(report.events > 0 && report.runs == 1, "{report:?}");
}

/// `one_task.sh` after a second's thought a call, so that a kill lands mid-step; its path.
fn slow_agent(dir: &std::path::Path) -> std::path::PathBuf {
    let agent = dir.join("slow.sh");
    std::fs::write(
        &agent,
        format!("sleep 1\nexec {}\n", crate::support::stub("one_task.sh")),
    )
    .expect("write the agent");
    agent
}

/// The token file every node of a test's cluster shares: nodes trust only nodes that prove
/// the same token.
fn cluster_token(dir: &std::path::Path) -> String {
    dir.join("cluster-token").to_string_lossy().into_owned()
}

/// The id of the node `daemon` is, from its own `GET /nodes`.
fn node_id(daemon: &loop_testkit::Daemon) -> String {
    get_json(daemon, "/nodes")["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["this"] == true))
        .and_then(|n| n["id"].as_str())
        .expect("the node in its own /nodes")
        .to_owned()
}

/// The status of a run as `daemon` answers it.
fn status_on(daemon: &loop_testkit::Daemon, id: &str) -> serde_json::Value {
    get_json(daemon, &format!("/runs/{id}"))["run"].clone()
}

/// Three nodes over one log and one bare git repository as the remote; twelve runs by URL
/// submitted through one node, which is killed with SIGKILL while its agents work. Its runs are
/// taken over once its lease is over (the open step recorded INTERRUPTED, the takeover as a
/// claim naming it, the worktree made again from the pushed branch), every run completes with
/// its branch on the remote holding each task's commit once, each step finishes exactly once,
/// no two nodes ever drive one run, the log replays clean, and a reader of the third node's
/// `GET /events` gets every event of the log live, exactly once and in order.
#[test]
fn the_runs_of_a_killed_node_are_taken_over_and_complete_once() {
    let Some(server) = loop_testkit::postgres::Postgres::start(
        "postgres::the_runs_of_a_killed_node_are_taken_over_and_complete_once",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // Slow enough that the kill lands mid-step.
    let agent = slow_agent(dir.path());
    let node = |name: &str| {
        start_daemon(
            &dir.path().join(name),
            &[
                "--lease-ms",
                "2000",
                "--max-concurrency",
                "2",
                "--max-runs-per-workspace",
                "12",
                "--node-name",
                name,
            ],
            &[
                ("LOOPD_STORE", server.url.as_str()),
                ("LOOPD_TOKEN_FILE", &cluster_token(dir.path())),
            ],
        )
    };
    const RUNS: usize = 12;
    let origin = repo(&dir.path().join("origin"), 2);
    let bare = dir.path().join("remote.git");
    let url = loop_testkit::bare_clone(&origin, &bare);
    let mut a = node("a");
    let b = node("b");
    let c = node("c");
    // Every event of the log, live from node c, until six runs have completed.
    let (events_tx, events_rx) = std::sync::mpsc::channel();
    let reader = loop_client::blocking::Client::new(&c.base, None).expect("a client of node c");
    std::thread::spawn(move || {
        let mut seqs = Vec::new();
        let mut completed = 0;
        for record in reader.events(None, loop_core::Seq(0)) {
            let record = record.expect("an event from node c");
            seqs.push(record.seq.0);
            if matches!(record.event, loop_core::Event::RunCompleted(_)) {
                completed += 1;
                if completed == RUNS {
                    break;
                }
            }
        }
        let _ = events_tx.send(seqs);
    });
    let a_id = node_id(&a);

    let body = json!({
        "spec_path": "specs/feature.md",
        "repo_url": url,
        "config": {
            "agent": "command",
            "agent_cmd": format!("sh {}", agent.display()),
            "reviewer": false,
            "postmortem": false,
            "run_naming_mode": "spec_slug",
            "worktree_provider": "git",
        },
    });
    let ids: Vec<String> = (0..RUNS).map(|_| submit(&a, &body)).collect();
    // Wait for node a to be in the middle of a step of one of its runs, then kill it.
    loop_testkit::until(
        "node a mid-step",
        std::time::Duration::from_secs(60),
        || {
            ids.iter().any(|id| {
                let run = status_on(&b, id);
                run["node"] == a_id.as_str() && run["current_step"].is_object()
            })
        },
    );
    a.kill();
    let killed = std::time::Instant::now();

    // Node c drives some of these runs and b the others: c's streams follow them all live.
    for id in &ids {
        let run = wait_for_end(&c, id);
        assert_eq!(run["status"], "COMPLETED", "{run}");
    }
    let seqs = events_rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("node c's event stream saw every run complete");
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "every seq once, in order, from node c");

    eprintln!("every run ended {:?} after the kill", killed.elapsed());
    let store = loop_store::PgStore::connect(&server.url).expect("connect");
    let mut takeovers = 0;
    let mut interrupted = 0;
    for id in &ids {
        let records = loop_store::EventStore::read_run(&store, id.parse().expect("a run id"))
            .expect("read the run");
        let mut open: std::collections::HashMap<String, usize> = Default::default();
        for record in &records {
            match &record.event {
                loop_core::Event::StepStarted(step) => {
                    *open.entry(step.step_id.to_string()).or_default() += 1;
                }
                loop_core::Event::StepFinished(step) => {
                    let count = open.entry(step.step_id.to_string()).or_default();
                    assert_eq!(
                        *count, 1,
                        "step {} of run {id} finished twice",
                        step.step_id
                    );
                    *count += 1;
                    if step.status == loop_core::event::StepStatus::Interrupted {
                        interrupted += 1;
                    }
                }
                loop_core::Event::RunClaimed(claimed)
                    if claimed.took_over_from.as_deref() == Some(a_id.as_str()) =>
                {
                    takeovers += 1;
                }
                _ => {}
            }
        }
        assert!(
            open.values().all(|count| *count == 2),
            "every step of run {id} started once and finished once: {open:?}"
        );
    }
    // Each run's branch on the remote: the first commit, then one per task, each once — a
    // node that took a run over went on from what the other had pushed.
    for id in &ids {
        let branch = status_on(&c, id)["worktree"]["run_branch"]
            .as_str()
            .expect("a run branch")
            .to_owned();
        let log = loop_testkit::git(&bare, &["log", "--reverse", "--format=%s", &branch]);
        assert_eq!(
            log.lines().collect::<Vec<_>>(),
            ["start", "task of iteration 1", "task of iteration 2"],
            "run {id}'s branch {branch} on the remote"
        );
    }
    eprintln!("takeovers of node a's runs: {takeovers}; steps INTERRUPTED: {interrupted}");
    assert!(takeovers >= 1, "no run of node a was taken over");
    assert!(interrupted >= 1, "no step was recorded INTERRUPTED");
    let report = loop_store::replay(&store, None).expect("replay");
    assert_eq!(report.differences, vec![]);

    let nodes = get_json(&b, "/nodes");
    let state_of = |id: &str| {
        nodes["nodes"]
            .as_array()
            .and_then(|all| all.iter().find(|n| n["id"] == id))
            .map(|n| n["state"].clone())
    };
    assert_eq!(nodes["cluster"], true, "{nodes}");
    assert_eq!(nodes["nodes"].as_array().map(Vec::len), Some(3), "{nodes}");
    assert_eq!(state_of(&a_id), Some(json!("silent")), "{nodes}");
}

/// `max_runs_per_workspace` holds across nodes: a run submitted to node b in a workspace where
/// node a drives one waits for it, and starts when it ends.
#[test]
fn the_per_workspace_limit_counts_the_runs_other_nodes_drive() {
    let Some(server) = loop_testkit::postgres::Postgres::start(
        "postgres::the_per_workspace_limit_counts_the_runs_other_nodes_drive",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 2);
    let agent = slow_agent(dir.path());
    let node = |name: &str| {
        start_daemon(
            &dir.path().join(name),
            &["--lease-ms", "5000", "--max-runs-per-workspace", "1"],
            &[
                ("LOOPD_STORE", server.url.as_str()),
                ("LOOPD_TOKEN_FILE", &cluster_token(dir.path())),
            ],
        )
    };
    let a = node("a");
    let b = node("b");
    let mut body = run_body(&repo, "one_task.sh", json!({}));
    body["config"]["agent_cmd"] = json!(format!("sh {}", agent.display()));
    let first = submit(&a, &body);
    loop_testkit::until(
        "the first run running",
        std::time::Duration::from_secs(60),
        || status_on(&a, &first)["status"] == "RUNNING",
    );
    let second = submit(&b, &body);
    for id in [&first, &second] {
        assert_eq!(wait_for_end(&b, id)["status"], "COMPLETED");
    }
    let store = loop_store::PgStore::connect(&server.url).expect("connect");
    let span = |id: &str| {
        let records = loop_store::EventStore::read_run(&store, id.parse().expect("a run id"))
            .expect("read the run");
        let at = |pick: fn(&loop_core::Event) -> bool| {
            records
                .iter()
                .find(|r| pick(&r.event))
                .map(|r| r.seq.0)
                .expect("the event")
        };
        (
            at(|e| matches!(e, loop_core::Event::RunStarted(_))),
            at(|e| matches!(e, loop_core::Event::RunCompleted(_))),
        )
    };
    let (first_started, first_ended) = span(&first);
    let (second_started, _) = span(&second);
    assert!(
        first_started < first_ended && first_ended < second_started,
        "the second run started (seq {second_started}) before the first ended (seq {first_ended})"
    );
}

/// A node that can still read and append but no longer record its heartbeat (here: a trigger
/// refuses its writes to the `nodes` table) stops its drivers once its lease is over, and
/// then claims nothing — not even the run the log still says is its own, though no other node
/// is there to take it — so the node that comes later takes the run over and drives it alone
/// to the end.
#[test]
fn a_node_that_cannot_renew_its_lease_stops_and_claims_nothing_until_it_can() {
    let Some(server) = loop_testkit::postgres::Postgres::start(
        "postgres::a_node_that_cannot_renew_its_lease_stops_and_claims_nothing_until_it_can",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    // Each call says which node made it (the daemon's environment reaches its agents); node
    // a's calls last longer than a lease, so none of them ends on its own before a stops.
    let calls = dir.path().join("calls");
    let agent = dir.path().join("slow.sh");
    std::fs::write(
        &agent,
        format!(
            "echo \"$NODE\" >> {}\nif [ \"$NODE\" = a ]; then sleep 5; else sleep 1; fi\nexec {}\n",
            calls.display(),
            crate::support::stub("one_task.sh")
        ),
    )
    .expect("write the agent");
    let calls_of = |node: &str| {
        std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .filter(|line| *line == node)
            .count()
    };
    let node = |name: &str| {
        start_daemon(
            &dir.path().join(name),
            &["--lease-ms", "2000", "--node-name", name],
            &[
                ("LOOPD_STORE", server.url.as_str()),
                ("LOOPD_TOKEN_FILE", &cluster_token(dir.path())),
                ("NODE", name),
            ],
        )
    };
    let a = node("a");
    let a_id = node_id(&a);
    let repo = repo(dir.path(), 4);
    let mut body = run_body(&repo, "one_task.sh", json!({}));
    body["config"]["agent_cmd"] = json!(format!("sh {}", agent.display()));
    let id = submit(&a, &body);
    loop_testkit::until(
        "node a mid-step",
        std::time::Duration::from_secs(60),
        || {
            let run = status_on(&a, &id);
            run["node"] == a_id.as_str() && run["current_step"].is_object()
        },
    );
    server.sql(&format!(
        "CREATE FUNCTION refuse_a() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'node a may not beat'; END $$;
         CREATE TRIGGER refuse_a BEFORE INSERT OR UPDATE ON nodes FOR EACH ROW
           WHEN (NEW.node_id = '{a_id}') EXECUTE FUNCTION refuse_a();"
    ));
    let a_calls = calls_of("a");
    // Two leases with nobody else to take the run: node a must not take it back itself.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let b = node("b");

    let run = wait_for_end(&b, &id);
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let store = loop_store::PgStore::connect(&server.url).expect("connect");
    let records =
        loop_store::EventStore::read_run(&store, id.parse().expect("a run id")).expect("read");
    let claims: Vec<(String, Option<String>)> = records
        .iter()
        .filter_map(|record| match &record.event {
            loop_core::Event::RunClaimed(claim) => {
                Some((claim.node_id.clone(), claim.took_over_from.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        claims.iter().filter(|(node, _)| *node == a_id).count(),
        1,
        "node a claimed the run once, and not again after its lease was over: {claims:?}"
    );
    assert!(
        claims
            .iter()
            .any(|(node, from)| *node != a_id && from.as_deref() == Some(a_id.as_str())),
        "another node took it over from a: {claims:?}"
    );
    // Its steps: each started once and finished once.
    let mut open: std::collections::HashMap<String, usize> = Default::default();
    for record in &records {
        match &record.event {
            loop_core::Event::StepStarted(step) => {
                *open.entry(step.step_id.to_string()).or_default() += 1;
            }
            loop_core::Event::StepFinished(step) => {
                *open.entry(step.step_id.to_string()).or_default() += 1;
            }
            _ => {}
        }
    }
    assert!(open.values().all(|n| *n == 2), "{open:?}");
    let report = loop_store::replay(&store, None).expect("replay");
    assert_eq!(report.differences, vec![]);
    assert_eq!(
        calls_of("a"),
        a_calls,
        "node a made no agent call once its heartbeat could not be recorded"
    );
    assert!(calls_of("b") >= 1, "node b finished the run");
    drop(a);
}

/// A store that refuses the connection (a role that does not exist) stops loopd with an error
/// that names the store and what the server said; it never panics.
#[test]
fn a_postgres_store_that_refuses_the_connection_is_a_clear_error() {
    let Some(server) = loop_testkit::postgres::Postgres::start(
        "postgres::a_postgres_store_that_refuses_the_connection_is_a_clear_error",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let url = server
        .url
        .replacen("postgres://loop@", "postgres://nobody_here@", 1);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loopd"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("LOOPD_STORE", &url)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run loopd");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("cannot open the event log")
            && stderr.contains("postgres://nobody_here@")
            && stderr.contains("role \"nobody_here\" does not exist"),
        "{stderr}"
    );
}

/// Any node answers for any run: a step's live output, on the machine of the node that runs it
/// (a run by URL works in that node's data dir), reaches a client of another node, which asks
/// the owner for it and passes it through as it comes.
#[test]
fn a_step_s_live_output_reaches_a_client_of_another_node() {
    let Some(server) = loop_testkit::postgres::Postgres::start(
        "postgres::a_step_s_live_output_reaches_a_client_of_another_node",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = repo(&dir.path().join("origin"), 1);
    let bare = dir.path().join("remote.git");
    let url = loop_testkit::bare_clone(&origin, &bare);
    let agent = dir.path().join("printer.sh");
    std::fs::write(
        &agent,
        format!(
            "cat > /dev/null\nfor i in $(seq 1 30); do echo \"line $i\"; sleep 0.1; done\nexec {} < /dev/null\n",
            crate::support::stub("one_task.sh")
        ),
    )
    .expect("write the agent");
    let node = |name: &str| {
        start_daemon(
            &dir.path().join(name),
            &["--lease-ms", "5000", "--node-name", name],
            &[
                ("LOOPD_STORE", server.url.as_str()),
                ("LOOPD_TOKEN_FILE", &cluster_token(dir.path())),
            ],
        )
    };
    let a = node("a");
    let body = json!({
        "spec_path": "specs/feature.md",
        "repo_url": url,
        "config": {
            "agent": "command",
            "agent_cmd": format!("sh {}", agent.display()),
            "reviewer": false,
            "postmortem": false,
            "run_naming_mode": "spec_slug",
        },
    });
    let id = submit(&a, &body);
    loop_testkit::until(
        "node a runs a step",
        std::time::Duration::from_secs(60),
        || status_on(&a, &id)["current_step"].is_object(),
    );
    let b = node("b");
    let response = crate::support::client()
        .get(b.url(&format!("/runs/{id}/output")))
        .send()
        .expect("the output from node b");
    assert_eq!(response.status(), 200);
    let frames = crate::support::read_frames(response, |frame| frame.data.contains("line 5"));
    let text: String = frames.iter().map(|f| f.data.as_str()).collect();
    assert!(
        text.contains("line 1") && text.contains("line 5"),
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .all(|f| f.id.as_deref().is_some_and(|id| id.contains(':'))),
        "each frame resumable as <step>:<offset>: {frames:?}"
    );
    let run = wait_for_end(&b, &id);
    assert_eq!(run["status"], "COMPLETED", "{run}");

    // Its files, on node a's machine, listed and read through node b.
    let artifacts = get_json(&b, &format!("/runs/{id}/artifacts"));
    let names: Vec<&str> = artifacts["artifacts"]
        .as_array()
        .map(|all| all.iter().filter_map(|a| a["name"].as_str()).collect())
        .unwrap_or_default();
    let log = names
        .iter()
        .find(|name| name.starts_with("iter-01-impl") && name.ends_with(".log"))
        .unwrap_or_else(|| panic!("no implementation log among {names:?}"));
    let proxied = crate::support::client()
        .get(b.url(&format!("/runs/{id}/artifacts/{log}")))
        .send()
        .expect("an artifact through node b");
    // Served as node b's own answer: a type this API answers with, b's policy, no sniffing.
    let header = |name: &str| {
        proxied
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        header("content-type").starts_with("text/plain"),
        "{:?}",
        proxied.headers()
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(header("content-security-policy").contains("default-src 'none'"));
    let text = proxied.text().expect("text");
    assert!(text.contains("line 30"), "{text:.300}");
    // A merge asked of node b, which never drove the run, lands on the remote by a push.
    let merged = crate::support::client()
        .post(b.url(&format!("/runs/{id}/merge")))
        .json(&json!({"target": "main"}))
        .send()
        .expect("merge through node b");
    assert_eq!(merged.status(), 200, "{:?}", merged.text());
    assert_eq!(
        loop_testkit::git(&bare, &["show", "main:work.txt"]),
        "work 1",
        "the remote's main has the run's work"
    );
}
