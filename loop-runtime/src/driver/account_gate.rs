//! Before an agent call: what the run's account allows (specs/runtime.md, "Accounts") — its
//! usage limit and the probe after it, its budget, the reserve of its window, and the turns of
//! its calls.

use std::sync::Arc;

use loop_core::Command;
use loop_core::account::{Ask, CallKind, Decision, Hold};
use loop_core::config::BudgetAction;
use loop_core::event::{AgentWaiting, ExitReason, FailureCause};
use loop_core::progress::Next;

use super::{Driver, DriverEnd};
use crate::error::RuntimeError;

/// Where a pool run's call goes.
pub(super) enum PoolAccount {
    /// To this account.
    Call(String),
    /// Nowhere: the run ends (failed, or stopped while it waited).
    End(DriverEnd),
}

/// What the account says of the call the loop is about to make.
pub(super) enum AccountGate {
    /// Make it.
    Go,
    /// Something changed while the run waited (a budget wait recorded, a window reset, a
    /// limit met): decide the next step again.
    Again,
    /// The run ends, or was stopped while it waited.
    End(DriverEnd),
}

impl Driver {
    /// Waits until the run's account lets it make the call `next` asks for. Only agent calls
    /// are held, and only for runs that wait on usage limits (`usage_limit_wait`).
    pub(super) async fn wait_for_account(
        &mut self,
        next: &Next,
    ) -> Result<AccountGate, RuntimeError> {
        if !matches!(next, Next::Implement { .. } | Next::Review { .. }) {
            return Ok(AccountGate::Go);
        }
        // A run with a pool asks the one decision for its pool (any usage_limit_wait: a pool
        // run that does not wait fails only when no account of it may take the call).
        if !self.run.config.account_pool.is_empty() {
            let kind = match next {
                Next::Implement { .. } => CallKind::Iteration,
                _ => CallKind::Review,
            };
            return Ok(match self.pool_account(kind, None).await? {
                PoolAccount::Call(_) => AccountGate::Go,
                PoolAccount::End(end) => AccountGate::End(end),
            });
        }
        if !self.run.config.usage_limit_wait {
            return Ok(AccountGate::Go);
        }
        let accounts = Arc::clone(&self.accounts);
        let clock = Arc::clone(&self.services.clock);
        if !accounts
            .clear_to_call(self.run.run_id, clock.as_ref(), &self.cancel)
            .await
        {
            return Ok(AccountGate::End(DriverEnd::Stopped));
        }
        // The account's budget: its runs wait for the next day or month (a wait of the
        // account, recorded once, that holds them all), or this run fails.
        let budget = self.run.config.account_budget;
        if let Some((account, over)) = accounts.over_budget(self.run.run_id, budget, self.now()) {
            let reason = over.reason(&account);
            if self.run.config.account_budget_action == BudgetAction::Fail {
                let cause = FailureCause::Budget {
                    cost_usd: over.spent_usd,
                    max_usd: over.cap_usd,
                };
                let end = self
                    .fail(ExitReason::BudgetExhausted, reason, Some(cause))
                    .await?;
                return Ok(AccountGate::End(end));
            }
            let wait = AgentWaiting {
                step_id: None,
                until_ms: over.until_ms,
                reason,
                paid: Default::default(),
                account: None,
                window: None,
            };
            self.record(vec![Command::RecordWait(wait)]).await?;
            return Ok(AccountGate::Again);
        }
        // The reserve: no new iteration while the account's window is used beyond what the
        // run leaves free; the run goes on when the window resets.
        if matches!(next, Next::Implement { .. })
            && let Some((account, reserve)) = accounts.in_reserve(self.run.run_id, self.now())
        {
            tracing::info!(
                %account,
                window = %reserve.window,
                utilization = reserve.utilization,
                "the account's reserve is reached: no new iteration until its window resets"
            );
            if !self.sleep_until(reserve.until_ms).await {
                return Ok(AccountGate::End(DriverEnd::Stopped));
            }
            return Ok(AccountGate::Again);
        }
        // Fair share: when the account admits only so many calls at once, its runs take turns.
        // A limit met while this run waited holds it again.
        if !accounts
            .take_turn(self.run.run_id, clock.as_ref(), &self.cancel)
            .await
        {
            return Ok(AccountGate::End(DriverEnd::Stopped));
        }
        if accounts.hold(self.run.run_id, self.now()).is_some() {
            accounts.give_back_turn(self.run.run_id);
            return Ok(AccountGate::Again);
        }
        Ok(AccountGate::Go)
    }
}

impl Driver {
    /// The account of the pool the next call of kind `kind` goes to, waiting as
    /// [`loop_core::account::before_call`] says until one may take it; `held` is a limit the
    /// call before met and the log does not show yet.
    pub(super) async fn pool_account(
        &mut self,
        kind: CallKind,
        held: Option<(&str, i64)>,
    ) -> Result<PoolAccount, RuntimeError> {
        let accounts = Arc::clone(&self.accounts);
        let clock = Arc::clone(&self.services.clock);
        let phase = match kind {
            CallKind::Review => loop_core::event::Phase::Review,
            _ => loop_core::event::Phase::Implementation,
        };
        let mut said: Option<String> = None;
        // What the run waits on is shown in its view while it waits, and no longer after,
        // however this returns.
        let _shown = WaitShown(Arc::clone(&accounts), self.run.run_id);
        loop {
            let changed = accounts.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let config = &self.run.config;
            let ask = Ask {
                run_id: self.run.run_id,
                config,
                kind,
                model: config.model_for(phase),
                previous: None,
                now_ms: clock.now_ms(),
            };
            let held = held.filter(|(_, until)| ask.now_ms < *until);
            match accounts.decide(&ask, held) {
                Decision::Call { account, .. } => return Ok(PoolAccount::Call(account)),
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
                    let reason = format!("no account of the pool may take the call: {hold}");
                    let end = self.fail(exit_reason, reason, Some(cause)).await?;
                    return Ok(PoolAccount::End(end));
                }
                Decision::Wait { until_ms, hold } => {
                    accounts.set_pool_wait(self.run.run_id, Some(hold.clone()));
                    let text = hold.to_string();
                    if said.as_deref() != Some(text.as_str()) {
                        tracing::info!(run_id = %self.run.run_id, code = hold.code().as_str(), "{text}");
                        said = Some(text);
                    }
                    // A wait with no time of its own (a probe's answer, a turn) is asked again
                    // when the book changes, or after a while in case nothing is recorded.
                    let until = until_ms.unwrap_or_else(|| clock.now_ms() + 5_000);
                    tokio::select! {
                        () = clock.sleep_until(until) => {}
                        () = &mut changed => {}
                        () = self.cancel.cancelled() => {
                            return Ok(PoolAccount::End(DriverEnd::Stopped));
                        }
                    }
                }
            }
        }
    }
}

/// Clears a pool run's wait from its view when the driver stops waiting.
struct WaitShown(Arc<crate::accounts::Accounts>, loop_core::RunId);

impl Drop for WaitShown {
    fn drop(&mut self) {
        self.0.set_pool_wait(self.1, None);
    }
}
