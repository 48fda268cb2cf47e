//! The daemon as a library: [`serve`] runs `loopd` with its [`Options`]; [`app`] is the HTTP
//! API over a [`loop_runtime::Runtime`], for tests and other front ends.

mod accounts_file;
mod app;
mod dashboard;
mod error;
mod extract;
mod guard;
mod host;
mod memory;
mod metrics;
mod node;
mod openapi;
mod options;
mod peer;
mod prices_file;
mod protocol_errors;
mod proxy;
mod routes;
pub mod secrets;
mod serve;
mod server;
mod session;
mod sse;
mod state;
mod token;

pub use app::app;
pub use error::ApiError;
pub use extract::decode_body;
pub use guard::Guard;
pub use options::Options;
pub use routes::runs::run_request;
pub use serve::serve;
pub use state::AppState;
