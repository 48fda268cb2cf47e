//! Fair share: an account may admit only so many calls at once (`account_concurrency`). When
//! more of its runs want one than it admits, [`turn`] lets them through by how far each has
//! come — iterations started over its `priority` — so they take turns iteration by iteration
//! rather than in the order they asked (stride scheduling).

use super::{AccountBook, RunEntry};
use crate::ids::RunId;

/// A run waiting for a turn of its account's calls, and when it came: a number that grows
/// with each run that comes to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub run_id: RunId,
    pub arrived: u64,
}

/// What [`turn`] decides for one waiting run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// It may call now.
    Go,
    /// It waits: `in_flight` of the `cap` calls are taken, and `ahead` waiting runs go first.
    Wait {
        in_flight: u32,
        cap: u32,
        ahead: usize,
    },
}

/// Whether `run`, one of `waiting`, may start its call: the account's cap less the calls in
/// flight (the log's, plus `granted` ones not in the log yet) leaves room, and no more waiting
/// runs than that room come before it. Runs come in the order of iterations started over
/// priority (so each takes a turn per round, a run of priority 2 two), then of how long they
/// have waited, then of id. Without a cap every run goes.
pub fn turn(
    book: &AccountBook,
    account: &str,
    waiting: &[Waiter],
    granted: u32,
    run: RunId,
) -> Turn {
    let Some(cap) = book.concurrency_of(account) else {
        return Turn::Go;
    };
    let in_flight = book.calls_in_flight(account) + granted;
    let room = cap.saturating_sub(in_flight) as usize;
    let mut line: Vec<&Waiter> = waiting.iter().collect();
    line.sort_by(|a, b| {
        let (a_run, b_run) = (book.runs.get(&a.run_id), book.runs.get(&b.run_id));
        // iterations_a / priority_a against iterations_b / priority_b, without division.
        let pass = |run: Option<&RunEntry>, other: Option<&RunEntry>| {
            u64::from(run.map_or(0, |r| r.iterations)) * u64::from(other.map_or(1, |r| r.priority))
        };
        pass(a_run, b_run)
            .cmp(&pass(b_run, a_run))
            .then(a.arrived.cmp(&b.arrived))
            .then_with(|| a.run_id.cmp(&b.run_id))
    });
    let ahead = line.iter().take_while(|w| w.run_id != run).count();
    if ahead < room {
        Turn::Go
    } else {
        Turn::Wait {
            in_flight,
            cap,
            ahead,
        }
    }
}
