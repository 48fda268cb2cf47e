//! A run's effects outside the log (pushes, the merge, worktree and checkout removal, its
//! agent's processes) are held to the run's claim, and nodes come back by themselves after
//! their store does: one test per defect found on a three-node cluster (`specs/event-log.md`,
//! "Effects and their fences"). Each failed before its fix.

use std::time::Duration;

use loop_core::Event;
use loop_testkit::postgres::{Postgres, Shutdown};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::cluster::{
    agent, assert_replays_clean, assert_steps_closed_once, events, node, node_id, processes_of,
    remote, status_on, url_body,
};
use crate::support::{client, get_json, submit, wait_for_end};

const MINUTE: Duration = Duration::from_secs(60);

/// Node c pushes its merge, and is stopped (SIGSTOP) while the remote receives the push (a
/// hook of the remote holds it); node b takes the run over and merges it itself, and only then
/// does the remote go on with c's push. c's merge must not land: the remote's target holds
/// exactly what the log says the merge landed, which is b's.
#[test]
fn a_node_that_lost_its_run_during_the_merge_lands_nothing() {
    let Some(server) =
        Postgres::start("effects::a_node_that_lost_its_run_during_the_merge_lands_nothing")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (bare, url) = remote(dir.path(), 1);
    let start = loop_testkit::git(&bare, &["rev-parse", "main"]);
    let c_pid = dir.path().join("c.pid");
    let go_on = dir.path().join("go-on");
    // The pushing node's environment reaches the remote's hooks over `file://`.
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nif [ \"$NODE\" = c ] && grep -q ' refs/heads/main$'; then\n\
             kill -STOP \"$(cat {pid})\"\n\
             while [ ! -e {go_on} ]; do sleep 0.1; done\nfi\nexit 0\n",
            pid = c_pid.display(),
            go_on = go_on.display(),
        ),
    )
    .expect("write the hook");
    // And every update the remote makes is written down with the node that pushed it.
    let pushes = dir.path().join("pushes");
    let recorder = bare.join("hooks/post-receive");
    std::fs::write(
        &recorder,
        format!(
            "#!/bin/sh\nwhile read old new ref; do echo \"$NODE $old $new $ref\" >> {}; done\n",
            pushes.display()
        ),
    )
    .expect("write the recorder");
    for hook in [&hook, &recorder] {
        std::fs::set_permissions(hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("make the hook executable");
    }
    // Node b's check of the merged result takes a while, so that c's push, let go as soon as b
    // holds the run, reaches the remote first.
    let verify = dir.path().join("verify.sh");
    std::fs::write(
        &verify,
        "if [ \"$LOOP_PHASE\" = merge ] && [ \"$NODE\" = b ]; then sleep 3; fi\n",
    )
    .expect("write the check");
    let agent_cmd = agent(&dir.path().join("agent.sh"), "");
    let body = url_body(
        &url,
        &agent_cmd,
        json!({
            "merge_target_branch": "main",
            "merge_strategy": "squash",
            "verify_cmds": format!("sh {}", verify.display()),
        }),
    );
    let c = node(dir.path(), &server, "c", 2000);
    std::fs::write(&c_pid, c.pid().to_string()).expect("write c's pid");
    let c_id = node_id(&c);
    let id = submit(&c, &body);
    loop_testkit::until("node c drives the run", MINUTE, || {
        status_on(&c, &id)["node"] == c_id.as_str()
    });
    let b = node(dir.path(), &server, "b", 2000);
    let b_id = node_id(&b);
    loop_testkit::until("node c is stopped in its merge's push", MINUTE, || {
        loop_testkit::procs::all(&[])
            .iter()
            .any(|proc| proc.pid == c.pid() as i32 && proc.state == 'T')
    });
    loop_testkit::until("node b takes the run over", MINUTE, || {
        status_on(&b, &id)["node"] == b_id.as_str()
    });
    std::fs::write(&go_on, "").expect("let c's push go on");
    c.signal(Signal::SIGCONT);
    let run = wait_for_end(&b, &id);
    assert_eq!(run["status"], "COMPLETED", "{run}");
    // Node c's push has been answered: it learned of b's claim when it went on.
    loop_testkit::until("node c answers again", MINUTE, || {
        status_on(&c, &id)["status"] == "COMPLETED"
    });
    loop_testkit::until("node c's push is answered", MINUTE, || {
        loop_testkit::procs::tree(c.pid() as i32).iter().all(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| !name.starts_with("git"))
        })
    });

    let records = events(&server, &id);
    let merged: Vec<_> = records
        .iter()
        .filter_map(|record| match &record.event {
            Event::MergeFinished(merge) => Some(merge.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(merged.len(), 1, "one merge recorded: {merged:?}");
    let main = loop_testkit::git(&bare, &["rev-parse", "main"]);
    match &merged[0].commit {
        Some(commit) => assert_eq!(
            &main, commit,
            "the remote's main is the commit the log says the merge landed"
        ),
        None => assert_eq!(
            main, start,
            "the log says the merge did not land ({:?}), but the remote's main moved",
            merged[0].conflict
        ),
    }
    let landed = loop_testkit::git(&bare, &["log", "--format=%s", &format!("{start}..main")]);
    assert!(
        landed.lines().count() <= 1,
        "at most one merge of the run on main: {landed}"
    );
    // Who moved main on the remote: only the node holding the claim at the time, b.
    let moved: Vec<String> = std::fs::read_to_string(&pushes)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.ends_with(" refs/heads/main"))
        .map(str::to_owned)
        .collect();
    assert!(
        moved.iter().all(|line| line.starts_with("b ")),
        "main on the remote was moved by a node that no longer held the run: {moved:?}"
    );
    assert_steps_closed_once(&records);
    assert_replays_clean(&server);
}

/// `/health` of a node whose store is down: 503, saying why.
fn store_down(daemon: &crate::support::Daemon) -> bool {
    let Ok(response) = client().get(daemon.url("/health")).send() else {
        return false;
    };
    let status = response.status();
    let body: serde_json::Value = response.json().unwrap_or_default();
    status == 503 && body["store"].as_str().is_some_and(|why| !why.is_empty())
}

/// Every node answers reads and says it is healthy.
fn answers(daemon: &crate::support::Daemon) -> bool {
    let ok = |path: &str| {
        client()
            .get(daemon.url(path))
            .send()
            .is_ok_and(|response| response.status() == 200)
    };
    ok("/health") && ok("/runs")
}

/// PostgreSQL stops at once (`-m immediate`) in the middle of a run on a two-node cluster, and
/// comes back; later it restarts (`-m fast`). While it is down each node's `/health` says so
/// (503 and the reason); once it is back every node answers by itself again, without a
/// restart, the run goes on to complete once, and a run submitted afterwards completes too.
#[test]
fn every_node_recovers_by_itself_when_postgres_comes_back() {
    let Some(server) =
        Postgres::start("effects::every_node_recovers_by_itself_when_postgres_comes_back")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (_bare, url) = remote(dir.path(), 3);
    let agent_cmd = agent(&dir.path().join("agent.sh"), "sleep 1");
    let body = url_body(&url, &agent_cmd, json!({}));
    let a = node(dir.path(), &server, "a", 3000);
    let b = node(dir.path(), &server, "b", 3000);
    let first = submit(&a, &body);
    loop_testkit::until("the run is in a step", MINUTE, || {
        status_on(&a, &first)["current_step"].is_object()
    });

    server.stop(Shutdown::Immediate);
    for daemon in [&a, &b] {
        loop_testkit::until("/health says the store is unreachable", MINUTE, || {
            store_down(daemon)
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    server.start_again();
    for daemon in [&a, &b] {
        loop_testkit::until("the node answers again by itself", MINUTE, || {
            answers(daemon)
        });
    }
    let run = wait_for_end(&b, &first);
    assert_eq!(run["status"], "COMPLETED", "{run}");

    server.restart(Shutdown::Fast);
    for daemon in [&a, &b] {
        loop_testkit::until("the node answers after a restart", MINUTE, || {
            answers(daemon)
        });
    }
    let second = submit(&b, &body);
    let run = wait_for_end(&a, &second);
    assert_eq!(run["status"], "COMPLETED", "{run}");

    for id in [&first, &second] {
        let records = events(&server, id);
        let ends = records.iter().filter(|r| r.event.is_terminal()).count();
        assert_eq!(ends, 1, "run {id} ended once");
        assert_steps_closed_once(&records);
    }
    assert_replays_clean(&server);
}

/// A node started while its PostgreSQL server is down exited ("cannot open the event log"),
/// and had to be started again by hand or by its supervisor. Now it starts, says why it cannot
/// work (`/health` 503 with the reason), claims nothing, and once the server answers it goes
/// on by itself within seconds: a run submitted to it then completes, once.
#[test]
fn a_node_started_while_postgres_is_down_starts_and_recovers_by_itself() {
    let Some(server) = Postgres::start(
        "effects::a_node_started_while_postgres_is_down_starts_and_recovers_by_itself",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (_bare, url) = remote(dir.path(), 1);
    let agent_cmd = agent(&dir.path().join("agent.sh"), "");
    let body = url_body(&url, &agent_cmd, json!({}));
    server.stop(Shutdown::Immediate);

    let a = node(dir.path(), &server, "a", 3000);
    assert!(store_down(&a), "/health says the store cannot be reached");
    let runs = client().get(a.url("/runs")).send().expect("GET /runs");
    assert_eq!(runs.status(), 503, "reads wait for the store, said so");

    server.start_again();
    let back = std::time::Instant::now();
    loop_testkit::until(
        "the node answers by itself once PostgreSQL is back",
        Duration::from_secs(10),
        || answers(&a),
    );
    eprintln!(
        "node a answered {:?} after the server was back",
        back.elapsed()
    );
    // The outage skipped no event: the figures say none was undecodable (each second of it
    // counted as one).
    let metrics = client()
        .get(a.url("/metrics"))
        .send()
        .expect("GET /metrics")
        .text()
        .expect("text");
    assert!(
        metrics.contains("loopd_undecodable_events_total 0\n"),
        "{metrics}"
    );
    let id = submit(&a, &body);
    let run = wait_for_end(&a, &id);
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let records = events(&server, &id);
    let claims = records
        .iter()
        .filter(|r| matches!(r.event, Event::RunClaimed(_)))
        .count();
    assert_eq!(claims, 1, "claimed once");
    assert_eq!(
        records.iter().filter(|r| r.event.is_terminal()).count(),
        1,
        "ended once"
    );
    assert_steps_closed_once(&records);
    assert_replays_clean(&server);
}

/// A cancel sent to a node that does not drive the run is recorded at once, and the node that
/// drives it stops its agent (the whole process group) as soon as it reads the cancel in the
/// log, not when the agent's call ends: here a call of a minute. Nothing of the run reaches
/// the remote afterwards.
#[test]
fn a_cancel_through_another_node_stops_the_agent_at_once() {
    let Some(server) =
        Postgres::start("effects::a_cancel_through_another_node_stops_the_agent_at_once")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (bare, url) = remote(dir.path(), 1);
    let agent_cmd = agent(&dir.path().join("agent.sh"), "sleep 60");
    let a = node(dir.path(), &server, "a", 3000);
    let a_id = node_id(&a);
    let id = submit(&a, &url_body(&url, &agent_cmd, json!({})));
    loop_testkit::until("node a's agent works", MINUTE, || {
        status_on(&a, &id)["node"] == a_id.as_str() && !processes_of(&id).is_empty()
    });
    let b = node(dir.path(), &server, "b", 3000);
    let canceled = client()
        .post(b.url(&format!("/runs/{id}/cancel")))
        .send()
        .expect("cancel through node b");
    assert_eq!(canceled.status(), 200);
    assert_eq!(status_on(&b, &id)["status"], "CANCELED");
    // A bound for liveness, far below the minute the call would take: the follower reads the
    // cancel within a second or so, and SIGKILL follows SIGTERM after one more.
    loop_testkit::until(
        "node a's agent of the canceled run is gone",
        Duration::from_secs(15),
        || processes_of(&id).is_empty(),
    );
    let branch = status_on(&a, &id)["worktree"]["run_branch"]
        .as_str()
        .expect("a run branch")
        .to_owned();
    let log = loop_testkit::git(&bare, &["log", "--format=%s", &branch]);
    assert_eq!(log, "start", "nothing of the canceled run was pushed");
    let records = events(&server, &id);
    assert_eq!(records.iter().filter(|r| r.event.is_terminal()).count(), 1);
    assert_steps_closed_once(&records);
    // The cancel closed the open step first (STEP_FINISHED, then RUN_CANCELED): the entry b
    // put on the run's fence must name the cancel's own version, or a's verdict would read it
    // as a race b lost, seize the fence back and land its push after the cancel (the fault
    // suite found this with a pause).
    let canceled_at = records
        .iter()
        .find(|r| matches!(r.event, Event::RunCanceled(_)))
        .expect("RUN_CANCELED")
        .version
        .0;
    let entry = loop_testkit::git(
        &bare,
        &["log", "-1", "--format=%B", &format!("refs/loop/fence/{id}")],
    );
    let b_id = node_id(&b);
    let says = |line: String| entry.lines().any(|l| l.trim() == line);
    assert!(
        says(format!("Loop-Node: {b_id}")) && says(format!("Loop-Version: {canceled_at}")),
        "the fence's entry names node b and RUN_CANCELED's version {canceled_at}:\n{entry}"
    );
}

/// Node a made the run's worktree and was killed; node b took the run over and made its own.
/// When the run fails on b, b removes its own worktree, not the path the log recorded when a
/// made it (a's, which b does not own).
#[test]
fn after_a_takeover_cleanup_removes_this_node_s_worktree_not_the_logged_one() {
    let Some(server) = Postgres::start(
        "effects::after_a_takeover_cleanup_removes_this_node_s_worktree_not_the_logged_one",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (_bare, url) = remote(dir.path(), 2);
    // On a the call takes long enough to be killed in; on b it fails, which fails the run.
    let agent_cmd = agent(
        &dir.path().join("agent.sh"),
        "if [ \"$NODE\" = a ]; then sleep 60; else echo 'no'; exit 3; fi",
    );
    let mut a = node(dir.path(), &server, "a", 2000);
    let a_id = node_id(&a);
    let id = submit(&a, &url_body(&url, &agent_cmd, json!({})));
    loop_testkit::until("node a's agent works", MINUTE, || {
        status_on(&a, &id)["node"] == a_id.as_str() && !processes_of(&id).is_empty()
    });
    let a_worktree = status_on(&a, &id)["worktree"]["worktree_path"]
        .as_str()
        .expect("a's worktree")
        .to_owned();
    assert!(std::path::Path::new(&a_worktree).is_dir(), "{a_worktree}");
    a.kill();
    let b = node(dir.path(), &server, "b", 2000);
    let run = wait_for_end(&b, &id);
    assert_eq!(run["status"], "FAILED", "{run}");
    let b_dir = dir.path().join("b");
    let b_worktree = a_worktree.replace(
        &dir.path().join("a").to_string_lossy().into_owned(),
        &b_dir.to_string_lossy(),
    );
    assert_ne!(a_worktree, b_worktree);
    loop_testkit::until("node b removed its worktree", MINUTE, || {
        !std::path::Path::new(&b_worktree).exists()
    });
    assert!(
        std::path::Path::new(&a_worktree).is_dir(),
        "node b removed node a's worktree {a_worktree}"
    );
}

/// A cancel taken by a node that never cloned the run's repository leaves nothing in the place
/// of its checkout there: the next run of that repository on that node clones and completes.
#[test]
fn a_cancel_on_a_node_without_the_checkout_leaves_it_able_to_run_the_repository() {
    let Some(server) = Postgres::start(
        "effects::a_cancel_on_a_node_without_the_checkout_leaves_it_able_to_run_the_repository",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (_bare, url) = remote(dir.path(), 1);
    let agent_cmd = agent(
        &dir.path().join("agent.sh"),
        "if [ \"$NODE\" = a ]; then sleep 60; fi",
    );
    let body = url_body(&url, &agent_cmd, json!({}));
    let mut a = node(dir.path(), &server, "a", 2000);
    let a_id = node_id(&a);
    let first = submit(&a, &body);
    loop_testkit::until("node a's agent works", MINUTE, || {
        status_on(&a, &first)["node"] == a_id.as_str() && !processes_of(&first).is_empty()
    });
    let b = node(dir.path(), &server, "b", 2000);
    let canceled = client()
        .post(b.url(&format!("/runs/{first}/cancel")))
        .send()
        .expect("cancel through node b");
    assert_eq!(canceled.status(), 200);
    assert!(a.terminate(MINUTE).is_some(), "node a stops when asked to");
    let second = submit(&b, &body);
    let run = wait_for_end(&b, &second);
    assert_eq!(run["status"], "COMPLETED", "{run}");
    let nodes = get_json(&b, "/nodes");
    assert_eq!(nodes["cluster"], true, "{nodes}");
}
