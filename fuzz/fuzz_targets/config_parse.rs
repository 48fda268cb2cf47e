//! Fuzz target: arbitrary text parsed as a `.loop/config` file ([`loop_fuzz::config_parse`]).
//!
//! Built by `cargo fuzz`, which sets `--cfg fuzzing`, this is a libFuzzer target. Built any other
//! way (`cargo build` on stable) it is a program that replays inputs through the same check:
//! `config_parse [FILE_OR_DIR]...`, by default this target's corpus and regressions. It exits
//! non-zero when any input breaks the property.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = loop_fuzz::config_parse(data);
});

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    loop_fuzz::replay_main("config_parse", "parsed", |data| {
        loop_fuzz::config_parse(data).is_ok()
    })
}
