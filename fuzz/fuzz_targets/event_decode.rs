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
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;

    let mut inputs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if inputs.is_empty() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        inputs = vec![
            root.join("corpus/event_decode"),
            root.join("regressions/event_decode"),
        ];
    }
    let mut files = Vec::new();
    for input in &inputs {
        if input.is_dir() {
            files.extend(loop_fuzz::corpus_files(input));
        } else if input.is_file() {
            files.push(input.clone());
        } else if std::env::args_os().len() > 1 {
            eprintln!("{}: no such file or directory", input.display());
            return ExitCode::FAILURE;
        }
    }

    let (mut decoded, mut failed) = (0, 0);
    for file in &files {
        let data = match std::fs::read(file) {
            Ok(data) => data,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                failed += 1;
                continue;
            }
        };
        match std::panic::catch_unwind(|| loop_fuzz::event_decode(&data)) {
            Ok(outcome) => decoded += usize::from(outcome.event_type().is_some()),
            Err(_) => {
                // The panic hook has already printed the broken property.
                eprintln!("FAILED: {}", file.display());
                failed += 1;
            }
        }
    }
    println!(
        "event_decode: replayed {} inputs, {decoded} decoded as events, {failed} failed",
        files.len()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
