//! Before an agent call: which account of the run's pool it goes to, or why it waits or
//! fails — the one decision, over the folded log ([`AccountBook`]) and the run's typed
//! configuration. The runtime's account owner applies it with its clock; the texts shown to
//! people come from the typed [`Hold`].
//!
//! For each account of the pool, in order:
//!
//! 1. **limit** — a usage limit met and not cleared, in a window counting the call's model (a
//!    model's own weekly window holds only that model): before its reset the account is held;
//!    after it, one run probes (this node's choice, or a call the log shows in flight since the
//!    reset) and the others hold until it is answered;
//! 2. **budget** — the account's spend today or this month at the run's cap;
//! 3. **reserve and pacing** — for a call that starts an iteration, in a run keeping a reserve
//!    (`account_reserve_pct`): no window counting the model may be used past `100 − reserve`
//!    percent once the iteration's expected share is added (the mean share a call of each of
//!    its models took, as the log shows), so the reserve is never crossed rather than noticed
//!    once it is; held until the window resets;
//! 4. **turn** — under `account_concurrency`, the run's turn among the account's waiting runs.
//!
//! Of the accounts left, the call goes to the one with the most headroom (the least share of
//! its binding window or budget used, the reserve counted as used), a retry staying on its
//! account when that one ties. With none left the run waits for the earliest reset among the
//! holds (or for the change a probe's answer or a turn brings), or fails: every account over a
//! budget whose action is `fail`, or every account held by a limit in a run that does not wait
//! for limits (`usage_limit_wait=false`).

use std::collections::BTreeMap;
use std::fmt;

use super::budget::{OverBudget, over_budget};
use super::turn::{Turn, Waiter, turn};
use super::window::{self, Window};
use super::{AccountBook, AccountState, UNNAMED};
use crate::config::{BudgetAction, RunConfig};
use crate::event::PoolWait;
use crate::ids::RunId;
use crate::projection::WaitCode;
use crate::time::rfc3339_ms;

/// What kind of call is about to be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// An implementation call that starts an iteration: reserve and pacing apply.
    Iteration,
    /// A review call.
    Review,
    /// Another call of a step already under way (after a retry or a limit): its turn is taken.
    Again,
}

/// A run about to call its agent.
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    pub run_id: RunId,
    pub config: &'a RunConfig,
    pub kind: CallKind,
    /// The model the call asks for (empty: the agent's default).
    pub model: &'a str,
    /// The account of the step's previous call: it keeps the call on a tie.
    pub previous: Option<&'a str>,
    pub now_ms: i64,
}

/// What this node holds in memory beside the log: the run it chose to probe each account
/// after its reset, and per account the runs waiting for a turn and the turns given whose call
/// the log does not show yet.
#[derive(Clone, Debug, Default)]
pub struct Local {
    /// Limits this node has just met and not yet recorded (the call that met one is deciding
    /// where to go on): account → reset.
    pub held: BTreeMap<String, i64>,
    pub probes: BTreeMap<String, RunId>,
    pub waiting: BTreeMap<String, Vec<Waiter>>,
    pub granted: BTreeMap<String, u32>,
}

/// The decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Call on `account`; `probe`: the first call after its limit's reset.
    Call { account: String, probe: bool },
    /// No account may take the call: wait until `until_ms` (the earliest reset among the
    /// holds) or until the book changes (a probe answered, a turn freed), whichever is first.
    Wait { until_ms: Option<i64>, hold: Hold },
    /// The run fails.
    Fail { hold: Hold },
}

/// Why an account may not take a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Hold {
    /// A usage limit, until its reset.
    Limited {
        account: String,
        until_ms: i64,
        window: Option<String>,
        by: Option<RunId>,
        said: String,
    },
    /// The reset has passed and another run's call probes the account.
    Probing { account: String, by: RunId },
    /// The account's spend reached the run's cap.
    OverBudget { account: String, over: OverBudget },
    /// Starting an iteration would use the window past the share the run keeps free.
    Reserve {
        account: String,
        window: String,
        used: f64,
        expected: f64,
        reserve_pct: u32,
        until_ms: i64,
    },
    /// The account admits `cap` calls at once and its runs take turns.
    Turn {
        account: String,
        in_flight: u32,
        cap: u32,
        ahead: usize,
    },
}

impl Hold {
    /// A stable name for programs (the run view's `waiting.code`, notifications).
    pub fn code(&self) -> WaitCode {
        match self {
            Hold::Limited { .. } => WaitCode::AccountLimit,
            Hold::Probing { .. } => WaitCode::AccountProbe,
            Hold::OverBudget { .. } => WaitCode::AccountBudget,
            Hold::Reserve { .. } => WaitCode::AccountReserve,
            Hold::Turn { .. } => WaitCode::AccountTurn,
        }
    }

    pub fn account(&self) -> &str {
        match self {
            Hold::Limited { account, .. }
            | Hold::Probing { account, .. }
            | Hold::OverBudget { account, .. }
            | Hold::Reserve { account, .. }
            | Hold::Turn { account, .. } => account,
        }
    }

    /// How a pool run's wait for this hold is recorded (`AGENT_WAITING.pool_wait`): the holds
    /// that end at a known time. A probe's answer or a turn comes within a call, and is shown
    /// in the run's view only.
    pub fn pool_wait(&self) -> Option<PoolWait> {
        match self {
            Hold::Limited { .. } => Some(PoolWait::Limit),
            Hold::OverBudget { .. } => Some(PoolWait::Budget),
            Hold::Reserve { .. } => Some(PoolWait::Reserve),
            Hold::Probing { .. } | Hold::Turn { .. } => None,
        }
    }

    /// When the hold ends by itself, if it does at a known time.
    pub fn until_ms(&self) -> Option<i64> {
        match self {
            Hold::Limited { until_ms, .. } | Hold::Reserve { until_ms, .. } => Some(*until_ms),
            Hold::OverBudget { over, .. } => Some(over.until_ms),
            Hold::Probing { .. } | Hold::Turn { .. } => None,
        }
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Limited {
                account,
                until_ms,
                window,
                said,
                ..
            } => {
                let which = window
                    .as_deref()
                    .map_or_else(String::new, |w| format!(" ({w} window)"));
                write!(
                    f,
                    "account {account} is held by a usage limit{which} until {}",
                    rfc3339_ms(*until_ms)
                )?;
                if !said.is_empty() {
                    write!(f, ": {said}")?;
                }
                Ok(())
            }
            Hold::Probing { account, by } => write!(
                f,
                "account {account}: its limit's reset has passed and run {by} calls first; \
                 the others follow once that call is answered"
            ),
            Hold::OverBudget { account, over } => f.write_str(&over.reason(account)),
            Hold::Reserve {
                account,
                window,
                used,
                expected,
                reserve_pct,
                until_ms,
            } => {
                write!(
                    f,
                    "account {account}: its {window} window is {:.0}% used",
                    used * 100.0
                )?;
                // The single-account check knows no share per iteration: it says none.
                if *expected > 0.0 {
                    write!(
                        f,
                        " and an iteration takes about {:.0}% more",
                        expected * 100.0
                    )?;
                }
                write!(
                    f,
                    ", into the {reserve_pct}% this run keeps free (account_reserve_pct); no new \
                     iteration until it resets at {}",
                    rfc3339_ms(*until_ms)
                )
            }
            Hold::Turn {
                account,
                in_flight,
                cap,
                ahead,
            } => {
                let line = match ahead {
                    0 => "it is next".to_owned(),
                    1 => "1 run goes before it".to_owned(),
                    n => format!("{n} runs go before it"),
                };
                write!(
                    f,
                    "account {account}: {in_flight} of its {cap} calls at once are in flight \
                     (account_concurrency); its runs take turns by iteration and priority, and \
                     {line}"
                )
            }
        }
    }
}

/// An account that may take the call.
struct Candidate {
    account: String,
    probe: bool,
    headroom: f64,
}

/// The decision before the call `ask` describes.
pub fn before_call(book: &AccountBook, local: &Local, ask: &Ask<'_>) -> Decision {
    let mut pool: Vec<String> = book.pool_of(ask.run_id).to_vec();
    if pool.is_empty() {
        pool = ask.config.accounts();
    }
    if pool.is_empty() {
        pool.push(UNNAMED.to_owned());
    }
    let empty = AccountState::default();
    let mut open = Vec::new();
    let mut holds = Vec::new();
    for account in &pool {
        let state = book.state(account).unwrap_or(&empty);
        match weigh(book, local, ask, account, state) {
            Ok(candidate) => open.push(candidate),
            Err(hold) => holds.push(hold),
        }
    }
    let best = open.into_iter().enumerate().max_by(|(i, a), (j, b)| {
        let kept = |c: &Candidate| ask.previous == Some(c.account.as_str());
        a.headroom
            .total_cmp(&b.headroom)
            .then(kept(a).cmp(&kept(b)))
            // Earlier in the pool wins what is left: `max_by` keeps the last of equals.
            .then(j.cmp(i))
    });
    if let Some((_, best)) = best {
        return Decision::Call {
            account: best.account,
            probe: best.probe,
        };
    }
    let all = |held: fn(&Hold) -> bool| holds.iter().all(held);
    if !ask.config.usage_limit_wait
        && all(|h| matches!(h, Hold::Limited { .. } | Hold::Probing { .. }))
    {
        return Decision::Fail {
            hold: holds.swap_remove(0),
        };
    }
    if ask.config.account_budget_action == BudgetAction::Fail
        && all(|h| matches!(h, Hold::OverBudget { .. }))
    {
        return Decision::Fail {
            hold: holds.swap_remove(0),
        };
    }
    let until_ms = holds.iter().filter_map(Hold::until_ms).min();
    let at = holds
        .iter()
        .position(|hold| until_ms.is_some() && hold.until_ms() == until_ms)
        .unwrap_or(0);
    Decision::Wait {
        until_ms,
        hold: holds.swap_remove(at),
    }
}

/// Whether `account` may take the call, and its headroom if so.
fn weigh(
    book: &AccountBook,
    local: &Local,
    ask: &Ask<'_>,
    account: &str,
    state: &AccountState,
) -> Result<Candidate, Hold> {
    let now = ask.now_ms;
    if let Some(&until_ms) = local.held.get(account).filter(|until| now < **until) {
        return Err(Hold::Limited {
            account: account.to_owned(),
            until_ms,
            window: None,
            by: Some(ask.run_id),
            said: String::new(),
        });
    }
    let mut probe = false;
    if let Some((until_ms, window)) = state.limit_for(ask.model) {
        if now < until_ms {
            let (by, said) = limit_words(state, window);
            return Err(Hold::Limited {
                account: account.to_owned(),
                until_ms,
                window: window.map(str::to_owned),
                by,
                said,
            });
        }
        let prober = local
            .probes
            .get(account)
            .copied()
            .or_else(|| book.probing(account, until_ms));
        match prober {
            Some(by) if by != ask.run_id => {
                return Err(Hold::Probing {
                    account: account.to_owned(),
                    by,
                });
            }
            _ => probe = true,
        }
    }
    let budget = ask.config.account_budget;
    if let Some(over) = over_budget(state, budget, now) {
        return Err(Hold::OverBudget {
            account: account.to_owned(),
            over,
        });
    }
    let reserve_pct = ask.config.account_reserve_pct.min(100);
    let allowed = 1.0 - f64::from(reserve_pct) / 100.0;
    if ask.kind == CallKind::Iteration && reserve_pct > 0 {
        for (name, window) in counting(state, ask.model) {
            let Some(reset) = window.seen.resets_at_ms.filter(|reset| now < *reset) else {
                continue;
            };
            let used = window.used_at(now);
            let expected = iteration_share(window, ask);
            // A hair of tolerance, so a share that lands exactly on the line is not held.
            if used >= allowed || used + expected > allowed + 1e-9 {
                return Err(Hold::Reserve {
                    account: account.to_owned(),
                    window: name.to_owned(),
                    used,
                    expected,
                    reserve_pct,
                    until_ms: reset,
                });
            }
        }
    }
    if ask.kind != CallKind::Again
        && let Some(cap) = book.concurrency_of(account)
    {
        let waiting = local.waiting.get(account).map_or(&[][..], Vec::as_slice);
        let granted = local.granted.get(account).copied().unwrap_or(0);
        // The run asks from its place in the line, or from its end when it is not in it.
        let mut line = waiting.to_vec();
        if !line.iter().any(|w| w.run_id == ask.run_id) {
            let last = line.iter().map(|w| w.arrived).max().unwrap_or(0);
            line.push(Waiter {
                run_id: ask.run_id,
                arrived: last.saturating_add(1),
            });
        }
        if let Turn::Wait {
            in_flight, ahead, ..
        } = turn(book, account, &line, granted, ask.run_id)
        {
            return Err(Hold::Turn {
                account: account.to_owned(),
                in_flight,
                cap,
                ahead,
            });
        }
    }
    Ok(Candidate {
        account: account.to_owned(),
        probe,
        headroom: headroom(state, ask, allowed),
    })
}

/// Who met the limit in `window`, and what the agent said.
fn limit_words(state: &AccountState, window: Option<&str>) -> (Option<RunId>, String) {
    match window.and_then(window::scope_of) {
        Some(family) => state
            .model_limits
            .get(family)
            .map_or((None, String::new()), |l| (Some(l.by), l.reason.clone())),
        None => (
            state.limited_by,
            state.limit_reason.clone().unwrap_or_default(),
        ),
    }
}

/// The account's windows that count calls of `model`, by name (the last one reported when the
/// log has only that).
fn counting<'a>(
    state: &'a AccountState,
    model: &'a str,
) -> impl Iterator<Item = (&'a str, &'a Window)> + 'a {
    state
        .windows
        .iter()
        .filter(move |(name, _)| window::counts(Some(name.as_str()), model))
        .map(|(name, window)| (name.as_str(), window))
}

/// What an iteration is expected to take of `window`: one call of the model, and one of the
/// review model when the run reviews; nothing known until a call was observed.
fn iteration_share(window: &Window, ask: &Ask<'_>) -> f64 {
    let implement = window.share_of_call(ask.model).unwrap_or(0.0);
    let review_model = ask.config.model_for(crate::event::Phase::Review);
    let review =
        if ask.config.reviewer && window::counts(window.seen.window.as_deref(), review_model) {
            window.share_of_call(review_model).unwrap_or(0.0)
        } else {
            0.0
        };
    implement + review
}

/// How much room the account has for the call: the least left, over its windows counting the
/// model and its budget caps, of what the run allows itself (the reserve counted as used).
fn headroom(state: &AccountState, ask: &Ask<'_>, allowed: f64) -> f64 {
    let now = ask.now_ms;
    let windows = counting(state, ask.model).map(|(_, window)| allowed - window.used_at(now));
    let budget = ask.config.account_budget;
    let today = now.div_euclid(86_400_000) == state.day;
    let this_month = super::budget::month_of(now) == state.month;
    let day = budget.per_day_usd.map(|cap| {
        1.0 - if today {
            state.spent_day_usd / cap
        } else {
            0.0
        }
    });
    let month = budget.per_month_usd.map(|cap| {
        1.0 - if this_month {
            state.spent_month_usd / cap
        } else {
            0.0
        }
    });
    windows
        .chain(day)
        .chain(month)
        .filter(|left| left.is_finite())
        .fold(allowed, f64::min)
}

#[cfg(test)]
mod tests;
