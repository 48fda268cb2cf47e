//! Fuzz target: arbitrary text read as an SSE resume position ([`loop_fuzz::resume_id`]).
//!
//! Built by `cargo fuzz`, which sets `--cfg fuzzing`, this is a libFuzzer target. Built any other
//! way (`cargo build` on stable) it is a program that replays inputs through the same check:
//! `resume_id [FILE_OR_DIR]...`, by default this target's corpus and regressions. It exits
//! non-zero when any input breaks the property.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = loop_fuzz::resume_id(data);
});

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    loop_fuzz::replay_main("resume_id", "read as a position", |data| {
        let resumed = loop_fuzz::resume_id(data);
        resumed.event.is_ok() || resumed.output.is_ok()
    })
}
