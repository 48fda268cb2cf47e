//! Notifications: the events a person cares about, delivered as they reach the log.
//!
//! The notifier is a subscriber of the log, like any reader: it reads every event after its
//! cursor in `seq` order and, for a notable one ([`kind_of`]: a run completed, failed or was
//! canceled, a wait on a usage limit, the watchdog giving up, a merge conflict), runs the run's
//! `notify_cmd` (`sh -c`, the event's JSON on stdin) and POSTs the JSON to its
//! `notify_webhook`, each from the run's frozen config. It runs in a task of its own, so a slow
//! or failing receiver never holds a run up. A failed delivery is tried again with backoff
//! (0.5 s, doubling, [`ATTEMPTS`] tries in all) and its outcome, delivered or failed, is
//! recorded.
//!
//! Delivery state lives in `<data dir>/notify/`, not in the log: `cursor` (the last `seq` fully
//! handled), `deliveries.jsonl` (one line per delivery: seq, run, channel, status, attempts,
//! error) and `lock` (one notifier per data dir, so a daemon and a `loopctl exec` on the same
//! data dir never both deliver). Writing deliveries into the runs' logs would append to
//! finished runs, changing their projections and `updated_at` long after they ended, and make
//! a reader of the log a writer of what it reads. After a restart the notifier resumes from
//! its cursor and skips what `deliveries.jsonl` shows as done past it, so nothing is lost and
//! nothing is sent twice (short of a crash between a receiver accepting a delivery and the
//! line recording it). A data dir with no cursor yet starts at the log's end: history is not
//! notified. Events another process appends are picked up within [`WAKE_EVERY`].
//!
//! Webhooks are posted through reqwest (`channels.rs`); the cursor, the deliveries and the lock
//! are in `book.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loop_core::event::Event;
use loop_core::{EventRecord, RunId, Seq};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

mod book;
mod channels;

use crate::process;
use crate::services::Services;
use book::{Book, Delivery, Status, try_lock};
use channels::{Channel, Message, attempt_all};

/// Tries of one delivery before it is recorded as failed.
pub(crate) const ATTEMPTS: u32 = 5;
/// The wait before the second try; it doubles after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// How long a command or a POST may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the log is read for events appended by other processes.
pub(crate) const WAKE_EVERY: Duration = Duration::from_secs(2);
/// After a shutdown, how long pending deliveries may still take.
const DRAIN: Duration = Duration::from_secs(3);
/// Events read from the log at a time.
const PAGE: usize = 256;

/// What a notable event means to a person (`LOOP_NOTIFY_KIND`, the `X-Loop-Kind` header,
/// `deliveries.jsonl`'s `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    RunCompleted,
    RunFailed,
    RunCanceled,
    /// A call met a usage limit; the run waits for its reset.
    UsageLimitWait,
    /// The account's budget is spent; the run waits (recorded outside any step).
    AccountBudgetWait,
    /// Every account of a pool run's pool is held; the run waits for the earliest end.
    AccountPoolWait,
    /// The watchdog's rewrites were spent and the run failed.
    WatchdogGaveUp,
    /// The merge on completion did not land.
    MergeConflict,
    /// A kind of a newer build, in its `deliveries.jsonl`: never one this build sends.
    #[serde(other)]
    Unknown,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::RunCompleted => "run_completed",
            Kind::RunFailed => "run_failed",
            Kind::RunCanceled => "run_canceled",
            Kind::UsageLimitWait => "usage_limit_wait",
            Kind::AccountBudgetWait => "account_budget_wait",
            Kind::AccountPoolWait => "account_pool_wait",
            Kind::WatchdogGaveUp => "watchdog_gave_up",
            Kind::MergeConflict => "merge_conflict",
            Kind::Unknown => "unknown",
        }
    }
}

/// The kind of a notable event; `None` for any other event.
pub(crate) fn kind_of(event: &Event) -> Option<Kind> {
    Some(match event {
        Event::RunCompleted(_) => Kind::RunCompleted,
        Event::RunFailed(failed) if failed.watchdog_gave_up() => Kind::WatchdogGaveUp,
        Event::RunFailed(_) => Kind::RunFailed,
        Event::RunCanceled(_) => Kind::RunCanceled,
        // A pool run waiting for its whole pool: every account is held.
        Event::AgentWaiting(wait) if wait.pool_wait.is_some() => Kind::AccountPoolWait,
        // A budget stop is the other wait recorded outside any step: no call met a limit.
        Event::AgentWaiting(wait) if wait.step_id.is_none() => Kind::AccountBudgetWait,
        Event::AgentWaiting(_) => Kind::UsageLimitWait,
        Event::MergeFinished(merge) if merge.conflict.is_some() => Kind::MergeConflict,
        _ => return None,
    })
}

/// The notifier task of a runtime.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Notifier {
    /// Starts delivering. `live` hands over what this runtime appends from before the log's
    /// end is read, so those events are seen even by a notifier that starts its cursor there.
    pub(crate) fn start(
        services: Arc<Services>,
        live: broadcast::Receiver<EventRecord>,
    ) -> Notifier {
        let ledger = Arc::clone(&services.ledger);
        let task = tokio::spawn(process::ledger::scope(
            ledger,
            deliver_log(services, live).instrument(info_span!("notifier")),
        ));
        Notifier {
            task: Mutex::new(Some(task)),
        }
    }

    /// A notifier that delivers nothing (a runtime that only reads).
    pub(crate) fn idle() -> Notifier {
        Notifier::default()
    }

    /// Waits for the notifier to finish its pending deliveries (at most [`DRAIN`] after the
    /// runtime's shutdown began) and stop.
    pub(crate) async fn stop(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Where a run's notifications go.
#[derive(Clone, Debug)]
struct Targets {
    name: String,
    workdir: PathBuf,
    cmd: Option<String>,
    webhook: Option<String>,
}

impl Targets {
    fn channels(&self) -> impl Iterator<Item = (Channel, &str)> {
        [(Channel::Cmd, &self.cmd), (Channel::Webhook, &self.webhook)]
            .into_iter()
            .filter_map(|(channel, target)| Some((channel, target.as_deref()?)))
    }
}

/// How often the cursor is written when nothing was delivered.
const CURSOR_EVERY: Duration = Duration::from_secs(5);

/// The notifier's loop: lock, cursor, then every event after it, until shutdown.
async fn deliver_log(services: Arc<Services>, mut live: broadcast::Receiver<EventRecord>) {
    let dir = services.data_dir.join("notify");
    let _lock = loop {
        match try_lock(&dir) {
            Ok(Some(lock)) => break lock,
            Ok(None) => {}
            Err(error) => {
                warn!(%error, dir = %dir.display(), "notifications are off: cannot take the lock");
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(WAKE_EVERY) => {}
            () = services.shutdown.cancelled() => return,
        }
    };
    let (cursor, done) = match Book::load(&dir) {
        Ok(loaded) => loaded,
        Err(error) => {
            warn!(%error, "notifications are off: cannot read the cursor");
            return;
        }
    };
    let cursor = match cursor {
        Some(cursor) => cursor,
        None => {
            // A new data dir: start at the log's end, but not past what this runtime has
            // appended since it started.
            let Ok(last) = services.journal.read(|store| store.last_seq()).await else {
                return;
            };
            match live.try_recv() {
                Ok(first) => Seq(last.0.min(first.seq.0.saturating_sub(1))),
                Err(_) => last,
            }
        }
    };
    let mut book = Book {
        dir,
        cursor,
        dirty: true,
        done,
    };
    let mut notifier = Delivering {
        services: &services,
        targets: HashMap::new(),
        deadline: None,
    };
    let mut last_save = std::time::Instant::now();
    // Records this runtime appended, as the live channel handed them over.
    let mut heard: Vec<EventRecord> = Vec::new();
    loop {
        let page = match next_after(book.cursor, std::mem::take(&mut heard)) {
            Some(page) => page,
            None => {
                let after = book.cursor;
                match services
                    .journal
                    .read(move |store| store.read_all(after, PAGE))
                    .await
                {
                    Ok(page) => page,
                    Err(error) => {
                        warn!(%error, "cannot read the log; trying again");
                        Vec::new()
                    }
                }
            }
        };
        let mut delivered = false;
        for record in &page {
            if let Some(kind) = kind_of(&record.event)
                && let Some(targets) = notifier.targets(record.run_id).await
                && !notifier.deliver(record, kind, &targets, &mut book).await
            {
                // Stopped mid-delivery: what is not recorded is delivered after a restart.
                let _ = book.save();
                return;
            }
            delivered |= kind_of(&record.event).is_some();
            book.advance(record.seq);
        }
        // The cursor only spares a restart from rescanning: write it when something was
        // delivered or a while has passed, not once per append (a file per event showed up as
        // a third of the runtime's own time in the orchestration benchmark).
        if delivered || last_save.elapsed() >= CURSOR_EVERY {
            if let Err(error) = book.save() {
                warn!(%error, "cannot save the notification cursor");
            }
            last_save = std::time::Instant::now();
        }
        if page.len() == PAGE {
            continue;
        }
        if notifier.deadline.is_some() || services.shutdown.is_cancelled() {
            let _ = book.save();
            return;
        }
        tokio::select! {
            received = live.recv() => {
                if let Ok(record) = received {
                    heard.push(record);
                    while let Ok(record) = live.try_recv() {
                        heard.push(record);
                    }
                }
            }
            () = tokio::time::sleep(WAKE_EVERY) => {}
            () = services.shutdown.cancelled() => {
                notifier.deadline = Some(Instant::now() + DRAIN);
            }
        }
    }
}

/// The records that come right after `cursor`, when `heard` is exactly those (in any order):
/// then the log need not be read again for what the live channel already handed over (a read
/// per append was an eighth of the runtime's own CPU in the orchestration benchmark). `None`
/// when anything is missing or was not heard here (another writer, a lagged channel): read
/// the log.
fn next_after(cursor: Seq, mut heard: Vec<EventRecord>) -> Option<Vec<EventRecord>> {
    if heard.is_empty() {
        return None;
    }
    // Already read from the log (a record can wake the notifier after the read that had it).
    heard.retain(|record| record.seq > cursor);
    heard.sort_by_key(|record| record.seq);
    let contiguous = heard
        .iter()
        .zip(cursor.0 + 1..)
        .all(|(record, expected)| record.seq.0 == expected);
    contiguous.then_some(heard)
}

struct Delivering<'a> {
    services: &'a Services,
    targets: HashMap<RunId, Option<Targets>>,
    /// Set once the runtime shuts down: deliveries must be done by then.
    deadline: Option<Instant>,
}

impl Delivering<'_> {
    /// The run's `notify_cmd` and `notify_webhook`; `None` when it has neither.
    async fn targets(&mut self, run_id: RunId) -> Option<Targets> {
        if let Some(known) = self.targets.get(&run_id) {
            return known.clone();
        }
        let run = self.services.run_context(run_id).await.ok()?;
        let targets = Targets {
            name: run.created.name.clone(),
            workdir: PathBuf::from(&run.created.workspace_root),
            cmd: run.config.notify_cmd.clone(),
            webhook: run.config.notify_webhook.clone(),
        };
        let targets = (targets.cmd.is_some() || targets.webhook.is_some()).then_some(targets);
        self.targets.insert(run_id, targets.clone());
        targets
    }

    /// The event's JSON, with what a person reading a notification wants beside it: `run`
    /// (`name`, `workspace_root`, `status`, `cost_usd`, `tasks_done`, `tasks_total`, as of now).
    async fn body(&self, record: &EventRecord, targets: &Targets) -> String {
        let mut body = serde_json::to_value(record).unwrap_or_default();
        let run_id = record.run_id;
        let view = (self.services.journal)
            .read(move |store| store.run_view(run_id))
            .await
            .ok()
            .flatten();
        if let serde_json::Value::Object(fields) = &mut body {
            let mut run = serde_json::json!({
                "name": targets.name,
                "workspace_root": targets.workdir,
            });
            if let Some(view) = view {
                run["status"] = serde_json::json!(view.status);
                run["cost_usd"] = serde_json::json!(view.cost_usd);
                run["tasks_done"] = serde_json::json!(view.tasks_done);
                run["tasks_total"] = serde_json::json!(view.tasks_total);
            }
            fields.insert("run".to_owned(), run);
        }
        body.to_string()
    }

    /// Runs `work` to its end, unless the runtime shuts down and it outlasts the drain.
    async fn bounded<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        let mut work = std::pin::pin!(work);
        if self.deadline.is_none() {
            tokio::select! {
                out = &mut work => return Some(out),
                () = self.services.shutdown.cancelled() => {
                    self.deadline = Some(Instant::now() + DRAIN);
                }
            }
        }
        let deadline = self.deadline.unwrap_or_else(Instant::now);
        tokio::time::timeout_at(deadline, work).await.ok()
    }

    /// Delivers `record` on each channel not yet done; false when stopped before the end.
    async fn deliver(
        &mut self,
        record: &EventRecord,
        kind: Kind,
        targets: &Targets,
        book: &mut Book,
    ) -> bool {
        let body = self.body(record, targets).await;
        for (channel, target) in targets.channels() {
            if book.is_done(record.seq, channel) {
                continue;
            }
            let message = Message {
                record,
                kind,
                body: &body,
                run_name: &targets.name,
                workdir: &targets.workdir,
            };
            let Some((attempts, error)) =
                self.bounded(attempt_all(channel, target, &message)).await
            else {
                return false;
            };
            let delivery = Delivery {
                seq: record.seq,
                run_id: record.run_id,
                event_type: record.event.event_type().as_str().to_owned(),
                kind,
                channel,
                status: if error.is_none() {
                    Status::Delivered
                } else {
                    Status::Failed
                },
                attempts,
                at_ms: self.services.clock.now_ms(),
                error,
            };
            match &delivery.error {
                None => {
                    info!(
                        run_id = %record.run_id,
                        seq = record.seq.0,
                        kind = kind.as_str(),
                        channel = channel.as_str(),
                        attempts,
                        "notification delivered"
                    )
                }
                Some(error) => {
                    warn!(
                        run_id = %record.run_id,
                        seq = record.seq.0,
                        kind = kind.as_str(),
                        channel = channel.as_str(),
                        attempts,
                        %error,
                        "notification failed"
                    )
                }
            }
            if let Err(error) = book.record(&delivery) {
                warn!(%error, "cannot record a delivery");
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use loop_core::event::{
        AgentWaiting, ExitReason, FailureCause, MergeFinished, RunCanceled, RunCompleted,
        RunFailed, RunStarted,
    };

    use super::*;

    fn record(seq: u64) -> EventRecord {
        EventRecord {
            seq: Seq(seq),
            run_id: RunId::from_uuid(uuid::Uuid::nil()),
            version: loop_core::Version(seq),
            ts_ms: 0,
            schema: loop_core::event::SCHEMA,
            event: Event::from(RunStarted {}),
        }
    }

    #[test]
    fn heard_records_stand_for_the_log_only_when_none_is_missing() {
        let seqs = |page: Option<Vec<EventRecord>>| {
            page.map(|page| page.iter().map(|r| r.seq.0).collect::<Vec<_>>())
        };
        // (cursor, seqs heard, the page they stand for)
        type Case = (u64, &'static [u64], Option<Vec<u64>>);
        let table: [Case; 6] = [
            (4, &[5], Some(vec![5])),
            (4, &[6, 5, 7], Some(vec![5, 6, 7])),
            (4, &[3, 4, 5], Some(vec![5])),
            (4, &[4], Some(vec![])),
            (4, &[6, 7], None),
            (4, &[], None),
        ];
        for (cursor, heard, expected) in table {
            let records = heard.iter().map(|seq| record(*seq)).collect();
            assert_eq!(
                seqs(next_after(Seq(cursor), records)),
                expected,
                "{cursor} {heard:?}"
            );
        }
    }

    #[test]
    fn notable_events_and_their_kinds() {
        let failed = |reason: &str| {
            Event::from(RunFailed {
                exit_reason: ExitReason::Failed,
                reason: reason.to_owned(),
                cause: None,
            })
        };
        let merge = |conflict: Option<&str>| {
            Event::from(MergeFinished {
                strategy: "squash".to_owned(),
                commit: None,
                conflict: conflict.map(str::to_owned),
            })
        };
        let table = [
            (
                Event::from(RunCompleted {
                    exit_reason: ExitReason::CompletePlan,
                    completed_iteration: 2,
                }),
                Some(Kind::RunCompleted),
            ),
            (failed("claude_failed: overloaded"), Some(Kind::RunFailed)),
            (
                failed("watchdog: stalled after 2 prompt rewrites"),
                Some(Kind::WatchdogGaveUp),
            ),
            (
                Event::from(RunFailed {
                    exit_reason: ExitReason::Failed,
                    reason: "the loop stalled".to_owned(),
                    cause: Some(FailureCause::Watchdog {
                        signals: vec![loop_core::event::Signal::Stalled],
                        rewrites: 2,
                    }),
                }),
                Some(Kind::WatchdogGaveUp),
            ),
            (
                Event::from(RunCanceled { reason: None }),
                Some(Kind::RunCanceled),
            ),
            (
                Event::from(AgentWaiting {
                    step_id: Some(loop_core::StepId::from_parts(1, [1; 10])),
                    until_ms: 1,
                    reason: "limit".to_owned(),
                    paid: Default::default(),
                    account: None,
                    window: None,
                    pool_wait: None,
                }),
                Some(Kind::UsageLimitWait),
            ),
            (
                Event::from(AgentWaiting {
                    step_id: None,
                    until_ms: 1,
                    reason: "account budget".to_owned(),
                    paid: Default::default(),
                    account: None,
                    window: None,
                    pool_wait: None,
                }),
                Some(Kind::AccountBudgetWait),
            ),
            (merge(Some("src/lib.rs")), Some(Kind::MergeConflict)),
            (merge(None), None),
            (Event::from(RunStarted {}), None),
        ];
        for (event, kind) in table {
            assert_eq!(kind_of(&event), kind, "{:?}", event.event_type());
        }
    }
}
