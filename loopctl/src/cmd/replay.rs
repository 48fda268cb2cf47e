//! `loopctl replay`: fold the log afresh and compare with the stored projections.

use std::process::ExitCode;

use loop_store::replay;

use crate::cli::LogArgs;
use crate::output::Output;
use crate::run_ref;

pub fn run(log: &LogArgs, run: Option<&str>, out: &Output) -> anyhow::Result<ExitCode> {
    let store = crate::log::open(log)?;
    let only = run
        .map(|text| run_ref::in_log(store.as_ref(), text))
        .transpose()?;
    let report = replay(store.as_ref(), only)?;

    out.document(&report);
    for difference in &report.differences {
        let run = difference
            .run_id
            .map_or_else(|| "log".to_owned(), |id| format!("run {id}"));
        out.line(&format!(
            "{run}: {} differs: stored {}, folded {}",
            difference.what, difference.stored, difference.folded
        ));
    }
    out.line(&format!(
        "replayed {} events: {} runs, {} steps; {}",
        report.events,
        report.runs,
        report.steps,
        match report.differences.len() {
            0 => "no difference".to_owned(),
            1 => "1 difference".to_owned(),
            n => format!("{n} differences"),
        }
    ));
    Ok(if report.differences.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
