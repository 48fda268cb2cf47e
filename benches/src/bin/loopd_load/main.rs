//! Load tests of the real daemon binary against the quality bars (`benches/load/run.sh` runs
//! them all). Each prints its figures and its same-run baseline.
//!
//! ```text
//! loopd_load scale  [--runs 200] [--sleep-ms 1000] [--tasks 1]
//! loopd_load output [--mib 100] [--line-bytes 1024]
//! loopd_load fanout [--subscribers 1000] [--tasks 20] [--sleep-ms 200] [--baseline 1]
//! loopd_load cli    [--runs 10000] [--repeat 20]
//! loopd_load memory [--clients 2000] [--bursts 3] [--tasks 100] [--downloads 10] [--mib 100]
//! loopd_load takeover [--runs 4] [--lease-ms 5000]
//! ```
//!
//! `loopd` and `noop_agent` are taken from beside this binary (or `$LOOPD_BIN`, `$NOOP_AGENT`);
//! scratch files go under `$LOOP_BENCH_DIR` (else the system temp dir).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use loop_benches::bench_dir;
use loop_benches::daemon::{
    Daemon, Measured, Memory, api, cpu_of, memory_of, mib, noop_agent_bin, now_ms, open_files,
    run_body, start,
};
use loop_benches::scratch::{git_repo, git_repos};
use loop_core::{RunId, Seq};
use serde_json::{Value, json};

mod cli;
mod fanout;
mod memory;
mod output;
mod scale;
mod takeover;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: loopd_load scale|output|fanout [--flag value]…");
        std::process::exit(2);
    }
    let command = args.remove(0);
    let flags: HashMap<String, String> = args
        .chunks(2)
        .map(|pair| {
            let key = pair[0].trim_start_matches("--").to_owned();
            let value = pair.get(1).cloned().unwrap_or_default();
            (key, value)
        })
        .collect();
    let flag = |name: &str, default: u64| -> u64 {
        flags
            .get(name)
            .map_or(default, |v| v.replace('_', "").parse().expect("a number"))
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match command.as_str() {
        "scale" => tokio.block_on(scale::scale(
            flag("runs", 200) as usize,
            flag("sleep-ms", 1000),
            flag("tasks", 1) as usize,
        )),
        "output" => tokio.block_on(output::output(flag("mib", 100), flag("line-bytes", 1024))),
        "fanout" => tokio.block_on(fanout::fanout(
            flag("subscribers", 1000) as usize,
            flag("tasks", 20) as usize,
            flag("sleep-ms", 200),
            flag("baseline", 1) != 0,
        )),
        "cli" => cli::cli(flag("runs", 10_000), flag("repeat", 20) as usize, &tokio),
        "memory" => tokio.block_on(memory::memory(
            flag("clients", 2000) as usize,
            flag("bursts", 3) as usize,
            flag("tasks", 100) as usize,
            flag("downloads", 10) as usize,
            flag("mib", 100),
        )),
        "takeover" => takeover::takeover(flag("runs", 4) as usize, flag("lease-ms", 5000)),
        other => {
            eprintln!("unknown command {other:?}: scale, output, fanout, cli, memory or takeover");
            std::process::exit(2);
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("http client")
}

async fn post_run(client: &reqwest::Client, daemon: &Daemon, body: &Value) -> String {
    let response = client
        .post(daemon.url("/runs"))
        .json(body)
        .send()
        .await
        .expect("POST /runs");
    let status = response.status();
    let value: Value = response.json().await.expect("POST /runs answers JSON");
    assert!(status.is_success(), "POST /runs: {status} {value}");
    value["run"]["id"].as_str().expect("run id").to_owned()
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

/// Samples the daemon's memory every `every` until stopped; returns the peak RSS seen.
fn sampler(pid: u32, every: Duration) -> (Arc<AtomicBool>, std::thread::JoinHandle<Memory>) {
    let (stop, timeline) = timeline(pid, every);
    let handle = std::thread::spawn(move || {
        let samples = timeline.join().expect("sampler");
        samples
            .into_iter()
            .map(|(_, m)| m)
            .max_by_key(|m| m.rss)
            .unwrap_or_default()
    });
    (stop, handle)
}

/// Samples the daemon's memory every `every` until stopped: (Unix ms, memory) pairs.
#[allow(clippy::type_complexity)]
fn timeline(
    pid: u32,
    every: Duration,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<Vec<(f64, Memory)>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !flag.load(Ordering::Relaxed) {
            samples.push((now_ms(), memory_of(pid)));
            std::thread::sleep(every);
        }
        samples
    });
    (stop, handle)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------------------------
// scale: N concurrent runs whose agent sleeps a while each step.
