//! The channels a notification goes out on: a command (`notify_cmd`, the event's JSON on
//! stdin) and a webhook (`notify_webhook`: a POST, over plain HTTP here, with `curl` for
//! `https://`), each tried up to [`super::ATTEMPTS`] times with backoff.

use std::path::Path;
use std::time::Duration;

use loop_core::EventRecord;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;

use super::{ATTEMPTS, DELIVERY_TIMEOUT, FIRST_BACKOFF};
use crate::process::{self, Ended, Limits, LineEffect, LineSink, Spec};

/// A notification as it goes out.
pub(super) struct Message<'a> {
    pub record: &'a EventRecord,
    pub kind: &'static str,
    pub body: &'a str,
    pub run_name: &'a str,
    pub workdir: &'a Path,
}

/// Tries a delivery up to [`ATTEMPTS`] times: how many tries it took, and the last error if
/// none succeeded.
pub(super) async fn attempt_all(
    channel: &str,
    target: &str,
    message: &Message<'_>,
) -> (u32, Option<String>) {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let sent = match channel {
            "cmd" => run_command(target, message).await,
            _ => post(target, message).await,
        };
        match sent {
            Ok(()) => return (attempt, None),
            Err(error) if attempt == ATTEMPTS => return (attempt, Some(error)),
            Err(error) => {
                warn!(
                    run_id = %message.record.run_id,
                    seq = message.record.seq.0,
                    channel,
                    attempt,
                    %error,
                    "notification not delivered; trying again"
                );
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    }
    unreachable!("the last attempt returns")
}

struct Quiet;

impl LineSink for Quiet {
    fn stdout_line(&mut self, _line: &str) -> LineEffect {
        LineEffect::Continue
    }
    fn stderr_line(&mut self, _line: &str) {}
}

/// `sh -c <cmd>` in the run's workspace, the event's JSON on stdin.
async fn run_command(command: &str, message: &Message<'_>) -> Result<(), String> {
    let mut spec = Spec::shell(command, message.workdir);
    spec.stdin = message.body.as_bytes().to_vec();
    let record = message.record;
    spec.env = [
        (
            "LOOP_EVENT_TYPE",
            record.event.event_type().as_str().to_owned(),
        ),
        ("LOOP_NOTIFY_KIND", message.kind.to_owned()),
        ("LOOP_RUN_ID", record.run_id.to_string()),
        ("LOOP_RUN_NAME", message.run_name.to_owned()),
        ("LOOP_SEQ", record.seq.to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (key.into(), value.into()))
    .collect();
    let limits = Limits {
        timeout: Some(DELIVERY_TIMEOUT),
        ..Limits::default()
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let outcome = process::run(&spec, limits, None, &mut Quiet, &cancel)
        .await
        .map_err(|error| format!("cannot run notify_cmd: {error}"))?;
    match (outcome.ended, outcome.exit_code) {
        (Ended::Exited, Some(0)) => Ok(()),
        (Ended::TimedOut, _) => Err(format!(
            "notify_cmd took longer than {} s",
            DELIVERY_TIMEOUT.as_secs()
        )),
        (_, code) => {
            let said = outcome
                .stderr_tail
                .lines()
                .rfind(|line| !line.trim().is_empty())
                .map(|line| format!(": {}", line.trim()))
                .unwrap_or_default();
            Err(format!(
                "notify_cmd exited with {}{said}",
                code.map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"))
            ))
        }
    }
}

/// POSTs the event's JSON to `url`; a 2xx answer is a delivery.
async fn post(url: &str, message: &Message<'_>) -> Result<(), String> {
    let headers = [
        ("Content-Type", "application/json".to_owned()),
        ("User-Agent", format!("loop/{}", env!("CARGO_PKG_VERSION"))),
        (
            "X-Loop-Event",
            message.record.event.event_type().as_str().to_owned(),
        ),
        ("X-Loop-Kind", message.kind.to_owned()),
        ("X-Loop-Seq", message.record.seq.to_string()),
    ];
    if url.starts_with("https://") {
        return post_with_curl(url, &headers, message.body).await;
    }
    tokio::time::timeout(DELIVERY_TIMEOUT, post_http(url, &headers, message.body))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs())))
}

/// `http://host[:port][/path]` split into what to connect to, the `Host` header and the
/// request target.
fn split_http_url(url: &str) -> Result<(String, u16, &str, &str), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| "notify_webhook must be an http:// or https:// URL".to_owned())?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('/') => (&rest[..at], &rest[at..]),
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let bad = || format!("notify_webhook {url:?} has no usable host and port");
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            (host, port.parse::<u16>().map_err(|_| bad())?)
        }
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    Ok((host.to_owned(), port, authority, path))
}

async fn post_http(url: &str, headers: &[(&str, String)], body: &str) -> Result<(), String> {
    let (host, port, authority, path) = split_http_url(url)?;
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    let mut stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|error| format!("cannot connect to {authority}: {error}"))?;
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|error| format!("cannot send to {authority}: {error}"))?;
    // The status line is all that matters; the rest of the answer is left unread.
    let mut answer = Vec::with_capacity(256);
    let mut buffer = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < 8192 {
        let n = stream
            .read(&mut buffer)
            .await
            .map_err(|error| format!("no answer from {authority}: {error}"))?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
    }
    let status_line = String::from_utf8_lossy(&answer);
    let status_line = status_line.lines().next().unwrap_or_default();
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{authority} did not answer HTTP: {status_line:?}"))?;
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!("{authority} answered {status_line}"))
    }
}

async fn post_with_curl(url: &str, headers: &[(&str, String)], body: &str) -> Result<(), String> {
    let mut args: Vec<String> = vec![
        "--silent".into(),
        "--show-error".into(),
        "--fail".into(),
        "--max-time".into(),
        DELIVERY_TIMEOUT.as_secs().to_string(),
        "--request".into(),
        "POST".into(),
        "--data-binary".into(),
        "@-".into(),
        "--output".into(),
        "/dev/null".into(),
    ];
    for (name, value) in headers {
        args.push("--header".into());
        args.push(format!("{name}: {value}"));
    }
    args.push(url.to_owned());
    let spec = Spec {
        program: "curl".into(),
        args: args.into_iter().map(Into::into).collect(),
        cwd: std::env::temp_dir(),
        stdin: body.as_bytes().to_vec(),
        ..Spec::default()
    };
    let limits = Limits {
        timeout: Some(DELIVERY_TIMEOUT + Duration::from_secs(5)),
        ..Limits::default()
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let outcome = process::run(&spec, limits, None, &mut Quiet, &cancel)
        .await
        .map_err(|error| format!("https webhooks need curl on PATH: {error}"))?;
    match outcome.exit_code {
        Some(0) => Ok(()),
        _ => Err(format!("curl: {}", outcome.stderr_tail.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_split_into_host_port_and_target() {
        let table = [
            (
                "http://127.0.0.1:8080/hook",
                ("127.0.0.1", 8080, "127.0.0.1:8080", "/hook"),
            ),
            (
                "http://example.invalid",
                ("example.invalid", 80, "example.invalid", "/"),
            ),
            ("http://[::1]:9/a?b=c", ("::1", 9, "[::1]:9", "/a?b=c")),
            ("http://h:1?x", ("h", 1, "h:1", "?x")),
        ];
        for (url, (host, port, authority, path)) in table {
            let split = split_http_url(url).unwrap();
            assert_eq!(
                (split.0.as_str(), split.1, split.2, split.3),
                (host, port, authority, path),
                "{url}"
            );
        }
        for bad in ["ftp://x", "http://:80/", "http://u:p@h/", "http://h:port/"] {
            assert!(split_http_url(bad).is_err(), "{bad}");
        }
    }
}
