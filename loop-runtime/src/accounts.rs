//! Accounts across runs: one usage limit holds every run of the account, and one run probes
//! after the reset before the others call again (see [`loop_core::account`]).
//!
//! The book is a fold of the log: as an observer of the journal it applies what is appended at
//! once (so a run that checks right after another met a limit sees it), and a follower applies
//! the rest — the log
//! from its start when the runtime opens it, then other nodes' appends in a cluster. Which run
//! probes is the one thing kept only in memory: after a restart, the first run to ask probes.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use loop_core::account::{AccountBook, Gate, Hold, Turn, Waiter, gate, turn};
use loop_core::config::{AgentName, RunConfig};
use loop_core::{EventRecord, RunId};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::journal::{Observer, Origin};

mod pool;

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
    /// Per pool run waiting before a call: the hold its driver's last decision waits on.
    pool_waits: std::collections::HashMap<RunId, Hold>,
}

impl Book {
    /// Turns given on `account` whose call the log does not show yet.
    fn granted_on(&self, account: &str) -> u32 {
        let count = self
            .granted
            .values()
            .filter(|(of, _)| of == account)
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }
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

    /// Whether `run_id` starting a new iteration now would eat into its account's reserve.
    pub(crate) fn in_reserve(
        &self,
        run_id: RunId,
        now_ms: i64,
    ) -> Option<(String, loop_core::account::InReserve)> {
        let book = self.lock();
        let account = book.book.account_of(run_id)?;
        let state = book.book.state(account)?;
        let pct = book.book.reserve_of(run_id);
        loop_core::account::in_reserve(state, pct, now_ms).map(|r| (account.to_owned(), r))
    }

    /// The cap of `budget` that `run_id`'s account has reached at `now_ms`, with the account.
    pub(crate) fn over_budget(
        &self,
        run_id: RunId,
        budget: loop_core::account::Budget,
        now_ms: i64,
    ) -> Option<(String, loop_core::account::OverBudget)> {
        let book = self.lock();
        let account = book.book.account_of(run_id)?;
        let state = book.book.state(account)?;
        loop_core::account::over_budget(state, budget, now_ms)
            .map(|over| (account.to_owned(), over))
    }

    /// Why `run_id` may not call its agent now, if it may not: its account's limit and until
    /// when, or the run probing it.
    pub(crate) fn hold(&self, run_id: RunId, now_ms: i64) -> Option<(String, String, Gate)> {
        let book = self.lock();
        let account = book.book.account_of(run_id)?;
        let state = book.book.state(account)?;
        let probe = book.probes.get(account).map(|(run, _)| *run).or_else(|| {
            let until = state.limited_until_ms?;
            book.book.probing(account, until)
        });
        let reason = state.limit_reason.clone().unwrap_or_default();
        match gate(state, probe, run_id, now_ms) {
            Gate::Go | Gate::Probe => None,
            held => Some((account.to_owned(), reason, held)),
        }
    }

    /// Waits until `run_id` may start an agent call: not before its account's reset, and after
    /// it only once the run probing the account has found it serving. `false` when cancelled.
    pub(crate) async fn clear_to_call(
        &self,
        run_id: RunId,
        clock: &dyn Clock,
        cancel: &CancellationToken,
    ) -> bool {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !self.ready.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::select! {
                    () = &mut changed => {}
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    () = cancel.cancelled() => return false,
                }
                continue;
            }
            let now = clock.now_ms();
            let decision = {
                let mut book = self.lock();
                let Some(account) = book.book.account_of(run_id).map(str::to_owned) else {
                    return true;
                };
                let Some(state) = book.book.state(&account).cloned() else {
                    return true;
                };
                // A probe that said nothing for too long is given up.
                if book
                    .probes
                    .get(&account)
                    .is_some_and(|(_, since)| now - since > PROBE_PATIENCE.as_millis() as i64)
                {
                    book.probes.remove(&account);
                }
                // The probe this node chose, else one the log shows in flight since the
                // reset (another node's, in a cluster): one probe, not one per node.
                let probe = book.probes.get(&account).map(|(run, _)| *run).or_else(|| {
                    let until = state.limited_until_ms?;
                    book.book.probing(&account, until)
                });
                let decision = gate(&state, probe, run_id, now);
                if decision == Gate::Probe {
                    book.probes.insert(account.clone(), (run_id, now));
                    tracing::info!(%run_id, %account, "probing the account after its usage limit's reset");
                }
                decision
            };
            match decision {
                Gate::Go | Gate::Probe => return true,
                Gate::WaitUntil(until) => {
                    tokio::select! {
                        () = clock.sleep_until(until) => {}
                        () = &mut changed => {}
                        () = cancel.cancelled() => return false,
                    }
                }
                Gate::WaitForProbe(_) => {
                    tokio::select! {
                        () = &mut changed => {}
                        () = tokio::time::sleep(Duration::from_secs(5)) => {}
                        () = cancel.cancelled() => return false,
                    }
                }
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

    /// Waits for `run_id`'s turn to call its agent when its account admits only so many calls
    /// at once (`account_concurrency`): the runs waiting take turns by iteration and priority
    /// ([`loop_core::account::turn`]). At once without a cap. `false` when cancelled.
    pub(crate) async fn take_turn(
        &self,
        run_id: RunId,
        clock: &dyn Clock,
        cancel: &CancellationToken,
    ) -> bool {
        let arrived = self
            .arrivals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let going = loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let decision = {
                let mut book = self.lock();
                let Some(account) = book.book.account_of(run_id).map(str::to_owned) else {
                    return true;
                };
                let now = clock.now_ms();
                let patience = TURN_PATIENCE.as_millis() as i64;
                book.granted.retain(|_, (_, at)| now - *at < patience);
                let line = book.waiting.entry(account.clone()).or_default();
                if !line.iter().any(|w| w.run_id == run_id) {
                    line.push(Waiter { run_id, arrived });
                }
                let line = book.waiting[&account].clone();
                let granted = book.granted_on(&account);
                let decision = turn(&book.book, &account, &line, granted, run_id);
                if decision == Turn::Go {
                    book.granted.insert(run_id, (account.clone(), now));
                }
                decision
            };
            if decision == Turn::Go {
                break true;
            }
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
                () = cancel.cancelled() => break false,
            }
        };
        let mut book = self.lock();
        for line in book.waiting.values_mut() {
            line.retain(|w| w.run_id != run_id);
        }
        drop(book);
        // The others' places in line moved.
        self.changed.notify_waiters();
        going
    }

    /// Frees the turn `run_id` was given and will not use now.
    pub(crate) fn give_back_turn(&self, run_id: RunId) {
        self.lock().granted.remove(&run_id);
        self.changed.notify_waiters();
    }

    /// Why `run_id` waits for a turn of its account's calls, if it does.
    pub(crate) fn turn_of(&self, run_id: RunId) -> Option<(String, Turn)> {
        let book = self.lock();
        let (account, line) = book
            .waiting
            .iter()
            .find(|(_, line)| line.iter().any(|w| w.run_id == run_id))?;
        let decision = turn(&book.book, account, line, book.granted_on(account), run_id);
        Some((account.clone(), decision))
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
