//! The properties loop's fuzz targets check, as plain functions.
//!
//! Each target in `fuzz_targets/` is a thin shell around one function here, so the same check
//! runs under libFuzzer (`cargo +nightly fuzz run`, see `README.md`) and, on the stable
//! toolchain, over the checked-in corpus as an ordinary test (`tests/corpus.rs`).
//!
//! A function here panics when, and only when, a property does not hold: that panic is the crash
//! libFuzzer reports.
//!
//! The targets that read text take the input's bytes as UTF-8, invalid sequences replaced
//! (`String::from_utf8_lossy`), so that every input the fuzzer makes exercises the parser.

mod config;
mod measure;
mod plan;
mod resume;
mod spec;
mod streams;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use loop_core::event::{Event, EventRecord, EventType};

pub use config::config_parse;
pub use measure::measure_output;
pub use plan::plan_parse;
pub use resume::{Resumed, resume_id};
pub use spec::spec_header;
pub use streams::{EXIT_CODES, Streamed, claude_stream, codex_stream};

/// Every fuzz target, by name: its binary in `fuzz_targets/`, its directories under `corpus/`
/// and `regressions/`.
pub const TARGETS: &[&str] = &[
    "event_decode",
    "config_parse",
    "plan_parse",
    "spec_header",
    "claude_stream",
    "codex_stream",
    "resume_id",
    "http_body",
    "measure_output",
];

/// What [`event_decode`] made of its input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The type of the event, when the bytes decode as the contract's JSON envelope.
    pub envelope: Option<EventType>,
    /// The type of the event, when the bytes decode as `TYPE`, a NUL or a newline, then the
    /// payload (the shape of an event row in the store).
    pub row: Option<EventType>,
}

impl Decoded {
    /// The type of the event the bytes decoded as, either way.
    pub fn event_type(&self) -> Option<EventType> {
        self.envelope.or(self.row)
    }
}

/// Decodes arbitrary bytes as an event, two ways, and checks what came out.
///
/// For any bytes, decoding never panics. When the bytes are UTF-8, [`EventRecord::from_json`]
/// and the record's `Deserialize` impl agree on them, and when they decode as an envelope:
/// - encoding the record with [`EventRecord::to_json`] and decoding that gives the same record,
///   and encoding it again gives the same text (the encoding is a fixed point);
/// - [`Event::decode`] of the event's type and [`Event::payload_json`] gives the same event.
///
/// The bytes are also split at the first NUL or newline into a type name and a payload, the way
/// the store keeps a row; when the name is an [`EventType`] and the payload is UTF-8,
/// [`Event::decode`] must not panic, and whatever it decodes must survive the same re-encoding.
pub fn event_decode(data: &[u8]) -> Decoded {
    Decoded {
        envelope: decode_envelope(data),
        row: decode_row(data),
    }
}

fn decode_envelope(data: &[u8]) -> Option<EventType> {
    // The `Deserialize` impl takes the bytes as they come: it must refuse them or decode them.
    let via_serde = serde_json::from_slice::<EventRecord>(data).ok();
    let record = match std::str::from_utf8(data) {
        Ok(text) => {
            let record = EventRecord::from_json(text).ok();
            assert_eq!(
                via_serde, record,
                "from_json and the Deserialize impl disagree\ntext: {text}"
            );
            record?
        }
        // serde_json skips the value of an unknown field without checking its UTF-8, so bytes
        // that are not UTF-8 may still decode this way; what does must pass the same checks.
        Err(_) => via_serde?,
    };

    let json = record.to_json();
    let again = EventRecord::from_json(&json)
        .unwrap_or_else(|e| panic!("a record's own JSON does not decode: {e}\njson: {json}"));
    assert_eq!(
        again, record,
        "the envelope does not round-trip\njson: {json}"
    );
    assert_eq!(
        again.to_json(),
        json,
        "encoding a decoded record changes its JSON"
    );

    check_event(&record.event);
    Some(record.event.event_type())
}

fn decode_row(data: &[u8]) -> Option<EventType> {
    let split = data.iter().position(|&b| b == 0 || b == b'\n')?;
    let (name, payload) = (&data[..split], &data[split + 1..]);
    let event_type: EventType = std::str::from_utf8(name).ok()?.parse().ok()?;
    assert_eq!(
        event_type.as_str().as_bytes(),
        name,
        "a type parses from a name that is not its own"
    );
    let event = Event::decode(event_type, std::str::from_utf8(payload).ok()?).ok()?;
    assert_eq!(event.event_type(), event_type, "decode gave another type");
    check_event(&event);
    Some(event_type)
}

/// An event's payload re-encodes to JSON that decodes as the same event.
fn check_event(event: &Event) {
    let event_type = event.event_type();
    assert_eq!(
        event_type.as_str().parse::<EventType>().ok(),
        Some(event_type),
        "a type's name does not parse back"
    );
    let payload = event.payload_json();
    let decoded = Event::decode(event_type, &payload)
        .unwrap_or_else(|e| panic!("an event's own payload does not decode: {e}\n{payload}"));
    assert_eq!(
        &decoded, event,
        "the payload does not round-trip\n{payload}"
    );
    // The JSON value form must never fail either (it is built the same way, by serde).
    let _ = event.payload_value();
}

/// The files a target's corpus holds: each regular file directly under `dir`, sorted by name.
/// A directory that does not exist holds none.
pub fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// The `main` of a target's binary built without `--cfg fuzzing`: replays the files and
/// directories given as arguments (by default the target's `corpus/` and `regressions/`) through
/// `check`, which tells whether the parser accepted the input. Fails when any input breaks the
/// property (the panic hook has printed which) or cannot be read.
pub fn replay_main(target: &str, accepted: &str, check: impl Fn(&[u8]) -> bool) -> ExitCode {
    let given: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let inputs = if given.is_empty() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        vec![
            root.join("corpus").join(target),
            root.join("regressions").join(target),
        ]
    } else {
        given.clone()
    };
    let mut files = Vec::new();
    for input in &inputs {
        if input.is_dir() {
            files.extend(corpus_files(input));
        } else if input.is_file() {
            files.push(input.clone());
        } else if !given.is_empty() {
            eprintln!("{}: no such file or directory", input.display());
            return ExitCode::FAILURE;
        }
    }

    let (mut yes, mut failed) = (0, 0);
    for file in &files {
        let data = match fs::read(file) {
            Ok(data) => data,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                failed += 1;
                continue;
            }
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data))) {
            Ok(outcome) => yes += usize::from(outcome),
            Err(_) => {
                eprintln!("FAILED: {}", file.display());
                failed += 1;
            }
        }
    }
    println!(
        "{target}: replayed {} inputs, {yes} {accepted}, {failed} failed",
        files.len()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The input as text, invalid UTF-8 replaced.
fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Reads arbitrary bytes as a `POST /runs` body the way `loopd` does ([`CreateRun::from_json`],
/// then its configuration layer).
///
/// Never panics; a refusal says what is wrong; an accepted body becomes a layer whose keys
/// come from the body's `config` object and run fields (no key is invented), and decoding the
/// same bytes again gives the same request.
pub fn http_body(data: &[u8]) -> bool {
    use loop_api::CreateRun;
    match CreateRun::from_json(data) {
        Ok(body) => {
            let again = CreateRun::from_json(data).expect("the same body decodes twice");
            assert_eq!(body, again, "decoding is not stable");
            assert!(!body.spec_path.is_empty() || data.windows(9).any(|w| w == b"spec_path"));
            match body.layer() {
                Ok(layer) => {
                    for key in layer.keys() {
                        assert!(
                            loop_core::config::find_key(key).is_some(),
                            "an invented key {key}"
                        );
                    }
                }
                Err(error) => assert!(!error.to_string().is_empty(), "an error without a message"),
            }
            true
        }
        Err(error) => {
            assert!(!error.to_string().is_empty(), "an error without a message");
            false
        }
    }
}
