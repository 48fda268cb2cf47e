//! A compiled agent that does as little as an agent can, for the orchestration benchmarks.
//!
//! It reads its prompt from stdin and throws it away. As a reviewer (`LOOP_PHASE=review`) it
//! prints `APPROVED`. Otherwise it ticks the first `- [ ]` of `$LOOP_PLAN_PATH` and prints
//! `DONE: task <n>`, or prints `<promise>COMPLETE</promise>` when no box is left. No git commit.
//!
//! Flags, for the load scripts:
//!
//! - `--sleep-ms N`: sleep N ms before answering (an agent that "thinks").
//! - `--print-bytes N` and `--line-bytes L` (default 1024): on a call that ticks a box, print N
//!   bytes of ASCII text in lines of L bytes (newline included) before answering, in 1 MiB
//!   writes.
//! - `--timing FILE`: append `<start ns> <end ns>` of the printing (Unix time) to FILE.
//! - `--wait-file FILE`: before answering, wait until FILE exists (polled every 5 ms).

use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() {
    let mut sleep_ms = 0u64;
    let mut print_bytes = 0u64;
    let mut line_bytes = 1024usize;
    let mut timing: Option<String> = None;
    let mut wait_file: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--sleep-ms" => sleep_ms = value().parse().expect("--sleep-ms N"),
            "--print-bytes" => print_bytes = value().parse().expect("--print-bytes N"),
            "--line-bytes" => line_bytes = value().parse().expect("--line-bytes N"),
            "--timing" => timing = Some(value()),
            "--wait-file" => wait_file = Some(value()),
            other => panic!("unknown argument {other:?}"),
        }
    }
    let mut prompt = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut prompt);
    if let Some(file) = wait_file {
        while !std::path::Path::new(&file).exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    if sleep_ms > 0 {
        std::thread::sleep(Duration::from_millis(sleep_ms));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if print_bytes > 0 && ticks_a_box() {
        let started = now_ns();
        print_text(&mut out, print_bytes, line_bytes.max(2));
        let ended = now_ns();
        if let Some(path) = timing {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the timing file");
            writeln!(file, "{started} {ended}").expect("write the timing file");
        }
    }
    let answer = answer();
    writeln!(out, "{answer}").expect("write the answer");
    out.flush().expect("flush");
}

/// Whether this call will tick a plan box (an implementation call on a plan with one left).
fn ticks_a_box() -> bool {
    std::env::var("LOOP_PHASE").as_deref() != Ok("review")
        && std::env::var("LOOP_PLAN_PATH")
            .ok()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .is_some_and(|plan| plan.contains("- [ ]"))
}

fn answer() -> String {
    if std::env::var("LOOP_PHASE").as_deref() == Ok("review") {
        return "APPROVED".to_owned();
    }
    let Ok(plan_path) = std::env::var("LOOP_PLAN_PATH") else {
        return "DONE: no plan".to_owned();
    };
    let Ok(plan) = std::fs::read_to_string(&plan_path) else {
        return "DONE: no plan".to_owned();
    };
    match plan.find("- [ ]") {
        Some(at) => {
            let ticked = format!("{}- [x]{}", &plan[..at], &plan[at + 5..]);
            std::fs::write(&plan_path, &ticked).expect("write the plan");
            // Each answer differs from the last, so the watchdog sees no repeated output.
            format!("DONE: task {}", ticked.matches("- [x]").count())
        }
        None => "<promise>COMPLETE</promise>".to_owned(),
    }
}

fn print_text(out: &mut impl Write, total: u64, line_bytes: usize) {
    let mut line = vec![b'x'; line_bytes];
    line[line_bytes - 1] = b'\n';
    let mut block = Vec::with_capacity(1 << 20);
    while block.len() + line_bytes <= 1 << 20 {
        block.extend_from_slice(&line);
    }
    let mut left = total;
    while left > 0 {
        let n = (block.len() as u64).min(left) as usize;
        // A short last block still ends with a newline.
        if n < block.len() {
            let mut last = block[..n].to_vec();
            if let Some(end) = last.last_mut() {
                *end = b'\n';
            }
            out.write_all(&last).expect("write output");
        } else {
            out.write_all(&block).expect("write output");
        }
        left -= n as u64;
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
