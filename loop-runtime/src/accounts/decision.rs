//! The decision before every agent call, with what this node holds in memory beside the log:
//! the probes it chose, the runs waiting for a turn of a capped account and the turns given
//! whose call the log does not show yet; what a run's view says holds it; and the account a
//! call outside the run's loop (a naming call, a postmortem's analyses) goes to.

use loop_core::RunId;
use loop_core::account::{Ask, CallKind, Decision, Hold, Local, Waiter, before_call};
use loop_core::config::RunConfig;

use super::{Accounts, Book, PROBE_PATIENCE, TURN_PATIENCE};

impl Accounts {
    /// The decision before a call ([`loop_core::account::before_call`]) of any run, one
    /// account or a pool, with what this node holds in memory: the probes it chose, its runs
    /// waiting for a turn, the turns it gave, and `held`, a limit just met and not yet in the
    /// log. A call that starts an iteration or a review takes its place in the line of each
    /// capped account of its pool; once it may call, it leaves the lines and holds a turn of
    /// the account it goes to until the log shows its call. A call that probes an account
    /// after its reset is remembered as its probe.
    ///
    /// The caller waits for [`Accounts::ready`] first: before the log is folded the book may
    /// not know a limit met before a restart.
    pub(crate) fn decide(&self, ask: &Ask<'_>, held: Option<(&str, i64)>) -> Decision {
        let mut book = self.lock();
        let now = ask.now_ms;
        let run = ask.run_id;
        let patience = PROBE_PATIENCE.as_millis() as i64;
        book.probes.retain(|_, (_, since)| now - *since <= patience);
        // A turn given to a run that then did not call (it was stopped in between) is void
        // after a while.
        let patience = TURN_PATIENCE.as_millis() as i64;
        book.granted.retain(|_, (_, at)| now - *at < patience);
        if ask.kind != CallKind::Again {
            let capped: Vec<String> = book
                .book
                .pool_of(run)
                .iter()
                .filter(|account| book.book.concurrency_of(account).is_some())
                .cloned()
                .collect();
            for account in capped {
                if !book
                    .waiting
                    .get(&account)
                    .is_some_and(|line| line.iter().any(|w| w.run_id == run))
                {
                    let arrived = self
                        .arrivals
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    book.waiting.entry(account).or_default().push(Waiter {
                        run_id: run,
                        arrived,
                    });
                }
            }
        }
        let mut local = local_of(&book, run);
        if let Some((account, until)) = held {
            local.held.insert(account.to_owned(), until);
        }
        let decision = before_call(&book.book, &local, ask);
        if let Decision::Call { account, probe } = &decision {
            if *probe {
                book.probes.insert(account.clone(), (run, now));
                tracing::info!(run_id = %run, %account, "probing the account after its usage limit's reset");
            }
            if ask.kind != CallKind::Again && book.book.concurrency_of(account).is_some() {
                book.granted.insert(run, (account.clone(), now));
            }
            let left = leave_lines(&mut book, run);
            drop(book);
            if left {
                // The others' places in line moved.
                self.changed.notify_waiters();
            }
        }
        decision
    }

    /// The run no longer waits before a call (it was stopped, or it fails): it leaves the
    /// lines and its view no longer says it waits.
    pub(crate) fn stop_waiting(&self, run_id: RunId) {
        let mut book = self.lock();
        book.waits.remove(&run_id);
        let left = leave_lines(&mut book, run_id);
        drop(book);
        if left {
            self.changed.notify_waiters();
        }
    }

    /// Whether the run names a pool of accounts.
    pub(crate) fn pooled(&self, run_id: RunId) -> bool {
        self.lock().book.pooled(run_id)
    }

    /// Records what a run's driver waits on before its call (`None`: it no longer waits).
    pub(crate) fn set_wait(&self, run_id: RunId, hold: Option<Hold>) {
        let mut book = self.lock();
        match hold {
            Some(hold) => book.waits.insert(run_id, hold),
            None => book.waits.remove(&run_id),
        };
    }

    /// Why `run_id`, driven on this node, may make no agent call now: the hold its driver's
    /// last decision waits on (for a pool, the earliest reset of the pool, not its first
    /// account's). The text people see is the hold's.
    pub(crate) fn explain(&self, run_id: RunId) -> Option<Hold> {
        self.lock().waits.get(&run_id).cloned()
    }

    /// The account an agent call outside the run's loop (a naming call, a postmortem analysis
    /// of `model`) goes to, or the hold that keeps it from calling: the one decision as for a
    /// further call of a step (`CallKind::Again`: limits, probes and budgets; no reserve, no
    /// turn). It takes no probe: such a call is no call of the run's loop, and the runs probe
    /// as before. The caller waits for [`Accounts::ready`] first.
    pub(crate) fn for_extra_call(
        &self,
        run_id: RunId,
        config: &RunConfig,
        model: &str,
        now_ms: i64,
    ) -> Result<String, Hold> {
        let book = self.lock();
        let local = local_of(&book, run_id);
        let ask = Ask {
            run_id,
            config,
            kind: CallKind::Again,
            model,
            previous: None,
            now_ms,
        };
        match before_call(&book.book, &local, &ask) {
            Decision::Call { account, .. } => Ok(account),
            Decision::Wait { hold, .. } | Decision::Fail { hold } => Err(hold),
        }
    }
}

/// What this node holds in memory, as the decision for `run` reads it: the probes, the lines,
/// and the turns given to the other runs (its own, from a decision a moment ago, is not
/// counted against it).
fn local_of(book: &Book, run: RunId) -> Local {
    let mut local = Local::default();
    for (account, (by, _)) in &book.probes {
        local.probes.insert(account.clone(), *by);
    }
    for (account, line) in &book.waiting {
        local.waiting.insert(account.clone(), line.clone());
    }
    for (by, (account, _)) in &book.granted {
        if *by != run {
            *local.granted.entry(account.clone()).or_default() += 1;
        }
    }
    local
}

/// Takes `run` out of every line; whether it was in one.
fn leave_lines(book: &mut Book, run: RunId) -> bool {
    let mut left = false;
    for line in book.waiting.values_mut() {
        let before = line.len();
        line.retain(|w| w.run_id != run);
        left |= line.len() != before;
    }
    left
}
