//! Replay: fold the log afresh and compare every projection with the stored one.

use std::collections::BTreeMap;

use loop_core::projection::{RunView, StepView, step_of};
use loop_core::{DomainError, EventRecord, RunId, RunState, Seq};
use serde::Serialize;

use crate::error::StoreError;
use crate::store::{EventStore, RunQuery};

/// Events folded per read while replaying.
const PAGE: usize = 8192;
/// Stored runs read per page.
const RUNS_PAGE: usize = 1024;

/// One way the stored state differs from a fresh fold of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub run_id: Option<RunId>,
    /// What differs: `run.status`, `step <id>.duration_ms`, `log.seq`, `log.domain`, ….
    pub what: String,
    pub stored: String,
    pub folded: String,
}

/// What a replay checked and found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    pub events: u64,
    pub runs: u64,
    pub steps: u64,
    pub differences: Vec<Difference>,
}

#[derive(Default)]
struct Folded {
    state: RunState,
    broken: Option<DomainError>,
    view: Option<RunView>,
    steps: Vec<StepView>,
}

/// Folds every event of the log (or of one run) from the start and compares the result with the
/// stored projections. Also checks the log itself: `seq` from 1 with no gap, and every event
/// legal where it stands.
///
/// The stored projections are the runs' rows. Steps have none in either store (they are folded
/// from the run's events when read, as here), so they are counted, not compared: comparing them
/// would read the log a second time to fold it the same way.
pub fn replay(store: &dyn EventStore, only: Option<RunId>) -> Result<ReplayReport, StoreError> {
    // Reading and folding overlap: one thread reads the next page of events while the fold goes
    // on, in [`FOLDERS`] threads that each fold the runs of their share of run ids (a run's
    // events are folded in order by one thread; runs are independent), and another thread
    // reads the stored rows meanwhile (they do not depend on the fold). One after the other
    // their costs would add up.
    std::thread::scope(|scope| {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..FOLDERS)
            .map(|_| std::sync::mpsc::sync_channel::<Page>(READ_AHEAD))
            .unzip();
        let reader = scope.spawn(move || read_pages(store, &senders));
        let rows = scope.spawn(move || stored_rows(store, only));
        let folders: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(share, pages)| scope.spawn(move || fold_share(share, &pages, only)))
            .collect();
        let mut report = ReplayReport::default();
        let mut runs: BTreeMap<RunId, Folded> = BTreeMap::new();
        for folder in folders {
            let (part, folded) = folder.join().expect("a replay's folder does not panic");
            report.events = report.events.max(part.events);
            report.differences.extend(part.differences);
            runs.extend(folded);
        }
        reader.join().expect("the replay's reader does not panic")?;
        let stored = rows
            .join()
            .expect("the replay's row reader does not panic")?;
        Ok(compare_all(report, &runs, stored))
    })
}

/// Pages of events read ahead while the current one folds.
const READ_AHEAD: usize = 2;
/// Threads folding runs at once.
const FOLDERS: usize = 2;

/// A page of events, shared by every folder.
type Page = std::sync::Arc<Vec<EventRecord>>;

/// Folds the runs of share `share` of the pages; share 0 also checks the log's numbering and
/// counts its events.
fn fold_share(
    share: usize,
    pages: &std::sync::mpsc::Receiver<Page>,
    only: Option<RunId>,
) -> (ReplayReport, BTreeMap<RunId, Folded>) {
    let mut report = ReplayReport::default();
    let mut runs: BTreeMap<RunId, Folded> = BTreeMap::new();
    let mut after = Seq(0);
    for page in pages {
        for record in page.iter() {
            if share == 0 {
                if record.seq.0 != after.0 + 1 {
                    report.differences.push(Difference {
                        run_id: Some(record.run_id),
                        what: "log.seq".to_owned(),
                        stored: record.seq.to_string(),
                        folded: (after.0 + 1).to_string(),
                    });
                }
                after = record.seq;
                report.events += 1;
            }
            if only.is_some_and(|run| run != record.run_id) || share_of(record.run_id) != share {
                continue;
            }
            fold(runs.entry(record.run_id).or_default(), record);
        }
    }
    (report, runs)
}

/// Which folder folds a run (the low bits of its id are random).
fn share_of(run_id: RunId) -> usize {
    (run_id.as_uuid().as_u128() % FOLDERS as u128) as usize
}

/// Sends every page of the log, in order, to every folder, until the log or a folder ends.
fn read_pages(
    store: &dyn EventStore,
    folders: &[std::sync::mpsc::SyncSender<Page>],
) -> Result<(), StoreError> {
    let mut after = Seq(0);
    loop {
        let page = store.read_all(after, PAGE)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.seq;
        let page: Page = std::sync::Arc::new(page);
        for folder in folders {
            if folder.send(std::sync::Arc::clone(&page)).is_err() {
                return Ok(());
            }
        }
    }
}

/// The stored rows, read in pages rather than a read per run.
fn stored_rows(
    store: &dyn EventStore,
    only: Option<RunId>,
) -> Result<BTreeMap<RunId, RunView>, StoreError> {
    let mut stored: BTreeMap<RunId, RunView> = BTreeMap::new();
    match only {
        Some(run_id) => stored.extend(store.run_view(run_id)?.map(|view| (run_id, view))),
        None => {
            let mut before = None;
            loop {
                let query = RunQuery {
                    before,
                    limit: Some(RUNS_PAGE),
                    ..RunQuery::default()
                };
                let page = store.list_runs(&query)?;
                before = page.last().map(|view| view.id);
                let full = page.len() == RUNS_PAGE;
                stored.extend(page.into_iter().map(|view| (view.id, view)));
                if !full {
                    break;
                }
            }
        }
    }
    Ok(stored)
}

/// Each folded run against its stored row, and stored rows of no run of the log.
fn compare_all(
    mut report: ReplayReport,
    runs: &BTreeMap<RunId, Folded>,
    mut stored: BTreeMap<RunId, RunView>,
) -> ReplayReport {
    for (run_id, folded) in runs {
        report.runs += 1;
        report.steps += folded.steps.len() as u64;
        if let Some(error) = &folded.broken {
            report.differences.push(Difference {
                run_id: Some(*run_id),
                what: "log.domain".to_owned(),
                stored: "an event the run's state does not allow".to_owned(),
                folded: error.to_string(),
            });
        }
        compare(
            &mut report.differences,
            *run_id,
            "run",
            stored.remove(run_id).as_ref(),
            folded.view.as_ref(),
        );
    }
    // Stored runs the log knows nothing of.
    for (run_id, view) in &stored {
        compare::<RunView>(&mut report.differences, *run_id, "run", Some(view), None);
    }
    report
}

fn fold(folded: &mut Folded, record: &EventRecord) {
    if folded.broken.is_none()
        && let Err(error) = folded.state.apply(record)
    {
        folded.broken = Some(error);
    }
    match &mut folded.view {
        Some(view) => view.apply(record),
        None => folded.view = RunView::created(record),
    }
    if let Some(step) = StepView::started(record) {
        folded.steps.push(step);
    } else if let Some(step_id) = step_of(&record.event)
        && let Some(step) = folded.steps.iter_mut().rev().find(|s| s.id == step_id)
    {
        step.apply(record);
    }
}

/// Records each field that differs between a stored and a folded view.
fn compare<T: Serialize + PartialEq>(
    differences: &mut Vec<Difference>,
    run_id: RunId,
    what: &str,
    stored: Option<&T>,
    folded: Option<&T>,
) {
    // Equal values need no field by field look (most runs of a sound log).
    if stored == folded {
        return;
    }
    let json = |value: Option<&T>| serde_json::to_value(value).unwrap_or_default();
    let (stored, folded) = (json(stored), json(folded));
    match (&stored, &folded) {
        (serde_json::Value::Object(s), serde_json::Value::Object(f)) => {
            let keys: std::collections::BTreeSet<_> = s.keys().chain(f.keys()).collect();
            for key in keys {
                let (a, b) = (s.get(key), f.get(key));
                if a != b {
                    differences.push(Difference {
                        run_id: Some(run_id),
                        what: format!("{what}.{key}"),
                        stored: a.map_or_else(|| "(missing)".to_owned(), ToString::to_string),
                        folded: b.map_or_else(|| "(missing)".to_owned(), ToString::to_string),
                    });
                }
            }
        }
        _ if stored != folded => differences.push(Difference {
            run_id: Some(run_id),
            what: what.to_owned(),
            stored: stored.to_string(),
            folded: folded.to_string(),
        }),
        _ => {}
    }
}
