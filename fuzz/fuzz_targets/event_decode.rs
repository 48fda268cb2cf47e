//! Fuzz target: arbitrary bytes decoded as an event ([`loop_fuzz::event_decode`]).
//!
//! Built by `cargo fuzz`, which sets `--cfg fuzzing`, this is a libFuzzer target. Built any other
//! way (`cargo build` on stable) it is a program that replays inputs through the same check:
//! `event_decode [FILE_OR_DIR]...`, by default this target's corpus and regressions. It exits
//! non-zero when any input breaks the property.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    loop_fuzz::event_decode(data);
});

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    loop_fuzz::replay_main("event_decode", "decoded as events", |data| {
        loop_fuzz::event_decode(data).event_type().is_some()
    })
}
