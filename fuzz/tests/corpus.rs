//! Replays every fuzz corpus and every saved regression through its target's check, on the
//! stable toolchain, so the targets are built and exercised by `cargo test` and cannot rot.
//!
//! Layout: `corpus/<target>/` holds seed inputs (and whatever a fuzzing run chose to keep);
//! `regressions/<target>/` holds inputs that once broke a property. Each file is one input.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use loop_core::agent_stream::{CallEnd, LineStats};
use loop_core::event::EventType;
use loop_core::plan::TaskState;
use loop_fuzz::{
    Decoded, TARGETS, claude_stream, codex_stream, config_parse, corpus_files, event_decode,
    plan_parse, resume_id, spec_header,
};

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
            TARGETS.contains(&name),
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

/// A target's check, by name, with its outcome dropped.
fn check_of(target: &str) -> fn(&[u8]) {
    match target {
        "event_decode" => |data| {
            let _ = event_decode(data);
        },
        "config_parse" => |data| {
            let _ = config_parse(data);
        },
        "plan_parse" => |data| {
            let _ = plan_parse(data);
        },
        "spec_header" => |data| {
            let _ = spec_header(data);
        },
        "claude_stream" => |data| {
            let _ = claude_stream(data);
        },
        "codex_stream" => |data| {
            let _ = codex_stream(data);
        },
        "resume_id" => |data| {
            let _ = resume_id(data);
        },
        "http_body" => |data| {
            let _ = loop_fuzz::http_body(data);
        },
        "measure_output" => |data| {
            let _ = loop_fuzz::measure_output(data);
        },
        other => panic!("no check for the target {other:?}: add it here"),
    }
}

#[test]
fn every_target_has_a_binary_seeds_and_a_check() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    for target in TARGETS {
        assert!(
            root().join(format!("fuzz_targets/{target}.rs")).is_file(),
            "no fuzz_targets/{target}.rs"
        );
        assert!(
            manifest.contains(&format!(
                "name = \"{target}\"\npath = \"fuzz_targets/{target}.rs\""
            )),
            "no [[bin]] for {target} in Cargo.toml"
        );
        let seeds = corpus_files(&root().join("corpus").join(target)).len();
        assert!(
            seeds >= 5,
            "corpus/{target} holds {seeds} seeds, fewer than 5"
        );
        check_of(target);
    }
}

#[test]
fn every_target_holds_on_its_corpus_and_regressions() {
    // Regressions are empty until a fuzzing run finds something; see README.md.
    for target in TARGETS {
        for kind in ["corpus", "regressions"] {
            replay(&root().join(kind).join(target), check_of(target));
        }
    }
}

/// Checks seeds named `valid-*` / `bad-*` against whether `accepted` says they were.
fn check_seed_names<T>(outcomes: &[(PathBuf, T)], accepted: impl Fn(&T) -> bool) {
    for (file, outcome) in outcomes {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("valid-") {
            assert!(accepted(outcome), "{name} is refused");
        } else if name.starts_with("bad-") {
            assert!(!accepted(outcome), "{name} is accepted");
        }
    }
}

#[test]
fn config_parse_corpus_holds_and_seed_names_say_whether_they_parse() {
    let corpus = replay(&root().join("corpus/config_parse"), config_parse);
    check_seed_names(&corpus, Result::is_ok);
    assert!(
        corpus
            .iter()
            .any(|(_, r)| r.as_ref().is_ok_and(|l| l.len() >= 10)),
        "no config seed sets many keys"
    );
    assert!(
        corpus
            .iter()
            .any(|(_, r)| r.as_ref().is_err_and(|e| e.line > 1)),
        "no config seed fails after its first line"
    );
}

#[test]
fn plan_parse_corpus_covers_every_task_state() {
    let corpus = replay(&root().join("corpus/plan_parse"), plan_parse);
    let tasks: Vec<_> = corpus.iter().flat_map(|(_, plan)| &plan.tasks).collect();
    for state in [
        TaskState::Pending,
        TaskState::Done,
        TaskState::Reviewed,
        TaskState::Blocked,
    ] {
        assert!(
            tasks.iter().any(|task| task.state == state),
            "no plan seed has a task {state:?}"
        );
    }
    assert!(tasks.iter().any(|task| task.optional), "no optional task");
    assert!(
        tasks.iter().any(|task| !task.optional && !task.blocking),
        "no task in a verification section"
    );
    assert!(
        corpus.iter().any(|(_, plan)| plan.tasks.is_empty()),
        "no plan seed without tasks"
    );
}

#[test]
fn spec_header_corpus_holds_full_and_empty_headers() {
    let corpus = replay(&root().join("corpus/spec_header"), spec_header);
    assert!(
        corpus
            .iter()
            .any(|(_, h)| { h.title.is_some() && h.status.is_some() && h.last_updated.is_some() }),
        "no spec seed has a whole header"
    );
    assert!(
        corpus.iter().any(|(_, h)| *h == Default::default()),
        "no spec seed without a header"
    );
}

/// Every kind of end among a stream corpus's classifications, and lines of every sort.
fn check_stream_corpus(target: &str, corpus: &[(PathBuf, loop_fuzz::Streamed)]) {
    let kinds: BTreeSet<&str> = corpus
        .iter()
        .flat_map(|(_, s)| s.ends.iter().map(CallEnd::as_str))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["auth", "failed", "success", "transient", "usage_limit"]),
        "the {target} corpus does not end every way"
    );
    let counts = |s: &LineStats| [s.events, s.unknown, s.skipped, s.bad];
    for (index, what) in ["events", "unknown events", "skipped lines", "bad lines"]
        .into_iter()
        .enumerate()
    {
        assert!(
            corpus.iter().any(|(_, s)| counts(&s.lines)[index] > 0),
            "no {target} seed has {what}"
        );
    }
}

#[test]
fn measure_output_seed_names_say_whether_they_read() {
    // `bad-*` seeds give no number; the others give one.
    for (file, read) in replay(
        &root().join("corpus/measure_output"),
        loop_fuzz::measure_output,
    ) {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert_eq!(read.is_none(), name.starts_with("bad-"), "{name}: {read:?}");
    }
}

#[test]
fn claude_stream_corpus_ends_every_way() {
    let corpus = replay(&root().join("corpus/claude_stream"), claude_stream);
    check_stream_corpus("claude_stream", &corpus);
}

#[test]
fn codex_stream_corpus_ends_every_way() {
    let corpus = replay(&root().join("corpus/codex_stream"), codex_stream);
    check_stream_corpus("codex_stream", &corpus);
}

#[test]
fn resume_id_seed_names_say_how_they_read() {
    // `event-*` seeds read as an event seq, `output-*` as an output position, `bad-*` as
    // neither.
    for (file, resumed) in replay(&root().join("corpus/resume_id"), resume_id) {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let read = (resumed.event.is_ok(), resumed.output.is_ok());
        if name.starts_with("event-") {
            assert_eq!(read, (true, false), "{name}: {resumed:?}");
        } else if name.starts_with("output-") {
            assert_eq!(read, (false, true), "{name}: {resumed:?}");
        } else if name.starts_with("bad-") {
            assert_eq!(read, (false, false), "{name}: {resumed:?}");
        }
    }
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

#[test]
fn hand_made_text_inputs_hold() {
    for data in [
        &b""[..],
        b"\n",
        b"\r",
        b"\r\n\r\n",
        b"\0",
        b"\xff",
        b"=",
        b"# ",
        b"- [",
        b"**",
        b"{",
        b"{\"type\":\"result\"}\0",
        b":",
        b"0:0",
    ] {
        for target in TARGETS {
            check_of(target)(data);
        }
    }
}
