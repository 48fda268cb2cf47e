//! `claude_stream` and `codex_stream`: an agent's stdout, read a line at a time
//! ([`loop_core::agent_stream`]), and how the call ended (`classify`).

use loop_core::agent_stream::{
    CallEnd, ClaudeStream, ClaudeTranscript, CodexStream, CodexTranscript, LineStats,
    RESET_MARGIN_MS, When, claude, codex,
};

/// The clock `classify` is given: 2026-09-21, as in loop-core's agent tests.
const NOW_MS: i64 = 1_790_000_000_000;

/// The exit codes each transcript is classified with: a clean exit, a failure, a signal.
pub const EXIT_CODES: [Option<i32>; 3] = [Some(0), Some(1), None];

/// What a stream target made of its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Streamed {
    /// The lines fed to the stream.
    pub fed: u64,
    pub lines: LineStats,
    /// How the call ended, for each of [`EXIT_CODES`].
    pub ends: [CallEnd; 3],
}

/// The input as an agent's output: the bytes before the first NUL are stdout, split at `\n`
/// as the runtime splits it (each line decoded on its own, invalid UTF-8 replaced; a last line
/// without its `\n` counts, an empty one does not); the bytes after it are the stderr tail.
fn split(data: &[u8]) -> (Vec<String>, String) {
    let (stdout, stderr) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let mut lines: Vec<String> = stdout
        .split(|&b| b == b'\n')
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    (lines, String::from_utf8_lossy(stderr).into_owned())
}

/// Feeds the lines as they are and, to another stream, each with a `\r` after it.
fn feed_twice<S>(lines: &[String], mut feed: impl FnMut(&mut S, &str), new: fn() -> S) -> [S; 2] {
    let (mut plain, mut crlf) = (new(), new());
    for line in lines {
        feed(&mut plain, line);
        feed(&mut crlf, &format!("{line}\r"));
    }
    [plain, crlf]
}

/// What holds of any stream's counters and ends.
fn check_common(fed: u64, lines: LineStats, ends: &[CallEnd; 3]) {
    assert_eq!(
        lines.events + lines.skipped + lines.bad,
        fed,
        "the line counters do not add up to the {fed} lines fed: {lines:?}"
    );
    assert!(
        lines.unknown <= lines.events,
        "more unknown events than events: {lines:?}"
    );
    for (end, exit_code) in ends.iter().zip(EXIT_CODES) {
        assert_eq!(
            *end == CallEnd::Success,
            end.reason().is_empty(),
            "exit code {exit_code:?}: {end:?} and its reason disagree"
        );
        if let CallEnd::UsageLimit { until_ms, .. } = end {
            assert!(
                *until_ms >= NOW_MS + RESET_MARGIN_MS,
                "exit code {exit_code:?}: a usage limit waits until {until_ms}, before now + \
                 the margin ({NOW_MS} + {RESET_MARGIN_MS})"
            );
        }
    }
}

/// Feeds the input's lines to a [`ClaudeStream`] and classifies the transcript.
///
/// Nothing panics, and:
/// - the transcript so far ([`ClaudeStream::transcript`]) is the one [`ClaudeStream::finish`]
///   gives, and the same lines with `\r\n` endings give the same transcript;
/// - the line counters add up: `events + skipped + bad` is the number of lines fed, and
///   `unknown ≤ events`;
/// - for each of [`EXIT_CODES`]: an end is a success exactly when its reason is empty, and a
///   usage limit waits until at least now + `RESET_MARGIN_MS`;
/// - once a `result` or a rejected `rate_limit_event` came, the exit code does not matter.
pub fn claude_stream(data: &[u8]) -> Streamed {
    let (lines, stderr) = split(data);
    let [plain, crlf] = feed_twice(&lines, ClaudeStream::feed, ClaudeStream::new);
    let so_far = plain.transcript().clone();
    let transcript: ClaudeTranscript = plain.finish();
    assert_eq!(so_far, transcript, "transcript() and finish() differ");
    assert_eq!(
        crlf.finish(),
        transcript,
        "\\r\\n line endings give another transcript"
    );
    let _ = transcript.answer();

    let ends =
        EXIT_CODES.map(|code| claude::classify(&transcript, code, &stderr, &When::utc(NOW_MS)));
    let fed = lines.len() as u64;
    check_common(fed, transcript.lines, &ends);
    if transcript.result.is_some() || transcript.rejected_rate_limit.is_some() {
        assert!(
            ends.iter().all(|end| *end == ends[0]),
            "after a result the exit code still matters: {ends:?}"
        );
    }
    Streamed {
        fed,
        lines: transcript.lines,
        ends,
    }
}

/// Feeds the input's lines to a [`CodexStream`] and classifies the transcript.
///
/// The same properties as [`claude_stream`], except the last: once a usage limit or an error
/// was reported, or a turn completed, the exit code does not matter.
pub fn codex_stream(data: &[u8]) -> Streamed {
    let (lines, stderr) = split(data);
    let [plain, crlf] = feed_twice(&lines, CodexStream::feed, CodexStream::new);
    let so_far = plain.transcript().clone();
    let transcript: CodexTranscript = plain.finish();
    assert_eq!(so_far, transcript, "transcript() and finish() differ");
    assert_eq!(
        crlf.finish(),
        transcript,
        "\\r\\n line endings give another transcript"
    );

    let ends =
        EXIT_CODES.map(|code| codex::classify(&transcript, code, &stderr, &When::utc(NOW_MS)));
    let fed = lines.len() as u64;
    check_common(fed, transcript.lines, &ends);
    if transcript.usage_limit.is_some()
        || !transcript.errors.is_empty()
        || transcript.turns_completed > 0
    {
        assert!(
            ends.iter().all(|end| *end == ends[0]),
            "after an error or a completed turn the exit code still matters: {ends:?}"
        );
    }
    Streamed {
        fed,
        lines: transcript.lines,
        ends,
    }
}
