//! The real `loopd` binary on an ephemeral port with a temp data dir and stub agents.

mod accounts;
mod api;
mod cluster;
mod crash;
mod daemon;
mod dashboard;
mod effects;
mod experiment;
mod faults;
mod hardening;
mod insight;
mod openapi;
mod postgres;
mod streams;
mod support;
