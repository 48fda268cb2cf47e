//! Replays every fuzz corpus and every saved regression through its target's check, on the
//! stable toolchain, so the targets are built and exercised by `cargo test` and cannot rot.
//!
//! Layout: `corpus/<target>/` holds seed inputs (and whatever a fuzzing run chose to keep);
//! `regressions/<target>/` holds inputs that once broke a property. Each file is one input.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use loop_core::event::EventType;
use loop_fuzz::{Decoded, corpus_files, event_decode};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every target directory under `corpus/` or `regressions/`, e.g. `corpus/event_decode`.
fn target_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root().join(kind)) else {
            continue;
        };
        dirs.extend(
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.is_dir()),
        );
    }
    dirs.sort();
    dirs
}

/// Runs `check` on every file of `dir`, naming the file that breaks it.
fn replay<T>(dir: &Path, check: impl Fn(&[u8]) -> T) -> Vec<(PathBuf, T)> {
    corpus_files(dir)
        .into_iter()
        .map(|file| {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)))
                .unwrap_or_else(|_| panic!("{} breaks the property", file.display()));
            (file, outcome)
        })
        .collect()
}

#[test]
fn every_corpus_directory_belongs_to_a_known_target() {
    // A directory named after a target that no longer exists would never be replayed.
    for dir in target_dirs() {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert!(
            ["event_decode"].contains(&name),
            "{} names no fuzz target replayed here",
            dir.display()
        );
    }
}

#[test]
fn event_decode_corpus_holds_and_covers_every_event_type() {
    let corpus = replay(&root().join("corpus/event_decode"), event_decode);
    assert!(
        corpus.len() >= EventType::ALL.len(),
        "the event_decode corpus is (nearly) empty: {} files",
        corpus.len()
    );

    let envelopes: BTreeSet<EventType> = corpus.iter().filter_map(|(_, d)| d.envelope).collect();
    let missing: Vec<&str> = EventType::ALL
        .iter()
        .filter(|t| !envelopes.contains(t))
        .map(|t| t.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "no corpus file decodes as an envelope of {missing:?}"
    );

    // The corpus also keeps inputs that must be refused, and some in the store's row shape.
    assert!(
        corpus.iter().any(|(_, d)| *d == Decoded::default()),
        "the corpus holds no input that fails to decode"
    );
    assert!(
        corpus.iter().any(|(_, d)| d.row.is_some()),
        "the corpus holds no input in the row shape"
    );
}

#[test]
fn seed_names_say_whether_they_decode() {
    // `valid-*` seeds decode as an envelope, `row-*` seeds as a row unless their name says the
    // row is bad, and `bad-*` seeds decode neither way: a change to the decoder that flips one
    // of these shows up here, not only as lost coverage.
    for (file, decoded) in replay(&root().join("corpus/event_decode"), event_decode) {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("valid-") {
            assert!(decoded.envelope.is_some(), "{name} does not decode");
        } else if name.starts_with("bad-") {
            assert_eq!(decoded, Decoded::default(), "{name} decodes");
        } else if let Some(rest) = name.strip_prefix("row-") {
            let expected_to_fail = rest.starts_with("unknown") || rest.starts_with("invalid");
            assert_eq!(
                decoded.row.is_none(),
                expected_to_fail,
                "{name}: row decodes = {}",
                decoded.row.is_some()
            );
        }
    }
}

#[test]
fn event_decode_regressions_still_hold() {
    // Empty until a fuzzing run finds something; see README.md for how to add one.
    replay(&root().join("regressions/event_decode"), event_decode);
}

#[test]
fn hand_made_inputs_do_not_panic() {
    // A few shapes the corpus files can't hold conveniently, checked directly.
    for data in [
        &b""[..],
        b"\n",
        b"\0",
        b"\n\n\n",
        b"RUN_STARTED\0",
        b"RUN_STARTED\n{}",
        b"STEP_FINISHED\n\xff",
        b"\xff\xfe\n{}",
        b"{}",
        b"[]",
        b"null",
        b"1e999999",
        b"\"\\u0000\"",
    ] {
        event_decode(data);
    }
    assert_eq!(
        event_decode(b"RUN_STARTED\n{}").row,
        Some(EventType::RunStarted)
    );
}
