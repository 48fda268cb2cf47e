//! loop-core's tests, as one binary: the domain through its public API.
//!
//! - `generate`: generated command sequences and the driver that plays them as the store would;
//! - `laws`: properties of every accepted history (replay, incremental projections, terminal
//!   states, JSON round trips);
//! - `decide`: what each command emits or why it is refused;
//! - `schema`: stored events from older and newer writers still decode;
//! - `projections`: a realistic run against golden `report.tsv`, `summary.json`, `run.log` and
//!   `events.jsonl`;
//! - `stats`: figures across runs, hand-computed and under any interleaving of runs;
//! - `experiment`: experiment mode's decision over seeded simulations, its invariants, and
//!   whole experiments played through `experiment::next`, crashes included.

mod agents;
mod decide;
mod experiment;
mod generate;
mod laws;
mod policy;
mod projections;
mod readme;
mod schema;
mod stats;
