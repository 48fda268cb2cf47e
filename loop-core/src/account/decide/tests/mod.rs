//! `before_call` over small logs, split by concern: failover and waits (`failover`), pacing,
//! budgets and headroom (`pacing`), the forecast (`forecast`) and the property test
//! (`property`). This module holds the log they share.

mod failover;
mod forecast;
mod pacing;
mod property;

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::event::{Event, EventRecord, RateLimitSeen};
use crate::ids::{Seq, Version};

const NOW: i64 = 1_790_000_000_000;

/// A log of runs on accounts, fed to a book.
struct Log {
    book: AccountBook,
    versions: BTreeMap<RunId, u64>,
}

impl Log {
    fn new() -> Log {
        Log {
            book: AccountBook::new(),
            versions: BTreeMap::new(),
        }
    }

    fn add(&mut self, run: RunId, ts_ms: i64, event: Event) {
        let version = self.versions.entry(run).or_insert(0);
        *version += 1;
        self.book.apply(&EventRecord {
            seq: Seq(*version),
            run_id: run,
            version: Version(*version),
            ts_ms,
            schema: crate::event::SCHEMA,
            event,
        });
    }

    fn run(&mut self, n: u8, config: &[(&str, &str)]) -> (RunId, RunConfig) {
        let run = RunId::from_parts(1, [n; 10]);
        let mut frozen = crate::config::Config::resolve([]).values().clone();
        for (key, value) in config {
            frozen.insert((*key).to_owned(), (*value).to_owned());
        }
        let created = json!({
            "name": "n", "workspace_root": "/w", "spec_path": "s", "plan_path": "p",
            "config": frozen,
        });
        self.add(
            run,
            0,
            Event::RunCreated(serde_json::from_value(created).expect("a creation")),
        );
        (run, RunConfig::from_frozen(&frozen))
    }

    fn limit(&mut self, run: RunId, account: &str, until_ms: i64, window: Option<&str>) {
        let wait = json!({
            "step_id": "01a21350-1f27-75a5-bc3b-0076ab9d10be", "until_ms": until_ms,
            "reason": "limit", "account": account, "window": window,
        });
        self.add(
            run,
            NOW - 1,
            Event::AgentWaiting(serde_json::from_value(wait).expect("a wait")),
        );
    }

    fn call(&mut self, run: RunId, at: i64, account: &str, cost: f64, windows: &[(&str, f64)]) {
        let windows: Vec<RateLimitSeen> = windows
            .iter()
            .map(|(name, used)| RateLimitSeen {
                status: "allowed".into(),
                window: Some((*name).into()),
                resets_at_ms: Some(NOW + 3_600_000),
                utilization: Some(*used),
                overage_in_use: None,
            })
            .collect();
        let step = json!({
            "step_id": "01a21350-1f27-75a5-bc3b-0076ab9d10be", "phase": "implementation",
            "status": "SUCCEEDED", "cost_usd": cost, "account": account,
            "agent": {"models": ["claude-opus-4-7"], "windows": windows},
        });
        self.add(
            run,
            at,
            Event::StepFinished(serde_json::from_value(step).expect("a step end")),
        );
    }
}

fn ask<'a>(run: RunId, config: &'a RunConfig, model: &'a str, kind: CallKind) -> Ask<'a> {
    Ask {
        run_id: run,
        config,
        kind,
        model,
        previous: None,
        now_ms: NOW,
    }
}

const POOL: (&str, &str) = ("account_pool", "work-1 work-2 personal");
