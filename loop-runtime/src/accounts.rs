//! Accounts across runs: one usage limit holds every run of the account, and one run probes
//! after the reset before the others call again (see [`loop_core::account`]). Every agent
//! call of every run (one account or a pool; a step's first call, its retries, a naming call,
//! a postmortem's analyses) is cleared by the one decision, [`loop_core::account::before_call`]
//! (`accounts/decision.rs`).
//!
//! The book is a fold of the log: as an observer of the journal it applies what is appended at
//! once (so a run that checks right after another met a limit sees it), and a follower applies
//! the rest — the log
//! from its start when the runtime opens it, then other nodes' appends in a cluster. Which run
//! probes is the one thing kept only in memory: after a restart, the first run to ask probes.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use loop_core::account::{AccountBook, Hold, Waiter};
use loop_core::config::{AgentName, RunConfig};
use loop_core::{EventRecord, RunId};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::journal::{Observer, Origin};

mod decision;

/// How long the others wait for a probe that says nothing (its run paused or died mid-call)
/// before one of them probes instead.
const PROBE_PATIENCE: Duration = Duration::from_secs(600);

/// How long a turn given to a run holds its place before the log shows its call: a run that
/// was given one and then did not call (it was stopped in between) frees it after this.
const TURN_PATIENCE: Duration = Duration::from_secs(60);

/// The account a run's calls count against when its configuration names none: the agent and
/// where its credentials live (an API key by a fingerprint, never itself).
pub(crate) fn derive(config: &RunConfig, env: impl Fn(&str) -> Option<String>) -> String {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let home = || set("HOME").unwrap_or_default();
    let key = |name: &str| {
        set(name).map(|key| {
            format!(
                "key:{}",
                &crate::artifacts::sha256_hex(key.as_bytes())[..12]
            )
        })
    };
    match &config.agent {
        AgentName::Claude => {
            let place = set("CLAUDE_CONFIG_DIR")
                .or_else(|| key("ANTHROPIC_API_KEY"))
                .unwrap_or_else(|| format!("{}/.claude", home()));
            format!("claude:{place}")
        }
        AgentName::Codex => {
            let place = set("CODEX_HOME")
                .or_else(|| key("OPENAI_API_KEY"))
                .or_else(|| key("CODEX_API_KEY"))
                .unwrap_or_else(|| format!("{}/.codex", home()));
            format!("codex:{place}")
        }
        // A command agent's credentials are its own business: the same command line, the same
        // account (`sh a.sh` and `sh b.sh` are two).
        AgentName::Command => format!(
            "command:{}",
            config.agent_cmd.as_deref().unwrap_or_default().trim()
        ),
        AgentName::Other(name) => name.clone(),
    }
}

/// An account the daemon declares (`loopd --accounts`): its name, its agent, and the
/// environment its calls run with (where its credentials are: `CLAUDE_CONFIG_DIR`,
/// `CODEX_HOME`, an API key's variable). Kept by the runtime, never in a run's frozen config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredAccount {
    pub name: String,
    pub agent: String,
    pub env: std::collections::BTreeMap<String, String>,
}

#[derive(Default)]
struct Book {
    book: AccountBook,
    /// Per account: the run probing it since the reset, and since when (runtime clock).
    probes: std::collections::HashMap<String, (RunId, i64)>,
    /// Per account: this runtime's runs waiting for a turn of its calls (fair share).
    waiting: std::collections::HashMap<String, Vec<Waiter>>,
    /// Runs given a turn whose call the log does not show yet, with their account and when.
    granted: std::collections::HashMap<RunId, (String, i64)>,
    /// Per run waiting before a call: the hold its driver's last decision waits on.
    waits: std::collections::HashMap<RunId, Hold>,
}

/// The accounts of the runs this runtime knows.
#[derive(Default)]
pub(crate) struct Accounts {
    book: Mutex<Book>,
    changed: Notify,
    /// Set once the log as it was when the runtime opened it is applied: until then no run is
    /// cleared to call (a limit met before a restart still holds after it).
    ready: std::sync::atomic::AtomicBool,
    /// Numbers the runs coming to wait for a turn, in order.
    arrivals: std::sync::atomic::AtomicU64,
    /// The accounts declared to the runtime, by name.
    declared: Mutex<std::collections::BTreeMap<String, DeclaredAccount>>,
}

impl Observer for Accounts {
    fn observe(&self, record: &EventRecord, _: Origin) {
        self.apply(record);
    }
}

impl Accounts {
    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a record of the log (twice is harmless).
    pub(crate) fn apply(&self, record: &EventRecord) {
        let mut book = self.lock();
        book.book.apply(record);
        // A turn given is in the log once the run's call is, or void once the run stops.
        if book.book.in_call(record.run_id)
            || matches!(
                record.event,
                loop_core::Event::RunPaused(_)
                    | loop_core::Event::RunFailed(_)
                    | loop_core::Event::RunCanceled(_)
                    | loop_core::Event::RunCompleted(_)
            )
        {
            book.granted.remove(&record.run_id);
        }
        // A probe is done once its account serves again, or its run's call was answered (it
        // finished, met a limit, was retried elsewhere) or the run stopped.
        let answered = matches!(
            record.event,
            loop_core::Event::AgentWaiting(_)
                | loop_core::Event::AgentRetry(_)
                | loop_core::Event::StepFinished(_)
                | loop_core::Event::RunPaused(_)
                | loop_core::Event::RunFailed(_)
                | loop_core::Event::RunCanceled(_)
                | loop_core::Event::RunCompleted(_)
        );
        let Book {
            book: fold, probes, ..
        } = &mut *book;
        probes.retain(|account, (run, _)| {
            let serving = fold
                .state(account)
                .is_some_and(|s| s.limited_until_ms.is_none() && s.model_limits.is_empty());
            !(serving || (*run == record.run_id && answered))
        });
        drop(book);
        self.changed.notify_waiters();
    }

    /// Applies the log from its start, then every record the runtime learns of, until
    /// `shutdown`; ready once it has applied the log up to `caught_up_at` (the log's last seq,
    /// read when the store answers).
    pub(crate) async fn follow(
        self: std::sync::Arc<Self>,
        mut stream: crate::stream::EventStream,
        caught_up_at: impl Future<Output = Result<loop_core::Seq, crate::RuntimeError>>,
        shutdown: CancellationToken,
    ) {
        let caught_up_at = tokio::select! {
            read = caught_up_at => match read {
                Ok(seq) => seq,
                // Only a stop ends the wait for the store.
                Err(_) => return,
            },
            () = shutdown.cancelled() => return,
        };
        if caught_up_at == loop_core::Seq(0) {
            self.set_ready();
        }
        loop {
            let next = tokio::select! {
                next = stream.next() => next,
                () = shutdown.cancelled() => return,
            };
            match next {
                Some(Ok(record)) => {
                    let seq = record.seq;
                    self.apply(&record);
                    if seq >= caught_up_at {
                        self.set_ready();
                    }
                }
                // An event that does not decode is not an account's: go on after it. (The
                // streams that meet it report it; this fold says so only at debug level.)
                Some(Err(error)) => tracing::debug!(%error, "accounts: skipped an event"),
                None => return,
            }
        }
    }

    fn set_ready(&self) {
        if !self.ready.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.changed.notify_waiters();
        }
    }

    /// The forecasts of the runs that have not ended, at `now_ms`.
    pub(crate) fn forecasts(&self, now_ms: i64) -> Vec<loop_core::account::RunForecast> {
        loop_core::account::forecasts(&self.lock().book, now_ms)
    }

    /// Every account with its state and its runs.
    pub(crate) fn snapshot(&self) -> Vec<crate::AccountSummary> {
        let declared = self.declared();
        let book = self.lock();
        // The declared accounts no run has used yet are listed too, by name.
        let unused: Vec<crate::AccountSummary> = declared
            .iter()
            .filter(|account| book.book.state(&account.name).is_none())
            .map(|account| crate::AccountSummary {
                account: account.name.clone(),
                state: loop_core::account::AccountState::default(),
                runs: Vec::new(),
                probe: None,
                concurrency: None,
                calls_in_flight: 0,
                turn_queue: Vec::new(),
                declared_agent: Some(account.agent.clone()),
            })
            .collect();
        let mut all: Vec<crate::AccountSummary> = book
            .book
            .accounts()
            .map(|(name, state)| {
                let mut runs: Vec<RunId> = book.book.runs_of(name).collect();
                runs.sort();
                let mut turn_queue: Vec<Waiter> =
                    book.waiting.get(name).cloned().unwrap_or_default();
                turn_queue.sort_by_key(|w| w.arrived);
                crate::AccountSummary {
                    account: name.to_owned(),
                    state: state.clone(),
                    runs,
                    probe: book.probes.get(name).map(|(run, _)| *run),
                    concurrency: book.book.concurrency_of(name),
                    calls_in_flight: book.book.calls_in_flight(name),
                    turn_queue: turn_queue.into_iter().map(|w| w.run_id).collect(),
                    declared_agent: declared
                        .iter()
                        .find(|account| account.name == name)
                        .map(|account| account.agent.clone()),
                }
            })
            .collect();
        all.extend(unused);
        all.sort_by(|a, b| a.account.cmp(&b.account));
        all
    }

    /// Waits until the log as it was when the runtime opened it is folded: before that the
    /// book may not know a limit met before a restart, and no call is cleared. `false` when
    /// cancelled first.
    pub(crate) async fn ready(&self, cancel: &CancellationToken) -> bool {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.ready.load(std::sync::atomic::Ordering::SeqCst) {
                return true;
            }
            tokio::select! {
                () = &mut changed => {}
                // In case a notification is missed: the flag is read again.
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = cancel.cancelled() => return false,
            }
        }
    }
}

impl Accounts {
    /// Declares the accounts runs may name (their credentials stay here).
    pub(crate) fn declare(&self, accounts: Vec<DeclaredAccount>) {
        let mut declared = self.declared.lock().unwrap_or_else(|e| e.into_inner());
        for account in accounts {
            declared.insert(account.name.clone(), account);
        }
    }

    /// Whether a run's pool may be used here: once the daemon declares accounts, every
    /// account of a pool must be one of them, for the run's agent (a pool of names alone would
    /// run every call with the same credentials).
    pub(crate) fn check(&self, config: &RunConfig) -> Result<(), String> {
        let declared = self.declared.lock().unwrap_or_else(|e| e.into_inner());
        if declared.is_empty() {
            return Ok(());
        }
        for name in &config.account_pool {
            match declared.get(name) {
                None => {
                    let known: Vec<&str> = declared.keys().map(String::as_str).collect();
                    return Err(format!(
                        "account {name} is not declared (declared: {})",
                        known.join(", ")
                    ));
                }
                Some(account) if account.agent != config.agent.as_str() => {
                    return Err(format!(
                        "account {name} is a {} account and the run's agent is {}",
                        account.agent, config.agent
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The accounts declared, by name.
    pub(crate) fn declared(&self) -> Vec<DeclaredAccount> {
        let declared = self.declared.lock().unwrap_or_else(|e| e.into_inner());
        declared.values().cloned().collect()
    }

    /// The environment a call on `account` runs with beside the run's own: the declared
    /// account's variables (none for an account not declared).
    pub(crate) fn env_of(&self, account: &str) -> Vec<(String, String)> {
        let declared = self.declared.lock().unwrap_or_else(|e| e.into_inner());
        declared.get(account).map_or_else(Vec::new, |account| {
            account
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    /// Resolves once the book changes (a record applied) after it was enabled: enable it
    /// before reading the book, so a change in between is not missed.
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loop_core::config::Config;

    fn config(pairs: &[(&str, &str)]) -> RunConfig {
        let mut layer = loop_core::config::Layer::new();
        for (key, value) in pairs {
            layer.insert((*key).to_owned(), (*value).to_owned());
        }
        Config::resolve([&layer]).typed()
    }

    /// Until the log as it was at start is folded, no call is cleared: a restart's first
    /// decisions wait for the book to know the limits met before it.
    #[tokio::test]
    async fn no_call_is_cleared_before_the_log_is_read() {
        let accounts = std::sync::Arc::new(Accounts::default());
        let cancel = CancellationToken::new();
        let waiting = tokio::spawn({
            let accounts = std::sync::Arc::clone(&accounts);
            let cancel = cancel.clone();
            async move { accounts.ready(&cancel).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "cleared before the log was read");
        accounts.set_ready();
        assert!(waiting.await.expect("the wait"));
        // Stopped while it waits: not cleared.
        let unread = Accounts::default();
        cancel.cancel();
        assert!(!unread.ready(&cancel).await);
    }

    #[test]
    fn an_account_is_the_agent_and_where_its_credentials_are_never_a_key_itself() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let claude = config(&[("agent", "claude")]);
        assert_eq!(
            derive(&claude, env(&[("HOME", "/home/a")])),
            "claude:/home/a/.claude"
        );
        assert_eq!(
            derive(
                &claude,
                env(&[("HOME", "/home/a"), ("CLAUDE_CONFIG_DIR", "/srv/c")])
            ),
            "claude:/srv/c"
        );
        let keyed = derive(&claude, env(&[("ANTHROPIC_API_KEY", "sk-ant-secret")]));
        assert!(
            keyed.starts_with("claude:key:") && !keyed.contains("secret"),
            "{keyed}"
        );
        let codex = config(&[("agent", "codex")]);
        assert_eq!(
            derive(&codex, env(&[("CODEX_HOME", "/srv/x")])),
            "codex:/srv/x"
        );
        let command = config(&[("agent", "command"), ("agent_cmd", "/bin/my-agent --fast")]);
        assert_eq!(derive(&command, env(&[])), "command:/bin/my-agent --fast");
    }
}
