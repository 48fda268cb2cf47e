//! The runtime end to end: real git repositories in temp dirs, real SQLite logs, stub agents
//! as shell scripts.

mod accounts;
mod claude;
mod control;
mod experiment;
mod faults;
mod first_hour;
mod loop_runs;
mod notify;
mod output;
mod pools;
mod postmortem;
mod raw_cap;
mod real_agents;
mod remote;
mod review;
mod step_files;
mod support;
mod worktrees;
mod worktrunk;
