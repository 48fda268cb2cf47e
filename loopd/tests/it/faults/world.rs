//! The cluster a schedule runs on: a real PostgreSQL server, a bare repository as the remote
//! (whose hooks write down every update it makes and the node that pushed it), real `loopd`
//! nodes, an agent that signs its commits with its node's name, and a sampler of the
//! machine's processes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loop_testkit::postgres::Postgres;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use super::schedule::{Size, name};
use crate::support::{Daemon, Loopd};

/// Milliseconds since the epoch: the clock the daemons stamp events with (one machine).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A time span, from and to in ms since the epoch.
pub type Span = (i64, i64);

/// One node: its data dir, its id, its daemon while it runs.
pub struct Node {
    pub name: &'static str,
    pub data_dir: PathBuf,
    pub id: String,
    pub daemon: Option<Daemon>,
    /// While it could not act: stopped, killed (its daemon, not its reaper), or frozen.
    pub out: Vec<Span>,
}

/// Everything a schedule works on.
pub struct World {
    pub server: Postgres,
    pub bare: PathBuf,
    pub url: String,
    pub agent_cmd: String,
    pub verify_cmd: String,
    pub pushes: PathBuf,
    pub nodes: Vec<Node>,
    pub size: Size,
    /// While the store was down.
    pub store_down: Vec<Span>,
    /// Each node's base URL while its daemon runs, for threads that outlive a restart (a
    /// restarted daemon listens on a new port).
    pub live: Arc<Mutex<Vec<Option<String>>>>,
}

/// The agent: a second or so of work, then one plan task, its work in a file of its own run
/// (so that runs merge into one target without conflicts), committed with the node's name as a
/// trailer. Composed for these tests (a command agent: prompt on stdin, answer on stdout).
const AGENT: &str = r#"prompt=$(cat)
sleep 1.5
plan="$LOOP_PLAN_PATH"
if grep -q -- '- \[ \]' "$plan"; then
  sed -i '0,/- \[ \]/s//- [x]/' "$plan"
  echo "iteration $LOOP_ITERATION on $NODE" >> "work-$LOOP_RUN_ID.txt"
  git add -A >/dev/null && git commit -qm "task of iteration $LOOP_ITERATION" -m "Made-On: $NODE" >/dev/null
  echo "DONE: task $LOOP_ITERATION"
else
  echo "<promise>COMPLETE</promise>"
fi
"#;

/// The remote's hook: each update, with the pushing node (its environment reaches the hook
/// over `file://`) and one id per push, in the order the remote made them.
const RECORDER: &str = r#"#!/bin/sh
push="$$-$(date +%s%N)"
while read old new ref; do
  echo "$push $(date +%s%3N) ${NODE:-?} $old $new $ref" >> "$PUSHES"
done
"#;

impl World {
    /// A fresh server, remote and nodes, in a temp dir under `root`.
    pub fn new(root: &Path, server: Postgres, size: Size) -> World {
        let origin = root.join("origin");
        std::fs::create_dir_all(origin.join("specs/planning")).expect("origin dirs");
        for run in 0..size.runs {
            std::fs::write(
                origin.join(format!("specs/r{run}.md")),
                format!(
                    "# Run {run}\n\n**Status:** Draft\n**Last Updated:** 2026-12-07\n\nBuild it.\n"
                ),
            )
            .expect("a spec");
            std::fs::write(
                origin.join(format!("specs/planning/r{run}-plan.md")),
                loop_testkit::repo::plan_text(size.tasks),
            )
            .expect("a plan");
        }
        std::fs::write(origin.join(".gitignore"), "logs/\n").expect(".gitignore");
        let git = |args: &[&str]| loop_testkit::git(&origin, args);
        git(&["init", "-q", "-b", "main"]);
        git(&["add", "-A"]);
        git(&["commit", "-qm", "start"]);
        let bare = root.join("remote.git");
        let url = loop_testkit::bare_clone(&origin, &bare);
        let pushes = root.join("pushes");
        let hook = bare.join("hooks/post-receive");
        std::fs::write(
            &hook,
            RECORDER.replace("$PUSHES", &pushes.to_string_lossy()),
        )
        .expect("the remote's hook");
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("an executable hook");
        let agent = root.join("agent.sh");
        std::fs::write(&agent, AGENT).expect("the agent");
        let verify = root.join("verify.sh");
        std::fs::write(&verify, "test -f \"$LOOP_PLAN_PATH\"\n").expect("the check");
        let mut world = World {
            server,
            bare,
            url,
            agent_cmd: format!("sh {}", agent.display()),
            verify_cmd: format!("sh {}", verify.display()),
            pushes,
            nodes: Vec::new(),
            size,
            store_down: Vec::new(),
            live: Arc::default(),
        };
        for n in 0..size.nodes {
            let data_dir = root.join(name(n));
            let daemon = world.start(&data_dir, name(n));
            world.nodes.push(Node {
                name: name(n),
                id: String::new(),
                data_dir,
                daemon: Some(daemon),
                out: Vec::new(),
            });
        }
        for node in &mut world.nodes {
            node.id = crate::cluster::node_id(node.daemon.as_ref().expect("started"));
        }
        world.publish();
        world
    }

    /// A daemon on `data_dir`. A node whose store is down when it starts starts all the same,
    /// says so in `/health`, and goes on once the store answers (no supervisor's restart).
    fn start(&self, data_dir: &Path, name: &str) -> Daemon {
        self.loopd(data_dir, name).start()
    }

    fn loopd(&self, data_dir: &Path, name: &str) -> Loopd {
        // One token for the whole cluster: nodes trust only nodes that prove it.
        let token = data_dir
            .parent()
            .unwrap_or(data_dir)
            .join("cluster-token")
            .to_string_lossy()
            .into_owned();
        let loopd = Loopd::new(env!("CARGO_BIN_EXE_loopd"), data_dir)
            .args([
                "--lease-ms",
                &self.size.lease.as_millis().to_string(),
                "--node-name",
                name,
                "--max-concurrency",
                "2",
                "--max-runs-per-workspace",
                "64",
            ])
            .env("LOOPD_STORE", &self.server.url)
            .env("LOOPD_TOKEN_FILE", &token)
            .env("NODE", name);
        // `LOOP_FAULT_DEBUG=1`: the daemons' warnings and errors on the test's stderr.
        if std::env::var_os("LOOP_FAULT_DEBUG").is_some() {
            loopd.echo_warnings()
        } else {
            loopd
        }
    }

    /// The body that submits run `run`: its own spec, merged into `main` on completion.
    pub fn body(&self, run: usize) -> Value {
        json!({
            "spec_path": format!("specs/r{run}.md"),
            "repo_url": self.url,
            "config": {
                "agent": "command",
                "agent_cmd": self.agent_cmd,
                "reviewer": false,
                "postmortem": false,
                "run_naming_mode": "spec_slug",
                "worktree_provider": "git",
                "verify_cmds": self.verify_cmd,
                "merge_target_branch": "main",
                "merge_strategy": "squash",
            },
        })
    }

    /// SIGSTOP (`stop`) or SIGCONT to node `n`'s daemon, and with `tree` to every process
    /// under it (its reaper, agents, commands).
    pub fn signal(&self, n: usize, stop: bool, tree: bool) {
        let Some(daemon) = &self.nodes[n].daemon else {
            return;
        };
        let root = daemon.pid() as i32;
        let signal = if stop {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        if !tree {
            let _ = kill(Pid::from_raw(root), signal);
            return;
        }
        if stop {
            // The daemon first (it starts nothing more), then its descendants until no new
            // one appears.
            let _ = kill(Pid::from_raw(root), signal);
            let mut done = std::collections::HashSet::new();
            loop {
                let fresh: Vec<i32> = loop_testkit::procs::tree(root)
                    .into_iter()
                    .filter(|pid| done.insert(*pid))
                    .collect();
                if fresh.is_empty() {
                    break;
                }
                for pid in fresh {
                    let _ = kill(Pid::from_raw(pid), signal);
                }
            }
        } else {
            let mut all = loop_testkit::procs::tree(root);
            all.retain(|pid| *pid != root);
            for pid in all {
                let _ = kill(Pid::from_raw(pid), signal);
            }
            let _ = kill(Pid::from_raw(root), signal);
        }
    }

    /// SIGKILL to node `n`'s daemon.
    pub fn kill(&mut self, n: usize) {
        if let Some(mut daemon) = self.nodes[n].daemon.take() {
            daemon.kill();
        }
        self.publish();
    }

    /// A daemon on node `n`'s data dir again.
    pub fn restart(&mut self, n: usize) {
        let node = &self.nodes[n];
        let daemon = self.start(&node.data_dir.clone(), node.name);
        self.nodes[n].daemon = Some(daemon);
        self.publish();
    }

    fn publish(&self) {
        *self.live.lock().expect("live bases") =
            (0..self.nodes.len()).map(|n| self.base(n)).collect();
    }

    /// The base URL of node `n`, while its daemon runs.
    pub fn base(&self, n: usize) -> Option<String> {
        self.nodes[n].daemon.as_ref().map(|d| d.base.clone())
    }

    /// Node names by id.
    pub fn names(&self) -> HashMap<String, &'static str> {
        self.nodes.iter().map(|n| (n.id.clone(), n.name)).collect()
    }
}

/// One process seen working for a run.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at_ms: i64,
    pub pid: i32,
    pub run: String,
    pub node: String,
    pub state: char,
}

/// Samples the processes that work for runs (`LOOP_RUN_ID` in their environment) every quarter
/// second until dropped.
pub struct Sampler {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    pub fn start() -> Sampler {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let at_ms = now_ms();
                    let found: Vec<Seen> = loop_testkit::procs::all(&["LOOP_RUN_ID", "NODE"])
                        .into_iter()
                        .filter_map(|proc| {
                            Some(Seen {
                                at_ms,
                                pid: proc.pid,
                                run: proc.env.get("LOOP_RUN_ID")?.clone(),
                                node: proc.env.get("NODE").cloned().unwrap_or_default(),
                                state: proc.state,
                            })
                        })
                        .collect();
                    seen.lock().expect("samples").extend(found);
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        };
        Sampler {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; everything seen.
    pub fn finish(mut self) -> Vec<Seen> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        std::mem::take(&mut *self.seen.lock().expect("samples"))
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
