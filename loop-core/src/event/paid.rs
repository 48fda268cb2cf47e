//! What an agent call cost and reported: tokens, cost, rate-limit windows, and the details a
//! step keeps of its calls.

use serde::{Deserialize, Serialize};

/// Token counts an agent reported for one call (or several, summed).
///
/// `input` counts every input token the model read, cached or not; `cached` says how many of
/// them came from the prompt cache (Claude's cache reads, Codex's `cached_input_tokens`, which
/// Codex already counts in its `input_tokens`), and `cache_write` how many were written to it
/// (Claude's `cache_creation_input_tokens`, Codex's `cache_write_input_tokens`): they are
/// priced apart, so they are kept apart (absent in older events, where they are part of
/// `input` with nothing to tell them from fresh input). `output` counts every output token;
/// `reasoning` says how many of them were reasoning (Codex's `reasoning_output_tokens`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tokens {
    #[serde(default)]
    pub input: u64,
    #[serde(default)]
    pub output: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reasoning: u64,
}

impl Tokens {
    /// Both counts added, saturating.
    pub fn plus(self, other: Tokens) -> Tokens {
        Tokens {
            input: self.input.saturating_add(other.input),
            output: self.output.saturating_add(other.output),
            cached: self.cached.saturating_add(other.cached),
            cache_write: self.cache_write.saturating_add(other.cache_write),
            reasoning: self.reasoning.saturating_add(other.reasoning),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What one paid agent call cost, recorded on the event that follows it: the `AGENT_RETRY` or
/// `AGENT_WAITING` it led to, the `RUN_NAMED` of a naming call, the `POSTMORTEM_END` of the
/// analyses. (A step's last call is on its `STEP_FINISHED`.) Absent on older events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Paid {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
    /// Whether `cost_usd` is estimated from the tokens and a price table (an agent that
    /// reports no cost, Codex), not the agent's own figure.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cost_estimated: bool,
}

impl Paid {
    /// Both calls' figures added; a figure neither call reported stays absent.
    pub fn plus(self, other: Paid) -> Paid {
        let add = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        Paid {
            cost_estimated: self.cost_estimated || other.cost_estimated,
            cost_usd: add(self.cost_usd, other.cost_usd),
            tokens: match (self.tokens, other.tokens) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or_default().plus(b.unwrap_or_default())),
            },
        }
    }
}

/// The rate-limit window an agent reported during a call (Claude Code's `rate_limit_event`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateLimitSeen {
    /// `allowed`, `allowed_warning` or `rejected`.
    pub status: String,
    /// `five_hour`, `seven_day`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// When the window resets, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resets_at_ms: Option<i64>,
    /// How much of the window is used, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization: Option<f64>,
    /// Whether the request was served from overage (paid beyond the plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overage_in_use: Option<bool>,
}

/// What an agent said of a step's calls beyond cost and tokens, for people reading the step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentDetail {
    /// The agent's session (Claude Code's session id, Codex's thread id) of the last call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The models the calls used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Agent calls made in the step (retries included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<u64>,
    /// Time spent waiting on the model's API, as the agent measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_api_ms: Option<u64>,
    /// Tool uses the agent's permission settings refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_denials: Option<u64>,
    /// The last rate-limit window state the agent reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSeen>,
    /// The last state of each window the agent reported (five-hour, weekly, a model's weekly),
    /// when it reported more than one kind; absent in older events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<RateLimitSeen>,
}

fn is_false(b: &bool) -> bool {
    !*b
}
