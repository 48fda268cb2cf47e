//! An account's usage windows, per window and per model: what each was last seen at, and how
//! much of it one call of a model takes, as the log shows it.
//!
//! Claude Code names its windows (`rateLimitType`): `five_hour` and `seven_day` count every
//! call, `seven_day_opus` and `seven_day_sonnet` only that model family's. A limit met in a
//! model's window holds that model's calls and no other; the share of a window one call takes
//! is learned from consecutive reports of the same window in the same period (their
//! difference, attributed to the call that reported the later one).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::RateLimitSeen;

/// The model family a model belongs to (`opus`, `sonnet`, `haiku`), which Claude Code's
/// per-model windows are named by; `None` for models without such windows (Codex's).
pub fn family(model: &str) -> Option<&'static str> {
    let model = model.to_ascii_lowercase();
    ["opus", "sonnet", "haiku"]
        .into_iter()
        .find(|family| model.contains(family))
}

/// The model family a window counts (`seven_day_opus` → `opus`), or `None` for a window of
/// every call.
pub fn scope_of(window: &str) -> Option<&'static str> {
    let (_, last) = window.rsplit_once('_')?;
    ["opus", "sonnet", "haiku"]
        .into_iter()
        .find(|family| *family == last)
}

/// Whether a window (by name; `None`: unnamed, every call) counts calls of `model`.
pub fn counts(window: Option<&str>, model: &str) -> bool {
    match window.and_then(scope_of) {
        None => true,
        Some(scope) => family(model) == Some(scope),
    }
}

/// One window of an account, as last reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Window {
    /// The last report: status, share used, reset.
    pub seen: RateLimitSeen,
    /// When it was reported (the log's time of the step that carried it).
    pub seen_ms: i64,
    /// The share of the window one call takes, by the calling model's family (`""` for a
    /// model without one).
    pub per_call: BTreeMap<String, Share>,
}

/// A mean of shares of a window, one per call observed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Share {
    pub total: f64,
    pub calls: u32,
}

impl Share {
    pub fn mean(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.total / f64::from(self.calls))
    }
}

impl Window {
    /// The share used at `now_ms`: nothing once the window has reset.
    pub fn used_at(&self, now_ms: i64) -> f64 {
        match (self.seen.utilization, self.seen.resets_at_ms) {
            (_, Some(reset)) if now_ms >= reset => 0.0,
            (Some(used), _) => used.clamp(0.0, 1.0),
            (None, _) => 0.0,
        }
    }

    /// What one call of `model` is expected to take of the window (`None` until a call of that
    /// family has been observed; then the mean of what each took).
    pub fn share_of_call(&self, model: &str) -> Option<f64> {
        let key = family(model).unwrap_or("");
        self.per_call.get(key).and_then(Share::mean)
    }

    /// Takes a new report of this window, made by a call of `model` at `at_ms`: the difference
    /// from the previous report of the same period is that call's share.
    pub fn observe(&mut self, seen: &RateLimitSeen, model: &str, at_ms: i64) {
        let same_period = match (self.seen.resets_at_ms, seen.resets_at_ms) {
            // Resets written in seconds, or recomputed from a relative time, move a little.
            (Some(before), Some(now)) => (before - now).abs() <= 120_000,
            _ => false,
        };
        if same_period
            && let (Some(before), Some(now)) = (self.seen.utilization, seen.utilization)
            && now.is_finite()
            && before.is_finite()
        {
            let share = self
                .per_call
                .entry(family(model).unwrap_or("").to_owned())
                .or_default();
            share.total += (now - before).max(0.0);
            share.calls += 1;
        }
        self.seen = seen.clone();
        self.seen_ms = at_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(window: &str, used: f64, reset: i64) -> RateLimitSeen {
        RateLimitSeen {
            status: "allowed".into(),
            window: Some(window.into()),
            resets_at_ms: Some(reset),
            utilization: Some(used),
            overage_in_use: None,
        }
    }

    #[test]
    fn a_model_s_window_counts_only_that_model() {
        assert_eq!(family("claude-opus-4-7"), Some("opus"));
        assert_eq!(family("sonnet"), Some("sonnet"));
        assert_eq!(family("gpt-5-codex"), None);
        assert_eq!(scope_of("seven_day_opus"), Some("opus"));
        assert_eq!(scope_of("seven_day"), None);
        assert_eq!(scope_of("five_hour"), None);
        assert!(counts(Some("seven_day_opus"), "claude-opus-4-7"));
        assert!(!counts(Some("seven_day_opus"), "claude-sonnet-4-5"));
        assert!(counts(Some("five_hour"), "claude-sonnet-4-5"));
        assert!(counts(None, "gpt-5-codex"));
    }

    #[test]
    fn a_call_s_share_is_the_difference_within_one_period() {
        let mut window = Window::default();
        window.observe(&seen("five_hour", 0.10, 5_000_000), "opus", 1);
        assert_eq!(
            window.share_of_call("opus"),
            None,
            "one report says no share"
        );
        window.observe(&seen("five_hour", 0.15, 5_000_000), "opus", 2);
        window.observe(&seen("five_hour", 0.25, 5_060_000), "claude-opus-4-7", 3);
        let share = window.share_of_call("opus").expect("two shares");
        assert!((share - 0.075).abs() < 1e-9, "{share}");
        assert_eq!(window.share_of_call("sonnet"), None);
        // A new period starts over: no share from across the reset.
        window.observe(&seen("five_hour", 0.02, 23_000_000), "opus", 4);
        assert_eq!(window.per_call["opus"].calls, 2);
        assert_eq!(window.used_at(22_999_999), 0.02);
        assert_eq!(window.used_at(23_000_000), 0.0, "reset");
    }
}
