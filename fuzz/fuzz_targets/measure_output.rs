//! Fuzz target: arbitrary text read as a measurement command's output
//! ([`loop_fuzz::measure_output`]).
//!
//! Built by `cargo fuzz`, which sets `--cfg fuzzing`, this is a libFuzzer target. Built any other
//! way (`cargo build` on stable) it is a program that replays inputs through the same check:
//! `measure_output [FILE_OR_DIR]...`, by default this target's corpus and regressions. It exits
//! non-zero when any input breaks the property.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = loop_fuzz::measure_output(data);
});

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    loop_fuzz::replay_main("measure_output", "with a number", |data| {
        loop_fuzz::measure_output(data).is_some()
    })
}
