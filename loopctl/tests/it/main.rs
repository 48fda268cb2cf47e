//! `loopctl` driven as a person or a script would: the real binary on a real event log.

mod daemon;
mod daemon_cli;
mod demo;
mod exec;
mod experiment;
mod follow;
mod insight;
mod live_lines;
mod newcomer;
mod offline;
mod review;
mod runs;
mod sources;
mod support;
mod terminal;
mod truths;
mod worktrees;
