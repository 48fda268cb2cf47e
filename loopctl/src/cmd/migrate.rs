//! `loopctl migrate`: copy a whole event log to another store and prove the copy.
//!
//! The events are appended to the new store in the order of their seq, consecutive events of
//! one run with one time stamp as one append, each at the version it had: the new store numbers
//! them as the old one did, so seqs, versions, times and payloads come out the same. Then both
//! logs are read whole and compared event by event, and the copy is replayed; any difference
//! fails the command.

use std::process::ExitCode;

use anyhow::{Context, bail};
use loop_core::{EventRecord, Seq};
use loop_store::{EventStore, StoreAt, replay};

use crate::output::Output;

/// Events read from the old log at a time.
const PAGE: usize = 4096;

pub fn run(from: &StoreAt, to: &StoreAt, out: &Output) -> anyhow::Result<ExitCode> {
    if from == to {
        bail!("--from and --to are the same log ({})", from.shown());
    }
    let source = crate::log::open_at(from)?;
    let target = to.open().context("cannot open the event log")?;
    let already = target.last_seq()?;
    if already != Seq(0) {
        bail!(
            "{} already holds {} events: migrate into an empty log",
            to.shown(),
            already.0
        );
    }
    let mut copied = 0u64;
    let mut after = Seq(0);
    loop {
        let page = source.read_all(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for group in groups(&page) {
            let first = &group[0];
            let expected = loop_core::Version(first.version.0 - 1);
            let written = target
                .append(
                    first.run_id,
                    expected,
                    first.ts_ms,
                    group.iter().map(|r| r.event.clone()).collect(),
                )
                .with_context(|| {
                    format!("cannot copy event {} of run {}", first.seq.0, first.run_id)
                })?;
            if written.first().map(|r| r.seq) != Some(first.seq) {
                bail!(
                    "event {} of run {} came out as seq {:?}: the old log has a gap",
                    first.seq.0,
                    first.run_id,
                    written.first().map(|r| r.seq.0)
                );
            }
            copied += group.len() as u64;
        }
    }
    let differences = compare(source.as_ref(), target.as_ref())?;
    let report = replay(target.as_ref(), None)?;
    out.document(&crate::documents::Migrated {
        from: from.shown(),
        to: to.shown(),
        events: copied,
        runs: report.runs,
        differences: &differences,
        replay_differences: report.differences.len(),
    });
    out.line(&format!(
        "copied {copied} events of {} run{} from {} to {}; {}",
        report.runs,
        if report.runs == 1 { "" } else { "s" },
        from.shown(),
        to.shown(),
        if differences.is_empty() && report.differences.is_empty() {
            "the copy reads and replays the same".to_owned()
        } else {
            format!(
                "{} events differ, replay found {} differences",
                differences.len(),
                report.differences.len()
            )
        }
    ));
    for difference in differences.iter().take(20) {
        out.line(&format!("  {difference}"));
    }
    Ok(if differences.is_empty() && report.differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Consecutive events of one run with one time stamp, and in version order, as one append.
fn groups(page: &[EventRecord]) -> Vec<&[EventRecord]> {
    page.chunk_by(|a, b| {
        a.run_id == b.run_id && a.ts_ms == b.ts_ms && b.version.0 == a.version.0 + 1
    })
    .collect()
}

/// Every event where the two logs differ (seq, run, version, time or event), as text.
fn compare(a: &dyn EventStore, b: &dyn EventStore) -> anyhow::Result<Vec<String>> {
    let mut differences = Vec::new();
    let mut after = Seq(0);
    loop {
        let left = a.read_all(after, PAGE)?;
        let right = b.read_all(after, PAGE)?;
        if left.is_empty() && right.is_empty() {
            return Ok(differences);
        }
        for index in 0..left.len().max(right.len()) {
            match (left.get(index), right.get(index)) {
                (Some(l), Some(r)) => {
                    let same = l.seq == r.seq
                        && l.run_id == r.run_id
                        && l.version == r.version
                        && l.ts_ms == r.ts_ms
                        && l.event == r.event;
                    if !same {
                        differences.push(format!("seq {}: {l:?} became {r:?}", l.seq.0));
                    }
                }
                (Some(l), None) => differences.push(format!("seq {} is missing", l.seq.0)),
                (None, Some(r)) => differences.push(format!("seq {} is extra", r.seq.0)),
                (None, None) => {}
            }
        }
        let last = left.last().or(right.last()).map_or(after, |r| r.seq);
        if last == after {
            return Ok(differences);
        }
        after = last;
    }
}
