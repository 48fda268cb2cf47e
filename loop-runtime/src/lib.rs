//! The loop engine as a library: the run driver, agents, verification and worktrees.
//!
//! The engine lands with its own issue; this crate holds its place in the workspace so the crate
//! borders in `ARCHITECTURE.md` are real from the start.
