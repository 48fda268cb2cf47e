//! Fuzz target: arbitrary text parsed as a checklist plan ([`loop_fuzz::plan_parse`]).
//!
//! Built by `cargo fuzz`, which sets `--cfg fuzzing`, this is a libFuzzer target. Built any other
//! way (`cargo build` on stable) it is a program that replays inputs through the same check:
//! `plan_parse [FILE_OR_DIR]...`, by default this target's corpus and regressions. It exits
//! non-zero when any input breaks the property.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = loop_fuzz::plan_parse(data);
});

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    loop_fuzz::replay_main("plan_parse", "with tasks", |data| {
        !loop_fuzz::plan_parse(data).tasks.is_empty()
    })
}
