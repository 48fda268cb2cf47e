//! The channels a notification goes out on: a command (`notify_cmd`, the event's JSON on
//! stdin) and a webhook (`notify_webhook`: a POST to an `http://` or `https://` URL through
//! reqwest, TLS by rustls against the machine's trusted certificates), each tried up to
//! [`super::ATTEMPTS`] times on backon's schedule.

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use backon::{ExponentialBuilder, Retryable};
use loop_core::EventRecord;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{ATTEMPTS, DELIVERY_TIMEOUT, FIRST_BACKOFF};
use crate::process::{self, Ended, Limits, LineEffect, LineSink, Spec};

/// A channel a notification goes out on, as `deliveries.jsonl` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Channel {
    /// `notify_cmd`.
    Cmd,
    /// `notify_webhook`.
    Webhook,
    /// A channel of a newer build, in its `deliveries.jsonl`: never one this build delivers on.
    #[serde(other)]
    Unknown,
}

impl Channel {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Channel::Cmd => "cmd",
            Channel::Webhook => "webhook",
            Channel::Unknown => "unknown",
        }
    }
}

/// A notification as it goes out.
pub(super) struct Message<'a> {
    pub record: &'a EventRecord,
    pub kind: super::Kind,
    pub body: &'a str,
    pub run_name: &'a str,
    pub workdir: &'a Path,
}

/// Tries a delivery up to [`ATTEMPTS`] times: how many tries it took, and the last error if
/// none succeeded.
pub(super) async fn attempt_all(
    channel: Channel,
    target: &str,
    message: &Message<'_>,
) -> (u32, Option<String>) {
    let attempts = AtomicU32::new(0);
    let send = || async {
        attempts.fetch_add(1, Ordering::Relaxed);
        match channel {
            Channel::Cmd => run_command(target, message).await,
            Channel::Webhook => post(target, message).await,
            Channel::Unknown => Err("no such channel".to_owned()),
        }
    };
    // FIRST_BACKOFF, doubling, between ATTEMPTS tries.
    let schedule = ExponentialBuilder::default()
        .with_min_delay(FIRST_BACKOFF)
        .without_max_delay()
        .with_max_times(ATTEMPTS as usize - 1);
    let sent = send
        .retry(schedule)
        .sleep(tokio::time::sleep)
        .notify(|error: &String, _| {
            warn!(
                run_id = %message.record.run_id,
                seq = message.record.seq.0,
                channel = channel.as_str(),
                attempt = attempts.load(Ordering::Relaxed),
                %error,
                "notification not delivered; trying again"
            );
        })
        .await;
    (attempts.into_inner(), sent.err())
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
        ("LOOP_NOTIFY_KIND", message.kind.as_str().to_owned()),
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
    let url = webhook_url(url)?;
    let authority = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let record = message.record;
    let answer = http_client()?
        .post(url)
        .header("Content-Type", "application/json")
        .header("User-Agent", format!("loop/{}", env!("CARGO_PKG_VERSION")))
        .header("X-Loop-Event", record.event.event_type().as_str())
        .header("X-Loop-Kind", message.kind.as_str())
        .header("X-Loop-Seq", record.seq.to_string())
        .body(message.body.to_owned())
        .send()
        .await
        .map_err(|error| {
            if error.is_timeout() {
                format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs())
            } else if error.is_connect() {
                format!("cannot connect to {authority}: {}", causes(&error))
            } else {
                format!("no answer from {authority}: {}", causes(&error))
            }
        })?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{authority} answered {status}"))
    }
}

/// An error with the errors under it (where a refused connection or a bad certificate is said).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `url` as a webhook takes it: `http://` (or `https://`) with a host, and no credentials in
/// it (they would be written into every log line that names the URL).
fn webhook_url(url: &str) -> Result<reqwest::Url, String> {
    let bad = || format!("notify_webhook {url:?} has no usable host and port");
    let parsed = reqwest::Url::parse(url).map_err(|_| bad())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("notify_webhook must be an http:// or https:// URL".to_owned());
    }
    if parsed.host_str().is_none_or(str::is_empty)
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(bad());
    }
    Ok(parsed)
}

/// The client every webhook goes through (it keeps connections to reuse).
fn http_client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        // Straight to the URL, as the person wrote it: no proxy from the environment.
        .no_proxy()
        // Header names as the hand-written client sent them (`X-Loop-Kind`), for receivers that
        // match them by case.
        .http1_title_case_headers()
        .build()
        .map_err(|error| format!("cannot make an HTTP client: {error}"))?;
    Ok(CLIENT.get_or_init(|| client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_need_a_host_and_no_credentials() {
        for good in [
            "http://127.0.0.1:8080/hook",
            "http://example.invalid",
            "http://[::1]:9/a?b=c",
            "http://h:1?x",
            "https://hooks.example.invalid/x",
        ] {
            assert!(webhook_url(good).is_ok(), "{good}");
        }
        for bad in ["ftp://x", "http://:80/", "http://u:p@h/", "http://h:port/"] {
            assert!(webhook_url(bad).is_err(), "{bad}");
        }
    }
}
