//! Fuzz target: arbitrary bytes read as Claude Code's `stream-json` output ([`loop_fuzz::claude_stream`]).
//!
//! Built by `cargo fuzz`, which sets `--cfg fuzzing`, this is a libFuzzer target. Built any other
//! way (`cargo build` on stable) it is a program that replays inputs through the same check:
//! `claude_stream [FILE_OR_DIR]...`, by default this target's corpus and regressions. It exits
//! non-zero when any input breaks the property.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = loop_fuzz::claude_stream(data);
});

#[cfg(not(fuzzing))]
fn main() -> std::process::ExitCode {
    loop_fuzz::replay_main("claude_stream", "with events", |data| {
        loop_fuzz::claude_stream(data).lines.events > 0
    })
}
