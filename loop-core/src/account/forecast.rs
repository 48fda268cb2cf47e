//! When a run is expected to finish, and what binds it first: from the log, the time, cost
//! and window share of its iterations so far, times the plan's tasks left (one task an
//! iteration), against its account's windows (a pool's: every account's, each iteration going
//! where there is room), their resets and the reserve it keeps, and against its `max_cost_usd`.

use serde::Serialize;

use super::AccountBook;
use super::window::{self, Window};
use crate::ids::RunId;

/// A run's forecast.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunForecast {
    pub run_id: RunId,
    /// The account its calls go to now.
    pub account: String,
    pub tasks_left: Option<u32>,
    /// The mean time and cost of its iterations so far.
    pub iteration_ms: Option<u64>,
    pub iteration_cost_usd: Option<f64>,
    /// When it is expected to finish; `None` when the log does not say enough yet, or when
    /// `max_cost_usd` stops it first.
    pub finish_ms: Option<i64>,
    /// What binds it first, if anything beyond its own pace does.
    pub binding: Option<Binding>,
}

/// What makes a run finish later than its pace alone would.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Binding {
    /// The account's window runs out before the tasks do: the run waits for its resets.
    Window {
        account: String,
        window: String,
        resets_at_ms: i64,
    },
    /// `max_cost_usd` would be passed before the tasks are done.
    MaxCost { expected_usd: f64, max_usd: f64 },
    /// Every account of the pool that could take the next iteration is held by a usage limit
    /// (or the others' windows are full past it): the run waits for this one's reset.
    Limit { account: String, until_ms: i64 },
}

/// The length of a window by its name, for the periods after its next reset.
fn period_ms(name: &str) -> Option<i64> {
    if name.starts_with("five_hour") {
        return Some(5 * 3_600_000);
    }
    if name.starts_with("seven_day") {
        return Some(7 * 86_400_000);
    }
    let minutes = name.strip_suffix("_minutes")?.parse::<i64>().ok()?;
    Some(minutes * 60_000)
}

/// The forecasts of the runs that have not ended, by run id.
pub fn forecasts(book: &AccountBook, now_ms: i64) -> Vec<RunForecast> {
    let mut open: Vec<RunId> = book
        .runs
        .iter()
        .filter(|(_, run)| !run.ended)
        .map(|(id, _)| *id)
        .collect();
    open.sort();
    open.into_iter()
        .filter_map(|run_id| forecast(book, run_id, now_ms))
        .collect()
}

/// The forecast of `run_id` at `now_ms`, once its `RUN_CREATED` was applied.
pub fn forecast(book: &AccountBook, run_id: RunId, now_ms: i64) -> Option<RunForecast> {
    let run = book.runs.get(&run_id)?;
    let account = book
        .current_account(run_id)
        .unwrap_or(run.account())
        .to_owned();
    let tasks_left = run.tasks.map(|(done, total)| total.saturating_sub(done));
    let done = run.iterations_done;
    let iteration_ms = (done > 0).then(|| run.iteration_ms / u64::from(done));
    let iteration_cost_usd = (done > 0).then(|| run.iteration_cost_usd / f64::from(done));
    let mut forecast = RunForecast {
        run_id,
        account: account.clone(),
        tasks_left,
        iteration_ms,
        iteration_cost_usd,
        finish_ms: None,
        binding: None,
    };
    if let (Some(cost), Some(max_usd), Some(left)) =
        (iteration_cost_usd, run.max_cost_usd, tasks_left)
    {
        let expected_usd = run.cost_usd + cost * f64::from(left);
        if expected_usd > max_usd {
            forecast.binding = Some(Binding::MaxCost {
                expected_usd,
                max_usd,
            });
            return Some(forecast);
        }
    }
    let (Some(left), Some(pace)) = (tasks_left, iteration_ms) else {
        return Some(forecast);
    };
    let pace = i64::try_from(pace).unwrap_or(i64::MAX);
    let mut finish = now_ms.saturating_add(pace.saturating_mul(i64::from(left)));
    let allowed = 1.0 - f64::from(run.reserve_pct.min(100)) / 100.0;
    // A pool's iterations go to whichever account has room: its windows add up.
    if run.pool.len() > 1 {
        // No finish is promised when it would wait for a window that says no reset.
        if let Some((at, binding)) = pool_finish(book, run, left, pace, allowed, now_ms) {
            if at > finish {
                finish = at;
                forecast.binding = binding;
            }
            forecast.finish_ms = Some(finish);
        }
        return Some(forecast);
    }
    let state = book.state(&account)?;
    let start = state
        .limit_for(&run.models[0])
        .map_or(now_ms, |(until, _)| until.max(now_ms));
    finish = finish.max(start.saturating_add(pace.saturating_mul(i64::from(left))));
    for (name, window) in &state.windows {
        if !window::counts(Some(name), &run.models[0]) {
            continue;
        }
        if let Some(at) = window_finish(name, window, run, left, pace, allowed, start)
            && at > finish
        {
            finish = at;
            forecast.binding = window
                .seen
                .resets_at_ms
                .map(|resets_at_ms| Binding::Window {
                    account: account.clone(),
                    window: name.clone(),
                    resets_at_ms,
                });
        }
    }
    forecast.finish_ms = Some(finish);
    Some(forecast)
}

/// What an iteration of the run takes of `window`: a call of its model, and one of its review
/// model when it reviews.
fn iteration_share(window: &Window, run: &super::RunEntry) -> f64 {
    window.share_of_call(&run.models[0]).unwrap_or(0.0)
        + if run.reviewer {
            window.share_of_call(&run.models[1]).unwrap_or(0.0)
        } else {
            0.0
        }
}

/// One account's window in the pool's simulation.
struct Slot {
    name: String,
    used: f64,
    share: f64,
    reset: Option<i64>,
    period: i64,
}

/// When `left` iterations of a pool run are done, and the first window whose reset it waits
/// for: each iteration, at the run's pace, goes to an account of the pool that is not held and
/// whose windows counting the model keep the reserve with the iteration's share added; when
/// none has room, the run waits for the earliest reset or end of hold among them. `None` when
/// it would wait for a window that reports no reset (no finish can be promised).
fn pool_finish(
    book: &AccountBook,
    run: &super::RunEntry,
    left: u32,
    pace: i64,
    allowed: f64,
    now: i64,
) -> Option<(i64, Option<Binding>)> {
    let model = &run.models[0];
    let empty = super::AccountState::default();
    let mut accounts: Vec<(&str, i64, Vec<Slot>)> = run
        .pool
        .iter()
        .map(|account| {
            let state = book.state(account).unwrap_or(&empty);
            let free_from = state
                .limit_for(model)
                .map_or(now, |(until, _)| until.max(now));
            let slots = state
                .windows
                .iter()
                .filter(|(name, _)| window::counts(Some(name), model))
                .map(|(name, window)| Slot {
                    name: name.clone(),
                    used: window.used_at(now),
                    share: iteration_share(window, run),
                    reset: window.seen.resets_at_ms,
                    period: period_ms(name).unwrap_or(5 * 3_600_000).max(1),
                })
                .collect();
            (account.as_str(), free_from, slots)
        })
        .collect();
    let mut t = now;
    let mut binding = None;
    let mut left = left;
    // Each turn of the loop places an iteration or moves to a reset: bounded by both.
    for _ in 0..(u64::from(left) * 2 + 1_000) {
        if left == 0 {
            return Some((t, binding));
        }
        for (_, _, slots) in &mut accounts {
            for slot in slots.iter_mut() {
                if let Some(reset) = slot.reset.filter(|reset| *reset <= t) {
                    let periods = (t - reset) / slot.period + 1;
                    slot.reset = Some(reset.saturating_add(periods.saturating_mul(slot.period)));
                    slot.used = 0.0;
                }
            }
        }
        let fits = |slot: &Slot| slot.used + slot.share <= allowed + 1e-9;
        if let Some((_, _, slots)) = accounts
            .iter_mut()
            .find(|(_, free_from, slots)| *free_from <= t && slots.iter().all(fits))
        {
            for slot in slots.iter_mut() {
                slot.used += slot.share;
            }
            t = t.saturating_add(pace);
            left -= 1;
            continue;
        }
        // Nothing has room: the earliest end of a hold or reset of a full window.
        let mut next: Option<(i64, &str, Option<&str>)> = None;
        for (account, free_from, slots) in &accounts {
            if *free_from > t && next.is_none_or(|(at, _, _)| *free_from < at) {
                next = Some((*free_from, *account, None));
            }
            for slot in slots.iter().filter(|slot| !fits(slot)) {
                if let Some(reset) = slot.reset
                    && next.is_none_or(|(at, _, _)| reset < at)
                {
                    next = Some((reset, *account, Some(slot.name.as_str())));
                }
            }
        }
        let (at, account, window) = next?;
        if binding.is_none() {
            binding = Some(match window {
                Some(name) => Binding::Window {
                    account: account.to_owned(),
                    window: name.to_owned(),
                    resets_at_ms: at,
                },
                None => Binding::Limit {
                    account: account.to_owned(),
                    until_ms: at,
                },
            });
        }
        t = at;
    }
    None
}

/// When `left` iterations are done if `window` is the only thing that binds: as many as fit
/// in what is left of it now, then as many as fit in each period after its reset.
fn window_finish(
    name: &str,
    window: &Window,
    run: &super::RunEntry,
    left: u32,
    pace: i64,
    allowed: f64,
    start: i64,
) -> Option<i64> {
    let share = iteration_share(window, run);
    if share <= 0.0 {
        return None;
    }
    let reset = window.seen.resets_at_ms.filter(|reset| *reset > start)?;
    // A hair of tolerance: 0.8 − 0.7 is a little over a tenth in floating point, or under.
    let fit_now = ((allowed - window.used_at(start)).max(0.0) / share + 1e-9).floor() as u64;
    if u64::from(left) <= fit_now {
        return None;
    }
    let per_period = (allowed / share + 1e-9).floor() as u64;
    if per_period == 0 {
        return None;
    }
    let period = period_ms(name).unwrap_or((reset - start).max(1));
    let remaining = u64::from(left) - fit_now;
    let full_periods = (remaining - 1) / per_period;
    let in_last = remaining - full_periods * per_period;
    let periods = i64::try_from(full_periods).ok()?;
    let last = i64::try_from(in_last).ok()?;
    Some(
        reset
            .saturating_add(period.saturating_mul(periods))
            .saturating_add(pace.saturating_mul(last)),
    )
}
