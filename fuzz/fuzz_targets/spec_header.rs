//! Fuzz target: arbitrary text parsed as a spec's header ([`loop_fuzz::spec_header`]).
//!
//! Built by `cargo fuzz`, which sets `--cfg fuzzing`, this is a libFuzzer target. Built any other
//! way (`cargo build` on stable) it is a program that replays inputs through the same check:
//! `spec_header [FILE_OR_DIR]...`, by default this target's corpus and regressions. It exits
//! non-zero when any input breaks the property.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = loop_fuzz::spec_header(data);
});

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    loop_fuzz::replay_main("spec_header", "with a title", |data| {
        loop_fuzz::spec_header(data).title.is_some()
    })
}
