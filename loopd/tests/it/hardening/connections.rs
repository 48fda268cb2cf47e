//! Connections that misbehave: malformed requests, idle or slow clients, more connections
//! than the daemon has files for.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Loopd, client, repo, run_body, start_daemon, wait_for_end};

use super::{host, raw};

#[test]
fn protocol_errors_and_odd_headers_get_json_answers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(
        &dir.path().join("data"),
        &[],
        &[("LOOPD_AUTH_TOKEN", "s3cret")],
    );
    let address = host(&daemon);
    let json_code = |(status, body): (u16, String)| {
        let body: Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("status {status}: body {body:?} is not JSON"));
        (status, body["code"].as_str().unwrap_or("").to_owned())
    };
    // A header block past what the daemon reads.
    let big = "x".repeat(70 * 1024);
    let (status, code) = json_code(raw(
        &daemon,
        &format!("GET /health HTTP/1.1\r\nHost: {address}\r\nX-Big: {big}\r\n\r\n"),
    ));
    assert_eq!((status, code.as_str()), (431, "headers_too_large"));
    // A URI past it.
    let (status, code) = json_code(raw(
        &daemon,
        &format!("GET /{big} HTTP/1.1\r\nHost: {address}\r\n\r\n"),
    ));
    assert!(status == 414 || status == 431, "{status} {code}");
    // Two different lengths: which body is it?
    let (status, code) = json_code(raw(
        &daemon,
        &format!(
            "POST /runs HTTP/1.1\r\nHost: {address}\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{{}}"
        ),
    ));
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    // Two Hosts: neither decides.
    let (status, code) = json_code(raw(
        &daemon,
        &format!(
            "GET /runs HTTP/1.1\r\nHost: {address}\r\nHost: evil.example\r\nAuthorization: Bearer s3cret\r\nConnection: close\r\n\r\n"
        ),
    ));
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    // The scheme of a credential is case-insensitive.
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let (status, _) = raw(
            &daemon,
            &format!(
                "GET /runs HTTP/1.1\r\nHost: {address}\r\nAuthorization: {scheme} s3cret\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(status, 200, "{scheme}");
    }
    // A declared body over the limit is refused before a byte of it is sent.
    let mut stream = TcpStream::connect(&address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "POST /runs HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer s3cret\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        2 * 1024 * 1024
    )
    .expect("headers");
    let mut answer = [0u8; 12];
    stream
        .read_exact(&mut answer)
        .expect("an answer before the body");
    assert_eq!(&answer, b"HTTP/1.1 413");
}

#[test]
fn idle_connections_are_dropped_and_a_low_fd_limit_still_serves_and_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 2);
    let data = dir.path().join("data");
    // A soft and hard limit of 256 files, as a cautious system might set.
    let mut prlimit = Command::new("prlimit");
    prlimit.args(["--nofile=256:256", env!("CARGO_BIN_EXE_loopd")]);
    let daemon = Loopd::through(prlimit, &data)
        .args(["--header-timeout-ms", "1500"])
        .start();
    let address = host(&daemon);
    // 200 connections that say nothing: more than the cap (128 for 256 files) allows.
    let idle: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(&address).ok())
        .collect();
    assert!(idle.len() >= 200, "only {} connected", idle.len());
    // The daemon still answers at once (a JSON 503 while full), never a hang.
    let quick = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let answered = quick.get(daemon.url("/health")).send().expect("an answer");
    assert!(
        [StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE].contains(&answered.status()),
        "{answered:?}"
    );
    // The silent ones are closed after the header timeout; then all is served again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = quick.get(daemon.url("/health")).send().map(|r| r.status());
        if status.as_ref().is_ok_and(|s| *s == StatusCode::OK) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health never recovered: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut closed = 0;
    for mut stream in idle {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut byte = [0u8; 512];
        // EOF (0) or a 503 answer and then EOF: the daemon let go of it.
        if stream.read(&mut byte).is_ok() {
            closed += 1;
        }
    }
    assert!(closed >= 200, "{closed} closed");
    // A run under the same limit completes (it does not fail with "Too many open files").
    let created: Value = client()
        .post(daemon.url("/runs"))
        .json(&run_body(&repo, "one_task.sh", json!({})))
        .send()
        .expect("create")
        .json()
        .expect("json");
    let id = crate::support::run_id(&created);
    let run = wait_for_end(&daemon, &id);
    assert_eq!(run["status"], "COMPLETED", "{run}");
}

#[test]
fn a_connection_over_the_cap_is_answered_503_after_its_request_not_before() {
    // A 256-file limit makes the cap 128 connections; 130 idle ones fill it.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut prlimit = Command::new("prlimit");
    prlimit.args(["--nofile=256:256", env!("CARGO_BIN_EXE_loopd")]);
    let daemon = Loopd::through(prlimit, &dir.path().join("data")).start();
    let address = host(&daemon);
    let idle: Vec<TcpStream> = (0..130)
        .map(|_| TcpStream::connect(&address).expect("connect"))
        .collect();
    // A client slow to send its request, as any is on a busy machine. The refusal used to be
    // written at once, before the request: hyper's client (reqwest's) takes bytes on a
    // connection with no request in flight as an error, so a slow client saw no answer.
    let mut stream = TcpStream::connect(&address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut early = [0u8; 64];
    match stream.read(&mut early) {
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
        other => panic!("the daemon spoke before the request: {other:?}"),
    }
    // A request with a body it does not read: drained, so the answer is not reset away.
    let body = vec![b'x'; 1 << 20];
    let head = format!(
        "POST /runs HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("head sent");
    stream
        .write_all(&body)
        .expect("the whole body is taken, not reset");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("the answer, not a reset");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");

    // The same through reqwest, with the cap still full.
    let answered = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
        .get(daemon.url("/health"))
        .send()
        .expect("an answer");
    assert_eq!(answered.status(), StatusCode::SERVICE_UNAVAILABLE);
    drop(idle);
}

#[test]
fn the_soft_fd_limit_is_raised_to_the_hard_one_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A cautious soft limit under a generous hard one, as many login shells set.
    let mut prlimit = Command::new("prlimit");
    prlimit.args(["--nofile=256:4096", env!("CARGO_BIN_EXE_loopd")]);
    let daemon = Loopd::through(prlimit, &dir.path().join("data")).start();
    // prlimit execs loopd: the pid is the daemon's.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", daemon.pid())).expect("limits");
    let open_files: Vec<&str> = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .expect("a Max open files line")
        .split_whitespace()
        .collect();
    assert_eq!(&open_files[..2], &["4096", "4096"], "{limits}");
    assert_eq!(
        client()
            .get(daemon.url("/health"))
            .send()
            .expect("health")
            .status(),
        StatusCode::OK
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(
        &dir.path().join("data"),
        &["--header-timeout-ms", "1000"],
        &[],
    );
    let address = host(&daemon);
    let mut stream = TcpStream::connect(&address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // One whole request on a keep-alive connection (HTTP/1.1's default), and its whole answer.
    write!(stream, "GET /health HTTP/1.1\r\nHost: {address}\r\n\r\n").expect("send");
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    let head_end = loop {
        let n = stream.read(&mut byte).expect("the answer's head");
        assert_eq!(n, 1, "closed before the answer: {answer:?}");
        answer.push(byte[0]);
        if answer.ends_with(b"\r\n\r\n") {
            break answer.len();
        }
    };
    let head = String::from_utf8_lossy(&answer[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "kept alive: {head}");
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("a content-length: {head}"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("the body");
    let answered = Instant::now();
    // Then silence: the daemon lets go of the connection after the header timeout, not never.
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest);
    let idle = answered.elapsed();
    assert!(
        read.is_ok(),
        "still open after {idle:?} of silence: {read:?}"
    );
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_secs(5),
        "closed after {idle:?}, the header timeout is 1 s"
    );
}
