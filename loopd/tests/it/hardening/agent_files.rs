//! Files the agent controls — the plan in the working tree, the files of the run directory —
//! which it may turn into a FIFO or a link to a file outside.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{
    client, get_json, repo, run_body, run_file, start_daemon, submit, wait_for_end,
};

/// An agent that, on its first call, makes the plan a FIFO, puts a FIFO and a link to `secret`
/// into the run directory, says so (`sabotaged`) and waits for `release`; later calls only
/// answer.
fn saboteur(secret: &Path) -> String {
    format!(
        r#"cat > /dev/null
calls="$LOOP_RUN_DIR/calls"; n=$(( $(cat "$calls" 2>/dev/null || echo 0) + 1 )); echo $n > "$calls"
if [ "$n" = 1 ]; then
  rm -f {plan} && mkfifo {plan}
  mkfifo "$LOOP_RUN_DIR/fifo.log"
  ln -s {secret} "$LOOP_RUN_DIR/leak.txt"
  touch "$LOOP_RUN_DIR/sabotaged"
  while [ ! -e "$LOOP_RUN_DIR/release" ]; do sleep 0.1; done
fi
echo working"#,
        plan = loop_testkit::repo::PLAN,
        secret = secret.display()
    )
}

/// Issue 23, defect 9: an agent that turned the plan into a FIFO hung a thread per
/// `GET /runs/{id}/plan`; 600 requests froze the daemon, `/health` included, and the driver
/// itself would hang reading the plan after the step. Now every such request is answered at
/// once (422 `unreadable_file`), a FIFO or a link out of the run directory is no artifact, and
/// the run goes on to its end.
#[test]
fn a_plan_turned_into_a_fifo_and_artifacts_linked_out_are_refused_and_the_daemon_stays_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let data = dir.path().join("data");
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "the owner's secret\n").expect("secret");
    let daemon = start_daemon(&data, &[], &[]);
    let mut body = run_body(&repo, "one_task.sh", json!({"iterations": 2}));
    body["config"]["agent_cmd"] = json!(saboteur(&secret));
    let id = submit(&daemon, &body);
    let deadline = Instant::now() + Duration::from_secs(60);
    let sabotaged = loop {
        let marker = run_file(&repo, &data, &id, "sabotaged");
        if marker.exists() {
            break marker;
        }
        assert!(Instant::now() < deadline, "the agent never ran");
        std::thread::sleep(Duration::from_millis(50));
    };

    // 600 requests for the plan, 40 at a time: each is answered, and none hangs.
    let workers: Vec<_> = (0..40)
        .map(|_| {
            let url = daemon.url(&format!("/runs/{id}/plan"));
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("client");
                (0..15)
                    .map(|_| {
                        let answer = client.get(&url).send().expect("an answer for the plan");
                        let status = answer.status().as_u16();
                        let body: Value = answer.json().expect("json");
                        (status, body["code"].as_str().unwrap_or("").to_owned())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let health = client().get(daemon.url("/health")).send().expect("health");
    assert_eq!(health.status().as_u16(), 200);
    let answers: Vec<(u16, String)> = workers
        .into_iter()
        .flat_map(|worker| worker.join().expect("a worker"))
        .collect();
    assert_eq!(answers.len(), 600);
    for answer in &answers {
        assert_eq!(answer, &(422, "unreadable_file".to_owned()));
    }
    let health = client().get(daemon.url("/health")).send().expect("health");
    assert_eq!(health.status().as_u16(), 200, "the daemon is up after them");

    // The run directory's FIFO and link out are no artifacts.
    for name in ["fifo.log", "leak.txt"] {
        let answer = client()
            .get(daemon.url(&format!("/runs/{id}/artifacts/{name}")))
            .send()
            .expect("an answer");
        assert_eq!(answer.status().as_u16(), 404, "{name}");
        let text = answer.text().expect("text");
        assert!(!text.contains("the owner's secret"), "{text}");
    }
    let listed = get_json(&daemon, &format!("/runs/{id}/artifacts"));
    let names: Vec<&str> = listed["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .filter_map(|artifact| artifact["name"].as_str())
        .collect();
    assert!(
        !names.contains(&"fifo.log") && !names.contains(&"leak.txt"),
        "{names:?}"
    );

    // The driver reads the plan after the step: it finds no plan and goes on to its end.
    std::fs::write(sabotaged.with_file_name("release"), "").expect("release");
    let run = wait_for_end(&daemon, &id);
    assert_eq!(run["status"], "FAILED", "{run}");
    assert_eq!(run["exit_reason"], "iterations_exhausted", "{run}");
}

/// The new-run form lists a workspace's specs by the one configuration stack, which reads
/// `.loop/config` as a file an agent working in place may control: its `specs_dir` counts, and
/// a FIFO put in its place is refused at once (it used to be opened by `open(2)`, which blocks
/// on a FIFO with no writer, when the runtime resolved a request in that workspace).
#[test]
fn the_specs_listing_reads_the_workspace_config_and_refuses_a_fifo_in_its_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workspace = dir.path().join("ws");
    std::fs::create_dir_all(workspace.join(".loop")).expect(".loop");
    std::fs::create_dir_all(workspace.join("docs/specs")).expect("specs dir");
    std::fs::write(workspace.join("docs/specs/login.md"), "# Login\n").expect("spec");
    std::fs::write(workspace.join(".loop/config"), "specs_dir=docs/specs\n").expect("config");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let root = workspace.canonicalize().expect("root");
    let path = format!("/workspace/specs?workspace_root={}", root.display());

    let listed = get_json(&daemon, &path);
    let specs: Vec<&str> = listed["specs"]
        .as_array()
        .unwrap_or_else(|| panic!("specs: {listed}"))
        .iter()
        .filter_map(|spec| spec["path"].as_str())
        .collect();
    assert_eq!(specs, ["docs/specs/login.md"], "{listed}");

    std::fs::remove_file(workspace.join(".loop/config")).expect("rm config");
    let made = std::process::Command::new("mkfifo")
        .arg(workspace.join(".loop/config"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let started = Instant::now();
    let answer = client().get(daemon.url(&path)).send().expect("an answer");
    assert_eq!(answer.status().as_u16(), 400);
    let body: Value = answer.json().expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|m| m.contains("not a regular file")),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered at once"
    );
}
