use super::*;
use crate::agent_stream::{CallEnd, When};

const NOW: i64 = 1_790_000_000_000;

fn transcript(lines: &[&str]) -> ClaudeTranscript {
    let mut stream = ClaudeStream::new();
    for line in lines {
        stream.feed(line);
    }
    stream.finish()
}

const INIT: &str = r#"{"type":"system","subtype":"init","session_id":"s-1","model":"claude-sonnet-4-5","cwd":"/w","tools":["Bash"],"permissionMode":"bypassPermissions"}"#;

#[test]
fn collects_session_answer_cost_and_usage() {
    let t = transcript(&[
        INIT,
        r#"{"type":"assistant","message":{"model":"claude-sonnet-4-5","content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"Looking."},{"type":"tool_use","id":"t1","name":"Bash","input":{}}]}}"#,
        r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":"API Error: 529 overloaded"}]}}"#,
        r#"{"type":"assistant","message":{"content":[{"type":"text","text":"Done."},{"type":"text","text":"<promise>COMPLETE</promise>"}]}}"#,
        r#"{"type":"result","subtype":"success","is_error":false,"session_id":"s-2","num_turns":2,"duration_ms":900,"total_cost_usd":0.25,"usage":{"input_tokens":10,"output_tokens":20,"cache_read_input_tokens":30}}"#,
    ]);
    assert_eq!(t.session_id.as_deref(), Some("s-2"));
    assert_eq!(t.model.as_deref(), Some("claude-sonnet-4-5"));
    assert_eq!(t.answer(), "Looking.\nDone.\n<promise>COMPLETE</promise>");
    let result = t.result.as_ref().unwrap();
    assert_eq!(result.subtype, Some(ResultSubtype::Success));
    assert_eq!(result.total_cost_usd, Some(0.25));
    assert_eq!(
        result.usage,
        Some(ClaudeUsage {
            input_tokens: 10,
            output_tokens: 20,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 30,
        })
    );
    assert_eq!(classify(&t, Some(0), "", &When::utc(NOW)), CallEnd::Success);
}

#[test]
fn tool_results_are_summed_up_on_one_line_each() {
    let t = transcript(&[
        r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"python3 -m unittest -q"}}]}}"#,
        r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":"\n..F\nFAIL: test_total\n\nRan 3 tests"}]}}"#,
        r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t2","is_error":true,"content":[{"type":"text","text":"File does not exist."}]}]}}"#,
        r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t3","content":""}]}}"#,
    ]);
    assert_eq!(t.tool_calls, ["Bash(python3 -m unittest -q)"]);
    assert_eq!(
        t.tool_results,
        [
            "..F … +2 lines",
            "Error: File does not exist.",
            "(no output)"
        ]
    );
}

#[test]
fn the_result_text_is_the_answer_when_present() {
    let t = transcript(&[
        r#"{"type":"assistant","message":{"content":[{"type":"text","text":"thinking aloud"}]}}"#,
        r#"{"type":"result","subtype":"success","is_error":false,"result":"final"}"#,
    ]);
    assert_eq!(t.answer(), "final");
}

#[test]
fn a_clean_result_is_a_success_however_the_process_ended() {
    let t = transcript(&[
        INIT,
        r#"{"type":"result","subtype":"success","is_error":false,"result":"ok"}"#,
    ]);
    for exit in [Some(0), Some(1), Some(143), None] {
        assert_eq!(
            classify(&t, exit, "Killed", &When::utc(NOW)),
            CallEnd::Success,
            "{exit:?}"
        );
    }
}

#[test]
fn a_rejected_rate_limit_is_a_usage_limit_only_when_the_call_was_not_served() {
    let events = [
        INIT,
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed_warning","resetsAt":1790003600,"rateLimitType":"seven_day"}}"#,
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1790010000,"rateLimitType":"five_hour","isUsingOverage":true,"overageStatus":"allowed"}}"#,
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed","resetsAt":1790020000,"rateLimitType":"seven_day"}}"#,
    ];
    // Served from overage: the answer stands.
    let served = transcript(
        &[
            &events[..],
            &[r#"{"type":"result","subtype":"success","is_error":false,"result":"ok"}"#],
        ]
        .concat(),
    );
    assert_eq!(
        served.rate_limit.as_ref().map(|limit| &limit.status),
        Some(&RateLimitStatus::Allowed)
    );
    let rejected = served.rejected_rate_limit.as_ref().unwrap();
    assert!(rejected.overage_serves());
    assert_eq!(
        classify(&served, Some(0), "", &When::utc(NOW)),
        CallEnd::Success
    );
    // Not served, and the error says the limit (the overage ran out too): the limit, until
    // the window's reset.
    let limit =
        r#"{"type":"result","subtype":"success","is_error":true,"result":"You've hit your limit"}"#;
    let lines: Vec<&str> = events.iter().copied().chain([limit]).collect();
    let end = classify(&transcript(&lines), Some(1), "", &When::utc(NOW));
    assert!(
        matches!(
            end,
            CallEnd::UsageLimit {
                until_ms: 1_790_010_060_000,
                ..
            }
        ),
        "{end:?}"
    );
    // Not served for another reason (the process died): a failed attempt to retry, not
    // hours of waiting for the window.
    let end = classify(&transcript(&events), Some(1), "", &When::utc(NOW));
    assert_eq!(end.as_str(), "failed", "{end:?}");
    // A window that refused without overage is the limit whatever ended the call.
    let plain = events[2].replace(r#","isUsingOverage":true,"overageStatus":"allowed""#, "");
    let lines = [INIT, plain.as_str()];
    let end = classify(&transcript(&lines), Some(1), "", &When::utc(NOW));
    assert!(
        matches!(end, CallEnd::UsageLimit { until_ms: 1_790_010_060_000, window: Some(ref w), .. } if w == "five_hour"),
        "{end:?}"
    );
}

#[test]
fn an_answer_that_reads_like_an_error_is_still_an_answer() {
    for text in [
        "API Error: the handler now returns 502 on upstream failure",
        "Claude AI usage limit reached|1790006400",
    ] {
        let line = format!(
            r#"{{"type":"result","subtype":"success","is_error":false,"result":{}}}"#,
            serde_json::to_string(text).unwrap()
        );
        let t = transcript(&[INIT, &line]);
        assert_eq!(
            classify(&t, Some(0), "", &When::utc(NOW)),
            CallEnd::Success,
            "{text}"
        );
    }
}

#[test]
fn a_rejection_without_reset_time_reads_it_from_the_message() {
    let t = transcript(&[
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected"}}"#,
        r#"{"type":"assistant","message":{"model":"<synthetic>","content":[{"type":"text","text":"You've hit your limit · resets 5pm (Europe/Lisbon)"}]},"is_api_error_message":true,"error":"rate_limit"}"#,
    ]);
    assert_eq!(
        t.api_error.as_ref().unwrap().error.as_deref(),
        Some("rate_limit")
    );
    assert!(t.assistant_texts.is_empty());
    assert!(matches!(
        classify(&t, Some(1), "", &When::utc(NOW)),
        CallEnd::UsageLimit {
            until_ms: 1_790_006_460_000,
            ..
        }
    ));
}

#[test]
fn errors_are_read_by_subtype_status_and_text() {
    let result = |fields: &str| transcript(&[&format!(r#"{{"type":"result",{fields}}}"#)]);
    let cases = [
        (
            r#""subtype":"error_max_turns","is_error":true,"num_turns":4"#,
            "failed",
            "turn limit after 4 turns",
        ),
        (
            r#""subtype":"error_max_turns","is_error":false"#,
            "failed",
            "turn limit",
        ),
        (
            r#""subtype":"error_max_budget_usd","is_error":true,"total_cost_usd":2.5"#,
            "failed",
            "$2.50",
        ),
        (
            r#""subtype":"success","is_error":true,"api_error_status":429,"result":"You've hit your limit · resets 5pm (Europe/Lisbon)""#,
            "usage_limit",
            "hit your limit",
        ),
        (
            r#""subtype":"success","is_error":true,"api_error_status":529,"result":"API Error: Repeated 529 Overloaded errors""#,
            "transient",
            "overloaded",
        ),
        (
            r#""subtype":"success","is_error":true,"api_error_status":403,"terminal_reason":"api_error","result":"Your organization has disabled access""#,
            "auth",
            "(403)",
        ),
        (
            r#""subtype":"success","is_error":true,"result":"Not logged in · Please run /login""#,
            "auth",
            "run `claude` once and log in",
        ),
        (
            r#""subtype":"error_during_execution","is_error":true"#,
            "failed",
            "during execution",
        ),
        (
            r#""subtype":"success","is_error":true,"terminal_reason":"prompt_too_long","result":"Prompt is too long""#,
            "failed",
            "(prompt_too_long) (Prompt is too long)",
        ),
        (
            r#""subtype":"success","is_error":true,"result":"Claude AI usage limit reached|1790006400""#,
            "usage_limit",
            "2026-09-21T16:00:00.000Z",
        ),
    ];
    for (fields, kind, part) in cases {
        let end = classify(&result(fields), Some(1), "", &When::utc(NOW));
        assert_eq!(end.as_str(), kind, "{fields}: {end:?}");
        assert!(end.reason().contains(part), "{fields}: {end:?}");
    }
}

#[test]
fn without_a_result_the_exit_and_stderr_decide() {
    let started = transcript(&[
        INIT,
        r#"{"type":"assistant","message":{"content":[{"type":"text","text":"working"}]}}"#,
    ]);
    assert_eq!(
        classify(&started, Some(0), "", &When::utc(NOW)),
        CallEnd::Success
    );
    let end = classify(&started, Some(137), "out of memory\n", &When::utc(NOW));
    assert_eq!(end.as_str(), "failed");
    assert!(end.reason().contains("exit code 137"), "{end:?}");
    assert!(end.reason().ends_with("out of memory"), "{end:?}");
    let end = classify(&started, None, "", &When::utc(NOW));
    assert!(end.reason().contains("signal"), "{end:?}");
    let silent = transcript(&[INIT]);
    assert_eq!(
        classify(&silent, Some(0), "", &When::utc(NOW)).as_str(),
        "failed"
    );
    assert_eq!(
        classify(
            &silent,
            Some(1),
            "Invalid API key · Please run /login",
            &When::utc(NOW)
        )
        .as_str(),
        "auth"
    );
}

#[test]
fn each_model_is_named_once_and_unused_ones_not_at_all() {
    // As the stub prints it after a real 2.1.x run: the 1M-context tag in `init` and
    // `modelUsage`, not in the messages; a model set up but never called with zero usage.
    let t = transcript(&[
        r#"{"type":"system","subtype":"init","session_id":"s","model":"claude-opus-4-7[1m]"}"#,
        r#"{"type":"assistant","message":{"id":"m1","model":"claude-opus-4-7","content":[{"type":"text","text":"ok"}]}}"#,
        r#"{"type":"result","subtype":"success","is_error":false,"result":"ok","modelUsage":{"claude-haiku-4-5-20251001":{},"claude-opus-4-7[1m]":{"inputTokens":3,"outputTokens":9,"costUSD":0.01}}}"#,
    ]);
    assert_eq!(t.figures().detail.models, ["claude-opus-4-7"]);
    assert_eq!(model_name("claude-sonnet-4-5 [1m] "), "claude-sonnet-4-5");
}

#[test]
fn every_window_reported_is_kept_by_its_type() {
    let t = transcript(&[
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed","resetsAt":1790003600,"rateLimitType":"five_hour","utilization":0.2}}"#,
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed_warning","resetsAt":1790500000,"rateLimitType":"seven_day_opus","utilization":0.8}}"#,
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed","resetsAt":1790003600,"rateLimitType":"five_hour","utilization":0.3}}"#,
    ]);
    let windows = t.figures().detail.windows;
    let seen: Vec<(Option<&str>, Option<f64>)> = windows
        .iter()
        .map(|w| (w.window.as_deref(), w.utilization))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("five_hour"), Some(0.3)),
            (Some("seven_day_opus"), Some(0.8))
        ]
    );
}

#[test]
fn a_model_s_weekly_limit_names_its_window() {
    let t = transcript(&[
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1790013600,"rateLimitType":"seven_day_opus"}}"#,
        r#"{"type":"result","subtype":"success","is_error":true,"result":"You've hit your limit"}"#,
    ]);
    assert!(matches!(
        classify(&t, Some(1), "", &When::utc(NOW)),
        CallEnd::UsageLimit { window: Some(window), .. } if window == "seven_day_opus"
    ));
}

#[test]
fn odd_fields_cost_the_field_not_the_event() {
    let t = transcript(&[
        r#"{"type":"system","subtype":"init","session_id":7,"model":"m"}"#,
        r#"{"type":"result","subtype":5,"is_error":"yes","result":["x"],"num_turns":-1,"total_cost_usd":"1","usage":{"input_tokens":"9","output_tokens":3},"api_error_status":70000}"#,
        r#"{"type":"brand_new_event","anything":1}"#,
        r#"{"type":"assistant","message":"not an object"}"#,
    ]);
    assert_eq!(t.model.as_deref(), Some("m"));
    assert_eq!(t.session_id, None);
    let result = t.result.as_ref().unwrap();
    assert_eq!(result.subtype, None);
    assert!(!result.is_error);
    assert_eq!(result.result, None);
    assert_eq!(result.num_turns, None);
    assert_eq!(result.api_error_status, None);
    assert_eq!(result.usage.unwrap().output_tokens, 3);
    assert_eq!(t.lines.unknown, 1);
    assert_eq!(t.lines.events, 4);
}
