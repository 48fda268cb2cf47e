//! What loop's test suites and benchmarks share, so that each has one copy: scratch git
//! repositories with a spec and a plan ([`repo`]), the stub agents ([`agents`]), and a real
//! `loopd` started on an ephemeral loopback port ([`daemon`]), a real PostgreSQL server
//! ([`postgres`]), the machine's processes as `/proc` shows them ([`procs`]), and a small
//! real-looking project with an agent that works on it for real ([`projects`]).
//!
//! Everything here is real: real git, real child processes, real sockets. Only the agent is a
//! stand-in, and the stubs in `testkit/agents/` behave as the command-line agents they stand
//! for do.

pub mod agents;
pub mod daemon;
pub mod postgres;
pub mod procs;
pub mod projects;
pub mod repo;

use std::time::{Duration, Instant};

pub use daemon::{Daemon, Loopd};
pub use repo::{Repo, Scratch, bare_clone, git};

/// Polls `check` every 20 ms for up to `limit`; panics naming `what` when it never holds.
pub fn until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}
