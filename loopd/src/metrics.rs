//! `/metrics`: Prometheus text, kept as one more projection of the log (folded from the first
//! event at start, then live), plus what only the daemon knows (SSE subscribers, append time).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use loop_core::event::Event;
use loop_core::{EventRecord, RunId, RunStatus, Seq};
use loop_runtime::{Runtime, RuntimeError};
use loop_store::StoreError;

#[derive(Debug, Default)]
struct Counters {
    status: HashMap<RunId, RunStatus>,
    steps: BTreeMap<(&'static str, &'static str), u64>,
    retries: u64,
    waits: u64,
    watchdog_signals: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
    pub sse_subscribers: AtomicI64,
    /// Events of the log this daemon could not read (written by a newer build, or damaged).
    undecodable: AtomicI64,
}

impl Metrics {
    fn apply(&self, record: &EventRecord) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let status = match &record.event {
            Event::RunCreated(_) | Event::RunRetried(_) | Event::ChangesRequested(_) => {
                Some(RunStatus::Pending)
            }
            Event::RunStarted(_) | Event::RunResumed(_) => Some(RunStatus::Running),
            Event::RunPaused(_) => Some(RunStatus::Paused),
            Event::RunCompleted(_) => Some(RunStatus::Completed),
            Event::RunFailed(_) => Some(RunStatus::Failed),
            Event::RunCanceled(_) => Some(RunStatus::Canceled),
            _ => None,
        };
        if let Some(status) = status {
            counters.status.insert(record.run_id, status);
        }
        match &record.event {
            Event::StepFinished(step) => {
                *counters
                    .steps
                    .entry((step.phase.as_str(), step.status.as_str()))
                    .or_default() += 1;
            }
            Event::AgentRetry(_) => counters.retries += 1,
            Event::AgentWaiting(_) => counters.waits += 1,
            Event::WatchdogSignal(_) => counters.watchdog_signals += 1,
            _ => {}
        }
    }

    /// Follows the log from its first event for as long as the runtime lives.
    pub async fn follow(&self, runtime: Runtime) {
        let mut events = runtime.subscribe(None, Seq(0));
        // An event that does not decode is counted and skipped, never the end of the figures.
        while let Some(next) = events.next().await {
            match next {
                Ok(record) => self.apply(&record),
                Err(RuntimeError::Store(error @ StoreError::Corrupt { .. })) => {
                    tracing::warn!(%error, "metrics skip an event they cannot read");
                    self.undecodable.fetch_add(1, Ordering::Relaxed);
                }
                // The log cannot be read now (its server down, a node started before it
                // answered): no event was skipped, and `/health` says why. It used to count
                // here as an undecodable event, one a second for as long as the outage lasted.
                // The stream resumes where it was.
                Err(error) => {
                    tracing::debug!(%error, "metrics wait for the log");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    pub fn render(&self, (appends, append_seconds): (u64, f64)) -> String {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let mut by_status: BTreeMap<&str, u64> =
            RunStatus::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for status in counters.status.values() {
            *by_status.entry(status.as_str()).or_default() += 1;
        }
        out.push_str("# HELP loopd_runs Runs by status.\n# TYPE loopd_runs gauge\n");
        for (status, n) in by_status {
            let _ = writeln!(out, "loopd_runs{{status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP loopd_steps_total Finished steps by phase and outcome.\n# TYPE loopd_steps_total counter\n");
        for ((phase, status), n) in &counters.steps {
            let _ = writeln!(
                out,
                "loopd_steps_total{{phase=\"{phase}\",status=\"{status}\"}} {n}"
            );
        }
        let simple = [
            (
                "loopd_agent_retries_total",
                "Agent calls retried.",
                "counter",
                counters.retries as f64,
            ),
            (
                "loopd_agent_waits_total",
                "Waits on an agent usage limit.",
                "counter",
                counters.waits as f64,
            ),
            (
                "loopd_watchdog_signals_total",
                "Watchdog signals recorded.",
                "counter",
                counters.watchdog_signals as f64,
            ),
            (
                "loopd_appends_total",
                "Appends to the event log by this daemon.",
                "counter",
                appends as f64,
            ),
            (
                "loopd_append_seconds_total",
                "Time spent appending to the event log.",
                "counter",
                append_seconds,
            ),
            (
                "loopd_undecodable_events_total",
                "Events of the log this daemon could not read and skipped.",
                "counter",
                self.undecodable.load(Ordering::Relaxed) as f64,
            ),
            (
                "loopd_sse_subscribers",
                "Open SSE streams.",
                "gauge",
                self.sse_subscribers.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, help, kind, value) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}
