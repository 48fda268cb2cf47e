//! Figures across runs (`GET /stats`, `loopctl stats`): the runs in scope chosen from the run
//! table, their events read from the log and folded by [`loop_core::stats::StatsFold`].

use std::time::Duration;

use loop_core::stats::{Scope, Stats, StatsFold};
use loop_store::RunQuery;

use crate::error::RuntimeError;
use crate::services::Services;

/// The figures of the runs created in the last `since` (all runs when `None`), of one
/// workspace root or of all, as of now.
pub(crate) async fn figures(
    services: &Services,
    since: Option<Duration>,
    workspace_root: Option<String>,
) -> Result<Stats, RuntimeError> {
    let now_ms = services.clock.now_ms();
    let scope = Scope {
        since_ms: since
            .map(|age| now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))),
        workspace_root,
    };
    services
        .journal
        .read(move |store| {
            let runs = store.list_runs(&RunQuery {
                workspace_root: scope.workspace_root.clone(),
                ..RunQuery::default()
            })?;
            let mut fold = StatsFold::new(scope.clone());
            for run in runs
                .iter()
                .filter(|run| scope.since_ms.is_none_or(|since| run.created_ms >= since))
            {
                for record in store.read_run(run.id)? {
                    fold.apply(&record);
                }
            }
            Ok(fold.finish(now_ms))
        })
        .await
}
