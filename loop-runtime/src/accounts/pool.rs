//! The pool's side of the account owner: the one decision before a pool run's call with what
//! this node holds in memory, what a run's view says holds it, and the account a postmortem's
//! analyses go to.

use loop_core::RunId;
use loop_core::account::{Gate, Hold, Turn};
use loop_core::config::RunConfig;

use super::{Accounts, PROBE_PATIENCE};

impl Accounts {
    /// The decision before a call of a run with an account pool
    /// ([`loop_core::account::before_call`]), with what this node holds in memory: the probes
    /// it chose, and `held`, limits just met and not yet in the log. A call that probes an
    /// account after its reset is remembered as its probe.
    pub(crate) fn decide(
        &self,
        ask: &loop_core::account::Ask<'_>,
        held: Option<(&str, i64)>,
    ) -> loop_core::account::Decision {
        use loop_core::account::{Decision, Local};
        let mut book = self.lock();
        let mut local = Local::default();
        if let Some((account, until)) = held {
            local.held.insert(account.to_owned(), until);
        }
        let now = ask.now_ms;
        let patience = PROBE_PATIENCE.as_millis() as i64;
        book.probes.retain(|_, (_, since)| now - *since <= patience);
        for (account, (run, _)) in &book.probes {
            local.probes.insert(account.clone(), *run);
        }
        let decision = loop_core::account::before_call(&book.book, &local, ask);
        if let Decision::Call {
            account,
            probe: true,
        } = &decision
        {
            book.probes.insert(account.clone(), (ask.run_id, now));
            tracing::info!(run_id = %ask.run_id, %account, "probing the account after its usage limit's reset");
        }
        decision
    }

    /// Whether the run names a pool of accounts.
    pub(crate) fn pooled(&self, run_id: RunId) -> bool {
        self.lock().book.pooled(run_id)
    }

    /// Records what a pool run's driver waits on before its call (`None`: it no longer waits).
    pub(crate) fn set_pool_wait(&self, run_id: RunId, hold: Option<Hold>) {
        let mut book = self.lock();
        match hold {
            Some(hold) => book.pool_waits.insert(run_id, hold),
            None => book.pool_waits.remove(&run_id),
        };
    }

    /// Why `run_id`, running, may make no agent call now, as the account owner sees it: for a
    /// pool run, the hold its driver's last decision waits on (the earliest reset of the pool,
    /// not its first account's); for a run of one account, its limit or the probe after it,
    /// then (`between_steps`) its reserve, then its turn. The text people see is the hold's.
    pub(crate) fn explain(&self, run_id: RunId, now_ms: i64, between_steps: bool) -> Option<Hold> {
        {
            let book = self.lock();
            if book.book.pooled(run_id) {
                return book.pool_waits.get(&run_id).cloned();
            }
        }
        match self.hold(run_id, now_ms) {
            Some((account, said, Gate::WaitUntil(until_ms))) => {
                return Some(Hold::Limited {
                    account,
                    until_ms,
                    window: None,
                    by: None,
                    said,
                });
            }
            Some((account, _, Gate::WaitForProbe(by))) => {
                return Some(Hold::Probing { account, by });
            }
            Some(_) => return None,
            None if between_steps => {
                if let Some((account, reserve)) = self.in_reserve(run_id, now_ms) {
                    return Some(Hold::Reserve {
                        account,
                        window: reserve.window,
                        used: reserve.utilization,
                        expected: 0.0,
                        reserve_pct: self.lock().book.reserve_of(run_id),
                        until_ms: reserve.until_ms,
                    });
                }
            }
            None => {}
        }
        match self.turn_of(run_id)? {
            (
                account,
                Turn::Wait {
                    in_flight,
                    cap,
                    ahead,
                },
            ) => Some(Hold::Turn {
                account,
                in_flight,
                cap,
                ahead,
            }),
            (_, Turn::Go) => None,
        }
    }

    /// The account an agent call outside the run's loop (a postmortem analysis of `model`)
    /// goes to, or the hold that keeps it from calling: the one decision as for a further call
    /// of a step (`CallKind::Again`: limits, probes and budgets; no reserve, no turn). It takes
    /// no probe: an analysis is no call of the run's loop, and the runs probe as before.
    pub(crate) fn for_analysis(
        &self,
        run_id: RunId,
        config: &RunConfig,
        model: &str,
        now_ms: i64,
    ) -> Result<String, Hold> {
        use loop_core::account::{Ask, CallKind, Decision, Local};
        let book = self.lock();
        let mut local = Local::default();
        for (account, (run, _)) in &book.probes {
            local.probes.insert(account.clone(), *run);
        }
        let ask = Ask {
            run_id,
            config,
            kind: CallKind::Again,
            model,
            previous: None,
            now_ms,
        };
        match loop_core::account::before_call(&book.book, &local, &ask) {
            Decision::Call { account, .. } => Ok(account),
            Decision::Wait { hold, .. } | Decision::Fail { hold } => Err(hold),
        }
    }
}
