//! What a person following a step sees besides the agent's text: a line per tool call as it
//! starts, and a heartbeat while the agent is quiet for long.

use std::time::Duration;

use loop_core::event::Tokens;

/// `● Bash(cargo test)`.
pub(crate) fn tool_line(call: &str) -> String {
    format!("● {call}")
}

/// `  ⎿  3 passed … +12 lines`: what a tool call answered, under it.
pub(crate) fn result_line(summary: &str) -> String {
    format!("  ⎿  {summary}")
}

/// `… still working: 4m 10s, 12,345 tokens so far`: what a long silent call has used.
pub(crate) fn heartbeat(
    running: Duration,
    tokens: Option<Tokens>,
    cost_usd: Option<f64>,
) -> String {
    let secs = running.as_secs();
    let mut line = match secs {
        0..60 => format!("… still working: {secs}s"),
        60..3600 => format!("… still working: {}m {}s", secs / 60, secs % 60),
        _ => format!("… still working: {}h {}m", secs / 3600, secs % 3600 / 60),
    };
    if let Some(tokens) = tokens.filter(|t| t.input + t.output > 0) {
        line.push_str(&format!(
            ", {} tokens in, {} out so far",
            tokens.input, tokens.output
        ));
    }
    if let Some(cost) = cost_usd {
        line.push_str(&format!(", ${cost:.2}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_says_how_long_and_how_much() {
        let tokens = Tokens {
            input: 12_000,
            output: 340,
            ..Tokens::default()
        };
        assert_eq!(
            heartbeat(Duration::from_secs(250), Some(tokens), None),
            "… still working: 4m 10s, 12000 tokens in, 340 out so far"
        );
        assert_eq!(
            heartbeat(Duration::from_secs(59), None, Some(0.5)),
            "… still working: 59s, $0.50"
        );
        assert_eq!(tool_line("Bash(cargo test)"), "● Bash(cargo test)");
        assert_eq!(result_line("3 passed"), "  ⎿  3 passed");
    }
}
