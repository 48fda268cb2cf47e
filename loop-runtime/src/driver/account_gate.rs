//! Before an agent call: what the run's accounts allow (specs/runtime.md, "Accounts"). Every
//! call of every run — one account or a pool, a step's first call or a further one — waits
//! here for the one decision, [`loop_core::account::before_call`]: limits and the probe after
//! a reset, budgets, the reserve and pacing, turns, and which account of a pool.

use std::sync::Arc;

use loop_core::Command;
use loop_core::account::{CallKind, Decision, Hold};
use loop_core::config::BudgetAction;
use loop_core::event::{AgentWaiting, ExitReason, FailureCause};
use loop_core::progress::Next;

use super::{Driver, DriverEnd};
use crate::error::RuntimeError;

/// Where a call goes.
pub(super) enum CallAccount {
    /// To this account.
    Call(String),
    /// A wait was recorded that the loop waits out before it decides again (a one-account
    /// budget stop).
    Again,
    /// Nowhere: the run ends (failed, or stopped while it waited).
    End(DriverEnd),
}

/// What the account says of the call the loop is about to make.
pub(super) enum AccountGate {
    /// Make it.
    Go,
    /// Something changed while the run waited (a budget wait recorded): decide the next step
    /// again.
    Again,
    /// The run ends, or was stopped while it waited.
    End(DriverEnd),
}

impl Driver {
    /// Waits until the run's accounts let it make the call `next` asks for, and keeps the
    /// account cleared for the step's first call ([`Driver::cleared`]). Only agent calls are
    /// held.
    pub(super) async fn wait_for_account(
        &mut self,
        next: &Next,
    ) -> Result<AccountGate, RuntimeError> {
        self.cleared = None;
        let kind = match next {
            Next::Implement { .. } => CallKind::Iteration,
            Next::Review { .. } => CallKind::Review,
            _ => return Ok(AccountGate::Go),
        };
        Ok(match self.account_for(kind, None).await? {
            CallAccount::Call(account) => {
                self.cleared = Some(account);
                AccountGate::Go
            }
            CallAccount::Again => AccountGate::Again,
            CallAccount::End(end) => AccountGate::End(end),
        })
    }

    /// The account the next call of kind `kind` goes to, waiting as
    /// [`loop_core::account::before_call`] says until one may take it; `held` is a limit the
    /// call before met and the log does not show yet.
    ///
    /// A pool run whose every account is held records its wait (`AGENT_WAITING` with
    /// `pool_wait`, once per hold) when the hold ends at a known time. A run of one account
    /// that reached its budget, with `account_budget_action=wait`, records the account's stop
    /// (an `AGENT_WAITING` outside any step that holds every run of the account until the next
    /// day or month), as a limit met by a call is recorded by the call.
    pub(super) async fn account_for(
        &mut self,
        kind: CallKind,
        held: Option<(&str, i64)>,
    ) -> Result<CallAccount, RuntimeError> {
        let accounts = Arc::clone(&self.accounts);
        let clock = Arc::clone(&self.services.clock);
        // Until the log as it was at start is folded, the book may not know a limit met before
        // a restart: no call is cleared before.
        if !accounts.ready(&self.cancel).await {
            return Ok(CallAccount::End(DriverEnd::Stopped));
        }
        let phase = match kind {
            CallKind::Review => loop_core::event::Phase::Review,
            _ => loop_core::event::Phase::Implementation,
        };
        let pooled = !self.run.config.account_pool.is_empty();
        let mut said: Option<String> = None;
        let mut recorded: Option<Hold> = None;
        // What the run waits on is shown in its view while it waits, and no longer after,
        // however this returns.
        let _shown = WaitShown(Arc::clone(&accounts), self.run.run_id);
        loop {
            let changed = accounts.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let config = &self.run.config;
            let ask = loop_core::account::Ask {
                run_id: self.run.run_id,
                config,
                kind,
                model: config.model_for(phase),
                previous: None,
                now_ms: clock.now_ms(),
            };
            let held = held.filter(|(_, until)| ask.now_ms < *until);
            match accounts.decide(&ask, held) {
                Decision::Call { account, .. } => return Ok(CallAccount::Call(account)),
                Decision::Fail { hold } => {
                    let (exit_reason, cause) = match &hold {
                        Hold::OverBudget { over, .. } => (
                            ExitReason::BudgetExhausted,
                            FailureCause::Budget {
                                cost_usd: over.spent_usd,
                                max_usd: over.cap_usd,
                            },
                        ),
                        _ => (
                            self.run.retry_policy().fails_as,
                            FailureCause::Agent {
                                end: "usage_limit".to_owned(),
                            },
                        ),
                    };
                    let reason = if pooled {
                        format!("no account of the pool may take the call: {hold}")
                    } else {
                        hold.to_string()
                    };
                    let end = self.fail(exit_reason, reason, Some(cause)).await?;
                    return Ok(CallAccount::End(end));
                }
                Decision::Wait {
                    hold: Hold::OverBudget { account, over },
                    ..
                } if !pooled && self.run.config.account_budget_action == BudgetAction::Wait => {
                    let wait = AgentWaiting {
                        step_id: None,
                        until_ms: over.until_ms,
                        reason: over.reason(&account),
                        paid: Default::default(),
                        account: Some(account),
                        window: None,
                        pool_wait: None,
                    };
                    self.record(vec![Command::RecordWait(wait)]).await?;
                    // Between steps the loop waits it out and decides again; within a step
                    // the decision now sees the account held until then, and waits here.
                    if kind != CallKind::Again {
                        return Ok(CallAccount::Again);
                    }
                }
                Decision::Wait { until_ms, hold } => {
                    accounts.set_wait(self.run.run_id, Some(hold.clone()));
                    let text = hold.to_string();
                    if said.as_deref() != Some(text.as_str()) {
                        tracing::info!(run_id = %self.run.run_id, code = hold.code().as_str(), "{text}");
                        said = Some(text);
                    }
                    if pooled && recorded.as_ref() != Some(&hold) {
                        self.record_pool_wait(&hold).await?;
                        recorded = Some(hold);
                    }
                    // A wait with no time of its own (a probe's answer, a turn) is asked again
                    // when the book changes, or after a while in case nothing is recorded.
                    let until = until_ms.unwrap_or_else(|| clock.now_ms() + 5_000);
                    tokio::select! {
                        () = clock.sleep_until(until) => {}
                        () = &mut changed => {}
                        () = self.cancel.cancelled() => {
                            return Ok(CallAccount::End(DriverEnd::Stopped));
                        }
                    }
                }
            }
        }
    }

    /// Records that every account of the run's pool is held and the run waits for `hold`, the
    /// one that ends first, when it ends at a known time (a probe's answer or a turn comes
    /// within a call, and is shown in the run's view only).
    async fn record_pool_wait(&mut self, hold: &Hold) -> Result<(), RuntimeError> {
        let (Some(pool_wait), Some(until_ms)) = (hold.pool_wait(), hold.until_ms()) else {
            return Ok(());
        };
        // The limit this run's call just met, recorded by the call, says it already.
        if matches!(hold, Hold::Limited { by: Some(by), .. } if *by == self.run.run_id)
            && self.progress.waiting_until_ms == Some(until_ms)
        {
            return Ok(());
        }
        let window = match hold {
            Hold::Limited { window, .. } => window.clone(),
            Hold::Reserve { window, .. } => Some(window.clone()),
            _ => None,
        };
        let wait = AgentWaiting {
            step_id: None,
            until_ms,
            reason: format!("every account of the pool is held; the first to serve again: {hold}"),
            paid: Default::default(),
            account: Some(hold.account().to_owned()),
            window,
            pool_wait: Some(pool_wait),
        };
        self.record(vec![Command::RecordWait(wait)]).await?;
        Ok(())
    }
}

/// Clears a run's wait from its view, and its places in the lines, when the driver stops
/// waiting.
struct WaitShown(Arc<crate::accounts::Accounts>, loop_core::RunId);

impl Drop for WaitShown {
    fn drop(&mut self) {
        self.0.stop_waiting(self.1);
    }
}
