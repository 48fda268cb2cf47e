//! Before an agent call: what the run's account allows (specs/runtime.md, "Accounts") — its
//! usage limit and the probe after it, its budget, the reserve of its window, and the turns of
//! its calls.

use std::sync::Arc;

use loop_core::Command;
use loop_core::event::{AgentWaiting, ExitReason, FailureCause};
use loop_core::progress::Next;

use super::{Driver, DriverEnd};
use crate::error::RuntimeError;

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
        if !matches!(next, Next::Implement { .. } | Next::Review { .. })
            || !self.run.config.usage_limit_wait
        {
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
            if self.run.config.account_budget_fails {
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
            tokio::select! {
                () = clock.sleep_until(reserve.until_ms) => {}
                () = self.cancel.cancelled() => return Ok(AccountGate::End(DriverEnd::Stopped)),
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
