//! What must hold after a schedule, and how much of each was checked: every run ended once;
//! every update of the remote (run branches and the merge target) was made by the node whose
//! claim held the run's fence when it landed, and every commit it brought was made there; the
//! log's merge outcome equals the remote; no process of a run worked on after its node lost it
//! or the run ended; the log replays clean.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use loop_core::fence::{FenceEntry, FenceVerdict};
use loop_core::{Event, EventRecord};

use super::world::{Seen, Span, World};

/// How long a node that can act has to stop a run's processes once it lost the run: the
/// follower reads the log within a second, and SIGKILL follows SIGTERM after one more.
pub const GRACE_MS: i64 = 5_000;

/// What was checked (a count per invariant) and what did not hold.
#[derive(Debug, Default)]
pub struct Findings {
    pub counts: BTreeMap<&'static str, usize>,
    pub violations: Vec<String>,
}

impl Findings {
    fn count(&mut self, what: &'static str, n: usize) {
        *self.counts.entry(what).or_default() += n;
    }

    fn fail(&mut self, violation: String) {
        self.violations.push(violation);
    }
}

/// A run as the log tells it.
pub struct RunLog {
    pub id: String,
    pub records: Vec<EventRecord>,
}

impl RunLog {
    /// (ms, holder) each time the run's claim changed: a node's claim, or none (paused, ended,
    /// sent back to the queue).
    fn holders(&self) -> Vec<(i64, Option<String>)> {
        self.records
            .iter()
            .filter_map(|record| match &record.event {
                Event::RunClaimed(claim) => Some((record.ts_ms, Some(claim.node_id.clone()))),
                Event::RunPaused(_) | Event::RunRetried(_) => Some((record.ts_ms, None)),
                event if event.is_terminal() => Some((record.ts_ms, None)),
                _ => None,
            })
            .collect()
    }

    fn claim_at(&self, version: u64) -> Option<&str> {
        self.records
            .iter()
            .find(|record| record.version.0 == version)
            .and_then(|record| match &record.event {
                Event::RunClaimed(claim) => Some(claim.node_id.as_str()),
                _ => None,
            })
    }

    fn ended_ms(&self) -> Option<i64> {
        self.records
            .iter()
            .find(|record| record.event.is_terminal())
            .map(|record| record.ts_ms)
    }

    fn branch(&self) -> Option<&str> {
        self.records.iter().find_map(|record| match &record.event {
            Event::WorktreeCreated(worktree) => Some(worktree.run_branch.as_str()),
            _ => None,
        })
    }

    fn merge(&self) -> Option<&loop_core::event::MergeFinished> {
        self.records
            .iter()
            .rev()
            .find_map(|record| match &record.event {
                Event::MergeFinished(merge) => Some(merge),
                _ => None,
            })
    }
}

/// Every invariant over the log, the remote and the processes seen.
pub fn check(world: &World, runs: &[RunLog], seen: &[Seen], final_sweep: &[Seen]) -> Findings {
    let mut findings = Findings::default();
    ended_once(runs, &mut findings);
    remote_updates(world, runs, &mut findings);
    merges(world, runs, &mut findings);
    processes(world, runs, seen, final_sweep, &mut findings);
    let store = loop_store::PgStore::connect(&world.server.url).expect("connect to the log");
    match loop_store::replay(&store, None) {
        Ok(report) => {
            findings.count("events replayed", report.events as usize);
            for difference in report.differences {
                findings.fail(format!("replay: {difference:?}"));
            }
        }
        Err(error) => findings.fail(format!("replay failed: {error}")),
    }
    findings
}

fn ended_once(runs: &[RunLog], findings: &mut Findings) {
    for run in runs {
        let ends: Vec<&EventRecord> = run
            .records
            .iter()
            .filter(|record| record.event.is_terminal())
            .collect();
        if ends.len() != 1 {
            findings.fail(format!("run {} ended {} times", run.id, ends.len()));
            continue;
        }
        findings.count("runs ended once", 1);
        match &ends[0].event {
            Event::RunCompleted(_) => findings.count("runs COMPLETED", 1),
            Event::RunCanceled(_) => findings.count("runs CANCELED", 1),
            Event::RunFailed(failed) => findings.fail(format!(
                "run {} FAILED ({}): no fault of this suite may fail a run",
                run.id, failed.reason
            )),
            _ => {}
        }
        let mut steps: HashMap<String, usize> = HashMap::new();
        for record in &run.records {
            match &record.event {
                Event::StepStarted(step) => {
                    *steps.entry(step.step_id.to_string()).or_default() += 1
                }
                Event::StepFinished(step) => {
                    *steps.entry(step.step_id.to_string()).or_default() += 1;
                    if step.status == loop_core::event::StepStatus::Interrupted {
                        findings.count("steps INTERRUPTED (taken over or restarted)", 1);
                    }
                }
                Event::RunClaimed(claim) if claim.took_over_from.is_some() => {
                    findings.count("takeovers", 1);
                }
                _ => {}
            }
        }
        for (step, n) in &steps {
            if *n != 2 {
                findings.fail(format!(
                    "step {step} of run {} started or finished twice",
                    run.id
                ));
            }
        }
        findings.count("steps started and finished once", steps.len());
    }
}

/// One update the remote made: the push it was part of, who pushed, the ref, old and new.
#[derive(Clone, Debug)]
struct Update {
    push: String,
    node: String,
    old: String,
    new: String,
    reference: String,
}

const ZERO: &str = "0000000000000000000000000000000000000000";

fn updates(pushes: &Path) -> Vec<Update> {
    std::fs::read_to_string(pushes)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let push = words.next()?.to_owned();
            let _ms = words.next()?;
            Some(Update {
                push,
                node: words.next()?.to_owned(),
                old: words.next()?.to_owned(),
                new: words.next()?.to_owned(),
                reference: words.next()?.to_owned(),
            })
        })
        .collect()
}

/// `Key: value` trailers of a commit of the remote.
fn trailers(bare: &Path, commit: &str) -> HashMap<String, String> {
    loop_testkit::git(bare, &["log", "-1", "--format=%B", commit])
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(": ")?;
            Some((key.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// A fence entry as its commit on the remote says it.
fn entry_of(bare: &Path, commit: &str) -> Option<(FenceEntry, String)> {
    let said = trailers(bare, commit);
    let what = loop_testkit::git(bare, &["log", "-1", "--format=%s", commit]);
    Some((
        FenceEntry {
            node: said.get("Loop-Node")?.clone(),
            version: loop_core::Version(said.get("Loop-Version")?.parse().ok()?),
        },
        what.trim_start_matches("loop fence: ").to_owned(),
    ))
}

/// Every update of the remote, in the order it made them. A run branch or the target moves
/// only in one atomic push with the run's fence, by the node whose entry the fence holds, under
/// a claim the log records for that node at the entry's version; each new entry was one the
/// log allowed when it was made (`loop_core::fence::verdict` never said the earlier one had
/// won); every claim, pause and cancel of the log has its entry on the remote; every commit a
/// run branch gains was made on the node that pushed it.
fn remote_updates(world: &World, runs: &[RunLog], findings: &mut Findings) {
    let names = world.names();
    let by_id: HashMap<&str, &RunLog> = runs.iter().map(|run| (run.id.as_str(), run)).collect();
    let by_branch: HashMap<String, &RunLog> = runs
        .iter()
        .filter_map(|run| Some((format!("refs/heads/{}", run.branch()?), run)))
        .collect();
    // One group per push, in the order the remote made them (the hooks of two pushes at
    // once may interleave their lines; a push's refs land together).
    let all = updates(&world.pushes);
    let mut pushes: Vec<(String, Vec<Update>)> = Vec::new();
    for update in all {
        match pushes.iter_mut().find(|(id, _)| *id == update.push) {
            Some((_, group)) => group.push(update),
            None => pushes.push((update.push.clone(), vec![update])),
        }
    }
    let mut entries: HashMap<String, Vec<FenceEntry>> = HashMap::new();
    for (_, group) in &pushes {
        let fence = group
            .iter()
            .find(|update| update.reference.starts_with("refs/loop/fence/"));
        let moved: Vec<&Update> = group
            .iter()
            .filter(|update| update.reference.starts_with("refs/heads/"))
            .collect();
        let Some(fence) = fence else {
            for update in moved {
                findings.fail(format!(
                    "{} moved {} without the run's fence: {update:?}",
                    update.node, update.reference
                ));
            }
            continue;
        };
        let run_id = fence.reference.trim_start_matches("refs/loop/fence/");
        let Some((entry, what)) = entry_of(&world.bare, &fence.new) else {
            findings.fail(format!(
                "fence {} of run {run_id} names no entry",
                fence.new
            ));
            continue;
        };
        if names.get(&entry.node).copied() != Some(fence.node.as_str()) {
            findings.fail(format!(
                "fence of run {run_id} names node {} but {} pushed it",
                entry.node, fence.node
            ));
        }
        let Some(run) = by_id.get(run_id) else {
            findings.fail(format!("a fence of an unknown run {run_id}"));
            continue;
        };
        let before = if fence.old == ZERO {
            None
        } else {
            entry_of(&world.bare, &fence.old).map(|(entry, _)| entry)
        };
        entries
            .entry(run_id.to_owned())
            .or_default()
            .push(entry.clone());
        if moved.is_empty() {
            // A claim, a pause or a cancel took the fence: the log must not have said then that
            // the entry before had won.
            let verdict = loop_core::fence::verdict(
                before.as_ref(),
                &run.records,
                &entry.node,
                entry.version,
                |_| true,
            );
            if let FenceVerdict::Lost { node, version } = verdict {
                findings.fail(format!(
                    "run {run_id}: {} took the fence for its {what} at version {} over node \
                     {node}'s entry at version {}, which the log had taken",
                    fence.node, entry.version.0, version.0
                ));
            }
            let happened = run.records.iter().any(|record| {
                record.version == entry.version
                    && match &record.event {
                        Event::RunClaimed(claim) => claim.node_id == entry.node,
                        Event::RunPaused(_) | Event::RunCanceled(_) => true,
                        _ => false,
                    }
            });
            findings.count(
                if happened {
                    "fence entries taken before their claim, pause or cancel"
                } else {
                    "fence entries the log never took (a lost race, seized over later)"
                },
                1,
            );
            continue;
        }
        // An effect: under this node's own entry, which the log records as its claim.
        if before.as_ref() != Some(&entry) {
            findings.fail(format!(
                "{} pushed an effect of run {run_id} over a fence it did not hold ({before:?})",
                fence.node
            ));
        }
        if run.claim_at(entry.version.0) != Some(entry.node.as_str()) {
            findings.fail(format!(
                "{} pushed an effect of run {run_id} under an entry at version {} that is not \
                 its claim in the log",
                fence.node, entry.version.0
            ));
        }
        for update in moved {
            if update.reference == "refs/heads/main" {
                let message =
                    loop_testkit::git(&world.bare, &["log", "-1", "--format=%s", &update.new]);
                if !message.contains(run_id) {
                    findings.fail(format!(
                        "main moved to {} ({message}) under the fence of run {run_id}",
                        update.new
                    ));
                }
                findings.count("merges pushed under their run's fence by its holder", 1);
                continue;
            }
            if by_branch.get(&update.reference).map(|r| r.id.as_str()) != Some(run_id) {
                findings.fail(format!(
                    "{} moved {} under the fence of run {run_id}, not its own",
                    update.node, update.reference
                ));
            }
            findings.count("run branch pushes under their run's fence by its holder", 1);
            let since = if update.old == ZERO {
                loop_testkit::git(&world.bare, &["merge-base", &update.new, "main"])
            } else {
                update.old.clone()
            };
            let commits =
                loop_testkit::git(&world.bare, &["rev-list", &update.new, "--not", &since]);
            for commit in commits.lines() {
                let made_on = trailers(&world.bare, commit).get("Made-On").cloned();
                if made_on.as_deref() != Some(update.node.as_str()) {
                    findings.fail(format!(
                        "{} pushed commit {commit} of run {run_id} made on {made_on:?}",
                        update.node
                    ));
                }
                findings.count(
                    "commits on run branches made on the node that pushed them",
                    1,
                );
            }
        }
    }
    // Every claim, pause and cancel in the log has its entry on the remote.
    for run in runs {
        let taken = entries.get(&run.id).cloned().unwrap_or_default();
        for record in &run.records {
            let node = match &record.event {
                Event::RunClaimed(claim) => Some(claim.node_id.as_str()),
                Event::RunPaused(_) | Event::RunCanceled(_) => None,
                _ => continue,
            };
            let found = taken.iter().any(|entry| {
                entry.version == record.version && node.is_none_or(|node| entry.node == node)
            });
            if !found {
                findings.fail(format!(
                    "run {}: the {} at version {} has no entry on the run's fence",
                    run.id,
                    record.event.event_type(),
                    record.version.0
                ));
            }
        }
    }
    // Nothing moved the branches but these pushes: each ends where its last push left it.
    for run in runs {
        let Some(branch) = run.branch() else { continue };
        let reference = format!("refs/heads/{branch}");
        let last = updates(&world.pushes)
            .into_iter()
            .rfind(|update| update.reference == reference);
        let now = std::process::Command::new("git")
            .args(["rev-parse", "--verify", "--quiet", &reference])
            .current_dir(&world.bare)
            .output()
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .unwrap_or_default();
        if last.as_ref().map(|u| u.new.as_str()).unwrap_or("") != now {
            findings.fail(format!(
                "{branch} is at {now:?}, which no recorded push left"
            ));
        }
    }
}

/// The log's merge outcome equals the remote: each commit on main's first-parent line is the
/// landed merge of the run it names, each landed merge is on that line, and a merge the log
/// says did not land left nothing there.
fn merges(world: &World, runs: &[RunLog], findings: &mut Findings) {
    let line = loop_testkit::git(
        &world.bare,
        &["log", "--first-parent", "--format=%H %s", "main"],
    );
    let mut on_main: HashMap<String, String> = HashMap::new();
    for entry in line.lines() {
        let (commit, subject) = entry.split_once(' ').unwrap_or((entry, ""));
        if subject == "start" {
            continue;
        }
        match runs.iter().find(|run| subject.contains(&run.id)) {
            Some(run) => {
                if on_main.insert(run.id.clone(), commit.to_owned()).is_some() {
                    findings.fail(format!("run {} landed on main twice", run.id));
                }
            }
            None => findings.fail(format!("main has {commit} ({subject}) of no run")),
        }
    }
    for run in runs {
        let remote = on_main.get(&run.id);
        match run.merge() {
            Some(merge) => match (&merge.commit, remote) {
                (Some(logged), Some(remote)) if logged == remote => {
                    findings.count("merges landed, as the log says", 1);
                }
                (None, None) => findings.count("merges not landed, as the log says", 1),
                (logged, remote) => findings.fail(format!(
                    "run {}: the log says the merge landed {logged:?} ({:?}), main has {remote:?}",
                    run.id, merge.conflict
                )),
            },
            None => {
                if let Some(commit) = remote {
                    findings.fail(format!(
                        "run {} recorded no merge, but main has {commit} of it",
                        run.id
                    ));
                }
            }
        }
    }
}

fn overlaps(spans: &[Span], from: i64, to: i64) -> bool {
    spans.iter().any(|(a, b)| *a <= to && *b >= from)
}

/// No process of a run works on once its node lost the run, or the run ended, for longer
/// than [`GRACE_MS`] while that node could act (it was not stopped and the store was up).
fn processes(
    world: &World,
    runs: &[RunLog],
    seen: &[Seen],
    final_sweep: &[Seen],
    findings: &mut Findings,
) {
    let ids: HashMap<&str, &str> = world
        .nodes
        .iter()
        .map(|node| (node.name, node.id.as_str()))
        .collect();
    let by_id: HashMap<&str, &RunLog> = runs.iter().map(|run| (run.id.as_str(), run)).collect();
    let mut reported = std::collections::HashSet::new();
    for sample in seen {
        let Some(run) = by_id.get(sample.run.as_str()) else {
            continue;
        };
        findings.count("process samples", 1);
        let Some(node) = world.nodes.iter().find(|n| n.name == sample.node) else {
            continue;
        };
        let from = sample.at_ms - GRACE_MS;
        if overlaps(&node.out, from, sample.at_ms)
            || overlaps(&world.store_down, from, sample.at_ms)
        {
            continue;
        }
        let me = ids.get(node.name).copied();
        let holders = run.holders();
        let holder_at = |ms: i64| {
            holders
                .iter()
                .take_while(|(at, _)| *at <= ms)
                .last()
                .and_then(|(_, holder)| holder.clone())
        };
        let held_in_window = holder_at(from).as_deref() == me
            || holders
                .iter()
                .any(|(at, holder)| *at > from && *at <= sample.at_ms && holder.as_deref() == me);
        let ended = run.ended_ms().is_some_and(|end| end <= from);
        if (ended || !held_in_window) && reported.insert((sample.pid, sample.run.clone())) {
            findings.fail(format!(
                "process {} of run {} on node {} was alive at {} ({}), more than {GRACE_MS} ms \
                 after its node {}",
                sample.pid,
                sample.run,
                sample.node,
                sample.at_ms,
                sample.state,
                if ended {
                    "saw the run end"
                } else {
                    "lost the run"
                }
            ));
        }
    }
    for sample in final_sweep {
        if by_id.contains_key(sample.run.as_str()) {
            findings.fail(format!(
                "process {} of run {} on node {} outlived every run",
                sample.pid, sample.run, sample.node
            ));
        }
    }
}
