//! The agents' output, as real CLIs printed it (`tests/data/agents/real/`, each session with
//! its provenance) and as composed from `design/agents.md` for shapes no public transcript
//! shows (`tests/data/agents/{claude,codex}/`, see the README there). Each `<name>.jsonl` is a
//! call's stdout, `<name>.stderr` (if any) its stderr tail, and `<name>.expected` says, one
//! fact a line (`#` starts a comment):
//!
//! - `exit 0`, `exit 137` or `exit signal`: how the process ended; `at <unix s>`: when the
//!   call was made, for a reset given as a clock time (else [`NOW`]);
//! - `end success|transient|auth|failed|usage_limit`, or `end usage_limit <until_ms>`: the
//!   classification; `resets_at <unix s>`: the reset a usage limit names;
//! - `cost <usd>`, `tokens input=.. cached=.. output=.. [cache_creation=..] [cache_write=..]
//!   [reasoning=..]` as the CLI printed them (Claude's `input` is its uncached input and its
//!   cache writes are `cache_creation`; Codex's `input` includes `cached` and `cache_write`),
//!   `session <id>`, `answer <text>` (`\n` for a newline), `models a,b` (the models named, each
//!   once, none with zero usage);
//! - `skipped N`, `bad N`, `unknown N` for the line counts.
//!
//! Then properties: no line makes a stream or a classification panic, and a stream reads the
//! same whether its lines end in `\r\n` or `\n`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use loop_core::agent_stream::{
    CallEnd, CallFigures, ClaudeStream, ClaudeTranscript, CodexStream, CodexTranscript, LineStats,
    RESET_MARGIN_MS, When, claude, codex,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// 2026-09-21T14:13:20Z: the fixtures' "now".
const NOW: i64 = 1_790_000_000_000;

#[derive(Clone, Copy, Debug)]
enum Agent {
    Claude,
    Codex,
}

/// What a call's output amounts to.
struct Outcome {
    end: CallEnd,
    answer: String,
    figures: CallFigures,
    lines: LineStats,
}

fn run(agent: Agent, lines: &[&str], exit_code: Option<i32>, stderr: &str) -> Outcome {
    run_at(agent, lines, exit_code, stderr, NOW)
}

fn run_at(
    agent: Agent,
    lines: &[&str],
    exit_code: Option<i32>,
    stderr: &str,
    now_ms: i64,
) -> Outcome {
    let when = When::utc(now_ms);
    match agent {
        Agent::Claude => {
            let t = claude_transcript(lines);
            Outcome {
                end: claude::classify(&t, exit_code, stderr, &when),
                answer: t.answer(),
                figures: t.figures(),
                lines: t.lines,
            }
        }
        Agent::Codex => {
            let t = codex_transcript(lines);
            Outcome {
                end: codex::classify(&t, exit_code, stderr, &when),
                answer: t.answer.clone().unwrap_or_default(),
                figures: t.figures(),
                lines: t.lines,
            }
        }
    }
}

fn claude_transcript<S: AsRef<str>>(lines: &[S]) -> ClaudeTranscript {
    let mut stream = ClaudeStream::new();
    lines.iter().for_each(|line| stream.feed(line.as_ref()));
    stream.finish()
}

fn codex_transcript<S: AsRef<str>>(lines: &[S]) -> CodexTranscript {
    let mut stream = CodexStream::new();
    lines.iter().for_each(|line| stream.feed(line.as_ref()));
    stream.finish()
}

fn data(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/agents")
        .join(dir)
}

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = data(dir);
    let mut found: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    found.sort();
    found
}

/// `input=3 cached=0 output=6` as numbers by name (a missing one is 0).
fn counts(text: &str) -> BTreeMap<&str, u64> {
    text.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key, value.parse().expect("a token count")))
        .collect()
}

/// The recorded tokens as the `.expected` line states them, in the CLI's own terms.
fn tokens_as_printed(agent: Agent, figures: &CallFigures) -> String {
    let Some(tokens) = figures.tokens else {
        return "none".to_owned();
    };
    match agent {
        Agent::Claude => format!(
            "uncached input + cache writes={} cached={} cache_write={} output={}",
            tokens.input - tokens.cached,
            tokens.cached,
            tokens.cache_write,
            tokens.output
        ),
        Agent::Codex => format!(
            "input={} cached={} cache_write={} output={} reasoning={}",
            tokens.input, tokens.cached, tokens.cache_write, tokens.output, tokens.reasoning
        ),
    }
}

fn tokens_expected(agent: Agent, want: &str) -> String {
    let n = counts(want);
    let get = |key: &str| n.get(key).copied().unwrap_or(0);
    match agent {
        Agent::Claude => format!(
            "uncached input + cache writes={} cached={} cache_write={} output={}",
            get("input") + get("cache_creation"),
            get("cached"),
            get("cache_creation"),
            get("output")
        ),
        Agent::Codex => format!(
            "input={} cached={} cache_write={} output={} reasoning={}",
            get("input"),
            get("cached"),
            get("cache_write"),
            get("output"),
            get("reasoning")
        ),
    }
}

/// Checks one fixture against its `.expected`; returns the mismatches.
fn check(agent: Agent, jsonl: &Path) -> Vec<String> {
    let name = jsonl.file_stem().unwrap().to_string_lossy().into_owned();
    let stdout = fs::read_to_string(jsonl).expect("readable fixture");
    let stderr = fs::read_to_string(jsonl.with_extension("stderr")).unwrap_or_default();
    let expected = fs::read_to_string(jsonl.with_extension("expected"))
        .unwrap_or_else(|_| panic!("{name}: no .expected beside it"));
    // Split on `\n` alone, so CRLF fixtures hand their `\r` to the stream.
    let lines: Vec<&str> = stdout.split_terminator('\n').collect();
    let mut facts: Vec<(&str, &str)> = expected
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| line.split_once(' ').unwrap_or((line, "")))
        .collect();
    let exit_code = match facts.iter().find(|(key, _)| *key == "exit") {
        Some((_, "signal")) => None,
        Some((_, code)) => Some(code.trim().parse().expect("exit code")),
        None => panic!("{name}: .expected has no `exit` line"),
    };
    let now_ms = match facts.iter().find(|(key, _)| *key == "at") {
        Some((_, at)) => at.trim().parse::<i64>().expect("unix seconds") * 1000,
        None => NOW,
    };
    let outcome = run_at(agent, &lines, exit_code, &stderr, now_ms);
    let figures = &outcome.figures;
    let mut mismatches = Vec::new();
    facts.retain(|(key, _)| *key != "exit" && *key != "at");
    for (key, want) in facts {
        let want = want.trim();
        let (got, want) = match key {
            "end" => match &outcome.end {
                CallEnd::UsageLimit { until_ms, .. } if want.contains(' ') => {
                    (format!("usage_limit {until_ms}"), want.to_owned())
                }
                other => (other.as_str().to_owned(), want.to_owned()),
            },
            "resets_at" => {
                let got = match &outcome.end {
                    CallEnd::UsageLimit { until_ms, .. } => {
                        ((until_ms - RESET_MARGIN_MS) / 1000).to_string()
                    }
                    other => format!("no usage limit ({other:?})"),
                };
                (got, want.to_owned())
            }
            "cost" => {
                let got = figures
                    .cost_usd
                    .map_or("none".to_owned(), |c| c.to_string());
                let want = want.parse::<f64>().expect("a cost").to_string();
                (got, want)
            }
            "tokens" => (
                tokens_as_printed(agent, figures),
                tokens_expected(agent, want),
            ),
            "session" => (
                figures.detail.session_id.clone().unwrap_or_default(),
                want.to_owned(),
            ),
            "answer" => (outcome.answer.replace('\n', "\\n"), want.to_owned()),
            "models" => (figures.detail.models.join(","), want.to_owned()),
            "skipped" => (outcome.lines.skipped.to_string(), want.to_owned()),
            "bad" => (outcome.lines.bad.to_string(), want.to_owned()),
            "unknown" => (outcome.lines.unknown.to_string(), want.to_owned()),
            other => panic!("{name}: unknown fact `{other}`"),
        };
        if got != want {
            mismatches.push(format!(
                "{agent:?}/{name}: {key} is `{got}`, expected `{want}` ({:?})",
                outcome.end
            ));
        }
    }
    mismatches
}

fn check_all(dirs: &[(Agent, &str)]) -> (usize, Vec<String>) {
    let mut mismatches = Vec::new();
    let mut count = 0;
    for (agent, dir) in dirs {
        for fixture in fixtures(dir) {
            mismatches.extend(check(*agent, &fixture));
            count += 1;
        }
    }
    (count, mismatches)
}

#[test]
fn every_real_transcript_is_classified_as_its_real_outcome() {
    let claude = fixtures("real/claude").len();
    let codex = fixtures("real/codex").len();
    assert!(claude >= 15 && codex >= 5, "{claude} Claude, {codex} Codex");
    for dir in ["real/claude", "real/codex"] {
        for fixture in fixtures(dir) {
            let source = fixture.with_extension("source.md");
            assert!(source.is_file(), "{}: no provenance", fixture.display());
        }
    }
    let (_, mismatches) =
        check_all(&[(Agent::Claude, "real/claude"), (Agent::Codex, "real/codex")]);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn every_composed_call_is_classified_as_expected() {
    let (count, mismatches) = check_all(&[(Agent::Claude, "claude"), (Agent::Codex, "codex")]);
    assert!(count >= 30, "only {count} fixtures");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn failures_carry_a_reason_a_person_can_act_on() {
    let reason = |agent, dir: &str, name: &str, exit_code| {
        let path = data(dir).join(format!("{name}.jsonl"));
        let stdout = fs::read_to_string(&path).unwrap();
        let stderr = fs::read_to_string(path.with_extension("stderr")).unwrap_or_default();
        let lines: Vec<&str> = stdout.lines().collect();
        run(agent, &lines, exit_code, &stderr)
            .end
            .reason()
            .to_owned()
    };
    let not_logged_in = reason(Agent::Claude, "claude", "not_logged_in", Some(1));
    assert!(
        not_logged_in.contains("run `claude` once and log in"),
        "{not_logged_in}"
    );
    let crashed = reason(Agent::Claude, "claude", "crash_no_result", Some(134));
    assert!(crashed.contains("exit code 134"), "{crashed}");
    assert!(
        crashed.ends_with("JavaScript heap out of memory"),
        "{crashed}"
    );
    let limit = reason(
        Agent::Claude,
        "claude",
        "usage_limit_hit_your_limit",
        Some(1),
    );
    assert!(limit.contains("2026-09-22T12:00:00.000Z"), "{limit}");
    let codex_auth = reason(Agent::Codex, "codex", "not_logged_in", Some(1));
    assert!(codex_auth.contains("codex login"), "{codex_auth}");
    // A real max-turns stop names its turns; a real error_during_execution quotes `errors`.
    let max_turns = reason(
        Agent::Claude,
        "real/claude",
        "max_turns_with_permission_denial",
        Some(1),
    );
    assert!(max_turns.contains("turn limit"), "{max_turns}");
    let during = reason(
        Agent::Claude,
        "real/claude",
        "error_during_execution_resume_missing",
        Some(1),
    );
    assert!(during.contains("during execution ("), "{during}");
}

// Property tests.

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(128)
}

/// Field names and string values the parsers look at, so generated events reach deep paths.
const KEYS: &[&str] = &[
    "type",
    "subtype",
    "message",
    "content",
    "text",
    "result",
    "is_error",
    "model",
    "is_api_error_message",
    "error",
    "rate_limit_info",
    "status",
    "resetsAt",
    "rateLimitType",
    "usage",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "session_id",
    "thread_id",
    "item",
    "resets_at",
    "resets_in_seconds",
    "api_error_status",
    "num_turns",
    "total_cost_usd",
];
const WORDS: &[&str] = &[
    "init",
    "text",
    "success",
    "error_max_turns",
    "rejected",
    "allowed",
    "<synthetic>",
    "agent_message",
    "usage_limit_reached",
    "You've hit your limit · resets 1pm (Europe/Lisbon)",
    "Claude AI usage limit reached|1790006400",
    "try again in 2 days 3 hours",
    "API Error: 529",
    "resets Feb 29 at 25:99pm (Not/AZone)",
    "resets 12:60am (UTC)",
    "{\"type\":\"usage_limit_reached\"",
];
const TYPES: &[&str] = &[
    "system",
    "assistant",
    "user",
    "stream_event",
    "rate_limit_event",
    "result",
    "thread.started",
    "turn.started",
    "turn.completed",
    "turn.failed",
    "item.started",
    "item.updated",
    "item.completed",
    "error",
    "something_new",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|fields| {
                Value::Object(
                    fields
                        .into_iter()
                        .map(|(key, value)| (key.to_owned(), value))
                        .collect(),
                )
            }),
        ]
    })
}

/// A JSON object with a `type`, serialized as one line.
fn event_line() -> impl Strategy<Value = String> {
    (
        prop::sample::select(TYPES),
        prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..6),
    )
        .prop_map(|(kind, fields)| {
            let mut event: Map<String, Value> = fields
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect();
            event.insert("type".to_owned(), json!(kind));
            Value::Object(event).to_string()
        })
}

fn lines() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![event_line(), any::<String>(), "\\{.{0,20}"],
        0..24,
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_line_makes_a_stream_or_a_classification_panic(
        lines in lines(),
        exit_code in prop::option::of(any::<i32>()),
        stderr in prop_oneof![any::<String>(), prop::sample::select(WORDS).prop_map(str::to_owned)],
        now_ms in prop_oneof![Just(NOW), any::<i64>()],
    ) {
        let claude_t = claude_transcript(&lines);
        let codex_t = codex_transcript(&lines);
        let fed = lines.len() as u64;
        for stats in [claude_t.lines, codex_t.lines] {
            prop_assert_eq!(stats.events + stats.skipped + stats.bad, fed);
            prop_assert!(stats.unknown <= stats.events);
        }
        let _ = claude_t.answer();
        let _ = (claude_t.figures(), codex_t.figures());
        for end in [
            claude::classify(&claude_t, exit_code, &stderr, &When::utc(now_ms)),
            codex::classify(&codex_t, exit_code, &stderr, &When::utc(now_ms)),
        ] {
            if let CallEnd::UsageLimit { until_ms, .. } = end {
                prop_assert!(until_ms >= now_ms);
            }
        }
    }

    #[test]
    fn a_stream_reads_the_same_with_crlf_line_ends(lines in lines()) {
        let crlf: Vec<String> = lines.iter().map(|line| format!("{line}\r")).collect();
        prop_assert_eq!(claude_transcript(&lines), claude_transcript(&crlf));
        prop_assert_eq!(codex_transcript(&lines), codex_transcript(&crlf));
    }
}
