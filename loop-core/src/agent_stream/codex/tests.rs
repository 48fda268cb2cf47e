use super::*;

const NOW: i64 = 1_790_000_000_000;

/// The shape of a `token_count` of a real codex-cli 0.58.0 session (rate_limits as one
/// person's session log published them; the surrounding fields composed).
#[test]
fn a_rollout_s_last_token_count_gives_its_most_used_window() {
    let rollout = [
        r#"{"timestamp":"2025-11-18T21:55:50.000Z","type":"session_meta","payload":{"id":"019a9776-0a34-7842-8627-112b63d66e90"}}"#,
        r#"{"timestamp":"2025-11-18T21:55:53.328Z","type":"event_msg","payload":{"type":"token_count","info":null,"rate_limits":{"primary":{"used_percent":5.0,"window_minutes":300,"resets_at":1763483205},"secondary":{"used_percent":70.0,"window_minutes":10080,"resets_at":1763606387}}}}"#,
        r#"{"timestamp":"2025-11-18T21:55:56.513Z","type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":{"input_tokens":3420}},"rate_limits":{"primary":{"used_percent":7.0,"window_minutes":300,"resets_at":1763483205},"secondary":{"used_percent":77.0,"window_minutes":10080,"resets_at":1763606387}}}}"#,
        r#"{"timestamp":"2025-11-18T21:55:57.000Z","type":"response_item","payload":{"type":"message"}}"#,
        "not json",
    ]
    .join("\n");
    let seen = rollout_rate_limit(&rollout, NOW).expect("a window");
    assert_eq!(seen.window.as_deref(), Some("seven_day"));
    assert_eq!(seen.utilization, Some(0.77));
    assert_eq!(seen.resets_at_ms, Some(1_763_606_387_000));
    assert_eq!(seen.status, "allowed");
    // Older versions count the reset from the line's time.
    let relative = r#"{"timestamp":"2025-09-01T00:00:00Z","type":"event_msg","payload":{"type":"token_count","rate_limits":{"primary":{"used_percent":100.0,"window_minutes":300,"resets_in_seconds":60}}}}"#;
    let seen = rollout_rate_limit(relative, NOW).expect("a window");
    assert_eq!(seen.resets_at_ms, Some(1_756_684_800_000 + 60_000));
    assert_eq!(
        (seen.status.as_str(), seen.window.as_deref()),
        ("rejected", Some("five_hour"))
    );
    assert_eq!(
        rollout_rate_limit(
            r#"{"type":"event_msg","payload":{"type":"token_count","rate_limits":null}}"#,
            NOW
        ),
        None
    );
}

proptest::proptest! {
    /// Any text: no panic, and a window found is a share of 0 to 1.
    #[test]
    fn any_rollout_text_reads_without_panic(text in "\\PC{0,400}", used in -1e12f64..1e12, reset in proptest::num::i64::ANY) {
        let line = format!(
            r#"{{"type":"event_msg","payload":{{"type":"token_count","rate_limits":{{"primary":{{"used_percent":{used},"resets_at":{reset},"resets_in_seconds":{reset}}}}}}}}}"#
        );
        for input in [text.clone(), line, format!("{text}\n{text}")] {
            if let Some(seen) = rollout_rate_limit(&input, NOW) {
                let share = seen.utilization.expect("a share");
                proptest::prop_assert!((0.0..=1.0).contains(&share));
            }
        }
    }
}

fn transcript(lines: &[&str]) -> CodexTranscript {
    let mut stream = CodexStream::new();
    for line in lines {
        stream.feed(line);
    }
    stream.finish()
}

#[test]
fn collects_thread_answer_and_summed_usage() {
    let t = transcript(&[
        r#"{"type":"thread.started","thread_id":"th-1"}"#,
        r#"{"type":"turn.started"}"#,
        r#"{"type":"item.completed","item":{"id":"i0","type":"agent_message","text":"first"}}"#,
        r#"{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":40,"output_tokens":7}}"#,
        r#"{"type":"turn.started"}"#,
        r#"{"type":"item.completed","item":{"id":"i1","type":"reasoning","text":"hm"}}"#,
        r#"{"type":"item.completed","item":{"id":"i2","type":"agent_message","text":"second"}}"#,
        r#"{"type":"turn.completed","usage":{"input_tokens":50,"output_tokens":3}}"#,
    ]);
    assert_eq!(t.thread_id.as_deref(), Some("th-1"));
    assert_eq!(t.answer.as_deref(), Some("second"));
    assert_eq!((t.turns_started, t.turns_completed), (2, 2));
    assert_eq!(
        t.usage,
        CodexUsage {
            input_tokens: 150,
            cached_input_tokens: 40,
            cache_write_input_tokens: 0,
            output_tokens: 10,
            reasoning_output_tokens: 0,
        }
    );
    assert_eq!(classify(&t, Some(0), "", &When::utc(NOW)), CallEnd::Success);
}

#[test]
fn finds_the_usage_limit_however_it_is_wrapped() {
    let shapes = [
        r#"{"type":"error","error":{"type":"usage_limit_reached","resets_at":1790013600,"resets_in_seconds":13600}}"#,
        r#"{"type":"turn.failed","error":{"message":"limit","error":{"type":"usage_limit_reached","resets_at":"1790013600"}}}"#,
        r#"{"type":"error","message":"Codex error: {\"type\":\"error\",\"error\":{\"type\":\"usage_limit_reached\",\"resets_at\":1790013600},\"status_code\":429}"}"#,
    ];
    for shape in shapes {
        let t = transcript(&[shape]);
        assert_eq!(
            t.usage_limit.and_then(|limit| limit.resets_at_s),
            Some(1_790_013_600),
            "{shape}"
        );
        assert!(
            matches!(
                classify(&t, Some(1), "", &When::utc(NOW)),
                CallEnd::UsageLimit {
                    until_ms: 1_790_013_660_000,
                    ..
                }
            ),
            "{shape}"
        );
    }
    let relative = transcript(&[
        r#"{"type":"turn.failed","error":{"type":"usage_limit_reached","resets_in_seconds":600}}"#,
    ]);
    assert!(matches!(
        classify(&relative, Some(1), "", &When::utc(NOW)),
        CallEnd::UsageLimit { until_ms, .. } if until_ms == NOW + 660_000
    ));
}

#[test]
fn errors_a_later_turn_got_past_do_not_count() {
    let t = transcript(&[
        r#"{"type":"turn.started"}"#,
        r#"{"type":"error","message":"Reconnecting... 1/5"}"#,
        r#"{"type":"item.completed","item":{"type":"agent_message","text":"done"}}"#,
        r#"{"type":"turn.completed","usage":{}}"#,
    ]);
    assert!(t.errors.is_empty());
    assert_eq!(t.recovered_errors, ["Reconnecting... 1/5"]);
    assert_eq!(classify(&t, Some(0), "", &When::utc(NOW)), CallEnd::Success);
}

#[test]
fn failed_turns_are_read_by_their_message() {
    let failing = |message: &str| {
        let error = serde_json::json!({"type": "error", "message": message}).to_string();
        let failed =
            serde_json::json!({"type": "turn.failed", "error": {"message": message}}).to_string();
        transcript(&[r#"{"type":"turn.started"}"#, &error, &failed])
    };
    let t = failing("You've hit your usage limit. Try again in 3 hours 5 minutes.");
    assert_eq!(t.errors.len(), 1, "repeats are kept once");
    assert!(matches!(
        classify(&t, Some(1), "", &When::utc(NOW)),
        CallEnd::UsageLimit { until_ms, .. } if until_ms == NOW + (185 * 60 + 60) * 1000
    ));
    let cases = [
        (
            "exceeded retry limit, last status: 429 Too Many Requests",
            "transient",
        ),
        (
            "unexpected status 401 Unauthorized: please run `codex login`",
            "auth",
        ),
        (
            "unexpected status 400 Bad Request: model not supported",
            "failed",
        ),
    ];
    for (message, kind) in cases {
        assert_eq!(
            classify(&failing(message), Some(1), "", &When::utc(NOW)).as_str(),
            kind,
            "{message}"
        );
    }
}

#[test]
fn without_a_completed_turn_the_exit_and_stderr_decide() {
    let started = transcript(&[
        r#"{"type":"thread.started","thread_id":"t"}"#,
        r#"{"type":"turn.started"}"#,
    ]);
    let end = classify(&started, None, "", &When::utc(NOW));
    assert_eq!(end.as_str(), "failed");
    assert!(end.reason().contains("signal"), "{end:?}");
    assert_eq!(
        classify(&started, Some(0), "", &When::utc(NOW)).as_str(),
        "failed"
    );
    assert_eq!(
        classify(
            &started,
            Some(1),
            "Error: 401 Unauthorized",
            &When::utc(NOW)
        )
        .as_str(),
        "auth"
    );
}
