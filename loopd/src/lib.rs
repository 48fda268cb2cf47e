//! The daemon as a library: [`serve`] runs `loopd` with its [`Options`]; [`app`] is the HTTP
//! API over a [`loop_runtime::Runtime`], for tests and other front ends.

mod api;
mod artifacts;
mod error;
mod guard;
mod insight;
mod memory;
mod metrics;
mod openapi;
mod options;
mod peer;
mod protocol_errors;
mod review;
mod serve;
mod server;
mod sse;
mod token;

pub use api::{AppState, app, decode_body, run_request_from_body};
pub use error::ApiError;
pub use guard::Guard;
pub use options::Options;
pub use serve::serve;
