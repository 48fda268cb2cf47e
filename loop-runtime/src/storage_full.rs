//! Waiting out a full disk under a file a run writes, as the log's appends already do.
//!
//! A step's log that could not be written once the disk filled failed the run
//! (`iter-01-impl.log: No space left on device`), while `specs/daemon.md` says a full disk is
//! waited out. Now the writer of a step's output keeps what it could not write
//! ([`crate::step_output`]), and the step's end waits here until the file takes it: the run
//! is held, and says so in its view (`waiting: {code: "storage_full"}`) until space is back.
//! Only a full disk or quota (`ENOSPC`, `EDQUOT`) waits; any other error fails as before.

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;
use std::time::Duration;

use loop_core::RunId;
use tokio_util::sync::CancellationToken;

/// How often a held write is tried again.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// Whether `error` is the disk (or the user's quota) being full.
pub(crate) fn is_full(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(code) if code == libc::ENOSPC || code == libc::EDQUOT)
}

/// What a held run waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) since_ms: i64,
    /// The file, as the run directory names it.
    pub(crate) file: String,
    pub(crate) reason: String,
}

/// The runs held by a full disk now (in memory: the log may be on the same full disk).
#[derive(Debug, Default)]
pub(crate) struct StorageWaits {
    held: Mutex<HashMap<RunId, Held>>,
}

impl StorageWaits {
    pub(crate) fn held(&self, run_id: RunId) -> Option<Held> {
        self.lock().get(&run_id).cloned()
    }

    /// Tries `write` until it succeeds, fails for another reason than a full disk, or `cancel`
    /// (then the last error); the run shows `storage_full` between the first full-disk error
    /// and the end.
    pub(crate) async fn patiently<T>(
        &self,
        run_id: RunId,
        file: &str,
        now_ms: impl Fn() -> i64,
        cancel: &CancellationToken,
        mut write: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        let result = loop {
            match write() {
                Err(error) if is_full(&error) => {
                    let first = self
                        .lock()
                        .insert(
                            run_id,
                            Held {
                                since_ms: now_ms(),
                                file: file.to_owned(),
                                reason: error.to_string(),
                            },
                        )
                        .is_none();
                    if first {
                        tracing::warn!(%run_id, file, %error, "the run waits for space to write its file");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_EVERY) => {}
                        () = cancel.cancelled() => break Err(error),
                    }
                }
                other => break other,
            }
        };
        if self.lock().remove(&run_id).is_some() && result.is_ok() {
            tracing::info!(%run_id, file, "space is back: the run goes on");
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_disk_is_waited_out_and_shown_meanwhile_any_other_error_is_not() {
        let waits = std::sync::Arc::new(StorageWaits::default());
        let run: RunId = "01a21350-1f27-75a5-bc3b-0076ab9d10be".parse().unwrap();
        let cancel = CancellationToken::new();
        let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let task = {
            let (waits, cancel, attempts) = (waits.clone(), cancel.clone(), attempts.clone());
            tokio::spawn(async move {
                waits
                    .patiently(
                        run,
                        "iter-01-impl.log",
                        || 7,
                        &cancel,
                        || match attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                            0 | 1 => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
                            _ => Ok(42),
                        },
                    )
                    .await
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while waits.held(run).is_none() && !task.is_finished() {
            assert!(std::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let held = waits.held(run).expect("held while the disk is full");
        assert_eq!(held.file, "iter-01-impl.log");
        assert_eq!(held.since_ms, 7);
        assert_eq!(task.await.unwrap().unwrap(), 42);
        assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert!(waits.held(run).is_none(), "released once written");

        let other = waits
            .patiently(
                run,
                "x",
                || 0,
                &cancel,
                || -> io::Result<()> { Err(io::Error::from_raw_os_error(libc::EACCES)) },
            )
            .await;
        assert_eq!(other.unwrap_err().raw_os_error(), Some(libc::EACCES));
        cancel.cancel();
        let canceled = waits
            .patiently(
                run,
                "x",
                || 0,
                &cancel,
                || -> io::Result<()> { Err(io::Error::from_raw_os_error(libc::EDQUOT)) },
            )
            .await;
        assert_eq!(canceled.unwrap_err().raw_os_error(), Some(libc::EDQUOT));
        assert!(waits.held(run).is_none());
    }
}
