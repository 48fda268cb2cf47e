//! The handlers, one module per group of routes. Each carries its `#[utoipa::path]`, which is
//! how it gets into the router ([`crate::openapi::Routes`]) and the OpenAPI document.

pub mod artifacts;
pub mod insight;
pub mod meta;
pub mod plan;
pub mod review;
pub mod runs;
pub mod streams;
pub mod workspace;
