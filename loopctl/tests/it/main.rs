//! `loopctl` driven as a person or a script would: the real binary on a real event log.

mod demo;
mod exec;
mod offline;
mod support;
mod worktrees;
