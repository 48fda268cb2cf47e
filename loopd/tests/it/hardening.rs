//! The fault suite of the hardening issue: each test is an attack or a fault that got through
//! before — a web page or another user driving the daemon, agents outliving a killed daemon,
//! idle connections and a low fd limit, bad input, a damaged log, loose file modes, large
//! downloads. Tests that need root (another user, a tmpfs) say so loudly when skipped, and fail
//! instead when `LOOP_REQUIRE_SYSTEM_TESTS` is set (CI runs as root).

mod access;
mod agent_files;
mod connections;
mod descendants;
mod inputs;
mod nodes;
mod processes;
mod resources;
mod secrets;
mod storage;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::Daemon;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Skips a test that needs root, loudly; fails instead under `LOOP_REQUIRE_SYSTEM_TESTS`.
fn needs_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    let why = format!("SKIPPED {test}: needs root (another user's uid, a tmpfs mount)");
    assert!(
        std::env::var_os("LOOP_REQUIRE_SYSTEM_TESTS").is_none(),
        "{why}, and LOOP_REQUIRE_SYSTEM_TESTS is set"
    );
    eprintln!("{why}");
    false
}

/// One raw HTTP/1.1 exchange: what the daemon answers to `request`, as (status, body).
fn raw(daemon: &Daemon, request: &str) -> (u16, String) {
    let address = daemon.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    parse_answer(&answer)
}

/// [`raw`], sent by another user of the machine (`uid`, its group the same number): bash's
/// `/dev/tcp` as that user, so the daemon sees a socket that user owns.
fn raw_as(uid: u32, daemon: &Daemon, request: &str) -> (u16, String) {
    use std::os::unix::process::CommandExt;
    let (address, port) = host(daemon)
        .rsplit_once(':')
        .map(|(a, p)| (a.to_owned(), p.to_owned()))
        .expect("host:port");
    let mut child = std::process::Command::new("bash")
        .args([
            "-c",
            &format!("exec 3<>/dev/tcp/{address}/{port}; cat >&3; cat <&3"),
        ])
        .uid(uid)
        .gid(uid)
        .current_dir("/")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("bash as another user");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.as_bytes())
        .expect("send");
    let output = child.wait_with_output().expect("an answer");
    parse_answer(&output.stdout)
}

/// The status and body of a raw HTTP/1.1 answer.
fn parse_answer(answer: &[u8]) -> (u16, String) {
    let answer = String::from_utf8_lossy(answer).into_owned();
    let status = answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn host(daemon: &Daemon) -> String {
    daemon.base.trim_start_matches("http://").to_owned()
}

/// The processes whose parent is `parent` and whose command line has `arg`.
fn children_with_arg(parent: i32, arg: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(parent)
                && cmdline
                    .split(|byte| *byte == 0)
                    .any(|part| part == arg.as_bytes())
        })
        .collect()
}
