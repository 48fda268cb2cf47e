//! The types of loop's API: what `loopd` takes and answers over HTTP, what the runtime's
//! review and insight actions return, and [`RunFlags`], the run flags every front end shares.
//!
//! Both sides use these types — the daemon serializes them, `loop-client` reads them — so the
//! two cannot drift. The views of a run, a step and an event are loop-core's projections
//! ([`Run`], [`Step`], [`Event`]); everything else is here. Nothing here does I/O.

pub mod comments;
pub mod flags;
pub mod insight;
pub mod meta;
pub mod review;
pub mod runs;

pub use flags::RunFlags;
pub use loop_core::EventRecord as Event;
pub use loop_core::projection::{RunView as Run, StepView as Step};
pub use meta::{Artifact, ErrorBody, Health, OutputChunk};
pub use runs::CreateRun;
