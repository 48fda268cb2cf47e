//! A staged group's rows as the column arrays its statements take (one array per column, so
//! a group of any size is one `INSERT … SELECT FROM unnest(…)` per table).

use std::collections::HashSet;

use loop_core::RunId;
use tokio_postgres::types::ToSql;

use super::Staged;
use crate::postgres::rows::RunRows;

/// The rows a group writes, as the arrays its statements take.
pub(super) struct Rows {
    pub(super) seqs: Vec<i64>,
    pub(super) run_ids: Vec<String>,
    pub(super) versions: Vec<i64>,
    pub(super) types: Vec<&'static str>,
    pub(super) times: Vec<i64>,
    pub(super) schemas: Vec<i32>,
    pub(super) payloads: Vec<String>,
    pub(super) step_ids: Vec<String>,
    pub(super) step_runs: Vec<String>,
    pub(super) runs: RunRows,
}

impl Rows {
    pub(super) fn of(staged: &Staged) -> Rows {
        let records = staged.outcomes.iter().flatten().flatten();
        let count = staged.records();
        let mut rows = Rows {
            seqs: Vec::with_capacity(count),
            run_ids: Vec::with_capacity(count),
            versions: Vec::with_capacity(count),
            types: Vec::with_capacity(count),
            times: Vec::with_capacity(count),
            schemas: Vec::with_capacity(count),
            payloads: Vec::with_capacity(count),
            step_ids: Vec::new(),
            step_runs: Vec::new(),
            runs: RunRows::default(),
        };
        let mut written: HashSet<RunId> = HashSet::new();
        for record in records {
            rows.seqs.push(record.seq.0 as i64);
            rows.run_ids.push(record.run_id.to_string());
            rows.versions.push(record.version.0 as i64);
            rows.types.push(record.event.event_type().as_str());
            rows.times.push(record.ts_ms);
            rows.schemas.push(record.schema as i32);
            rows.payloads.push(record.event.payload_json());
            if written.insert(record.run_id)
                && let Some((_, Some(view))) = staged.views.get(&record.run_id)
            {
                rows.runs.push(view);
            }
        }
        for (step_id, run_id) in &staged.started {
            rows.step_ids.push(step_id.to_string());
            rows.step_runs.push(run_id.to_string());
        }
        rows
    }

    pub(super) fn event_params(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.seqs,
            &self.run_ids,
            &self.versions,
            &self.types,
            &self.times,
            &self.schemas,
            &self.payloads,
        ]
    }
}
