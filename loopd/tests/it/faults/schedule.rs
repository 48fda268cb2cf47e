//! A fault schedule: what happens to the cluster and when, drawn from a seed so that a failing
//! schedule can be run again (`LOOP_FAULT_SEED`). The same seed gives the same schedule; the
//! interleaving of real processes around it is the machine's.

use std::fmt;
use std::time::Duration;

use loop_testkit::postgres::Shutdown;

/// How big a schedule is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub nodes: usize,
    pub runs: usize,
    /// Tasks of each run's plan.
    pub tasks: usize,
    /// Faults drawn (each with its own healing).
    pub faults: usize,
    /// The faults happen within this time from the start.
    pub window: Duration,
    pub lease: Duration,
}

impl Size {
    /// Inside `cargo test --workspace`: about a minute on two busy cores.
    pub const SHORT: Size = Size {
        nodes: 3,
        runs: 6,
        tasks: 3,
        faults: 8,
        window: Duration::from_secs(30),
        lease: Duration::from_millis(2000),
    };

    /// `LOOP_FAULT_SIZE=long`: a few minutes a schedule.
    pub const LONG: Size = Size {
        nodes: 4,
        runs: 16,
        tasks: 4,
        faults: 30,
        window: Duration::from_secs(120),
        lease: Duration::from_millis(2000),
    };
}

/// One thing done to the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// SIGSTOP to the daemon alone (a stall of the orchestrator: its agents go on), SIGCONT
    /// after `for_`.
    StopDaemon { node: usize, for_: Duration },
    /// SIGSTOP to the daemon and every process under it (a frozen machine), SIGCONT after.
    StopNode { node: usize, for_: Duration },
    /// SIGKILL to the daemon; a daemon on the same data dir after `restart_after`.
    Kill {
        node: usize,
        restart_after: Duration,
    },
    /// PostgreSQL stopped, and started again after `for_`.
    StoreDown { how: Shutdown, for_: Duration },
    /// `pg_ctl restart`.
    StoreRestart { how: Shutdown },
    /// `POST /runs/{id}/cancel` through a node.
    Cancel { run: usize, via: usize },
    /// `POST /runs/{id}/pause` through a node, and `resume` through another after `for_`.
    Pause {
        run: usize,
        via: usize,
        resume_via: usize,
        for_: Duration,
    },
}

impl Fault {
    /// The node it takes out for a while, if any.
    pub fn node(&self) -> Option<usize> {
        match self {
            Fault::StopDaemon { node, .. }
            | Fault::StopNode { node, .. }
            | Fault::Kill { node, .. } => Some(*node),
            _ => None,
        }
    }

    /// How long until it is healed.
    pub fn lasts(&self) -> Duration {
        match self {
            Fault::StopDaemon { for_, .. }
            | Fault::StopNode { for_, .. }
            | Fault::StoreDown { for_, .. }
            | Fault::Pause { for_, .. } => *for_,
            Fault::Kill { restart_after, .. } => *restart_after,
            Fault::StoreRestart { .. } | Fault::Cancel { .. } => Duration::ZERO,
        }
    }
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

/// How long after the store's fault healed before the next one may begin.
pub const STORE_SETTLES: Duration = Duration::from_secs(3);

fn pick(rng: &mut fastrand::Rng, from: &[usize]) -> usize {
    from[rng.usize(..from.len())]
}

/// The name of node `n` (its `NODE` and data dir).
pub fn name(n: usize) -> &'static str {
    NAMES[n]
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |d: &Duration| format!("{:.1}s", d.as_secs_f64());
        match self {
            Fault::StopDaemon { node, for_ } => {
                write!(f, "SIGSTOP daemon {} for {}", name(*node), s(for_))
            }
            Fault::StopNode { node, for_ } => write!(
                f,
                "SIGSTOP node {} (daemon and every process under it) for {}",
                name(*node),
                s(for_)
            ),
            Fault::Kill {
                node,
                restart_after,
            } => write!(
                f,
                "SIGKILL daemon {}, restart after {}",
                name(*node),
                s(restart_after)
            ),
            Fault::StoreDown { how, for_ } => {
                write!(f, "PostgreSQL stop -m {how:?} for {}", s(for_))
            }
            Fault::StoreRestart { how } => write!(f, "PostgreSQL restart -m {how:?}"),
            Fault::Cancel { run, via } => write!(f, "cancel run {run} through {}", name(*via)),
            Fault::Pause {
                run,
                via,
                resume_via,
                for_,
            } => write!(
                f,
                "pause run {run} through {}, resume through {} after {}",
                name(*via),
                name(*resume_via),
                s(for_)
            ),
        }
    }
}

/// A schedule: when each run is submitted and through which node, and the faults in time
/// order.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub seed: u64,
    pub size: Size,
    /// Per run: when, and through which node.
    pub submits: Vec<(Duration, usize)>,
    pub faults: Vec<(Duration, Fault)>,
}

impl Schedule {
    /// The schedule of `seed`. A node is taken out by one fault at a time, and never all of
    /// them at once: the store and the other nodes are the faults' targets too.
    pub fn draw(seed: u64, size: Size) -> Schedule {
        let mut rng = fastrand::Rng::with_seed(seed);
        let lease = size.lease.as_millis() as u64;
        let window = size.window.as_millis() as u64;
        // Runs arrive over the first half of the window (the first at once), so that faults
        // meet runs at every stage: setup, steps, merges.
        let mut submits: Vec<(Duration, usize)> = (0..size.runs)
            .map(|run| {
                let at = if run == 0 { 0 } else { rng.u64(0..window / 2) };
                (Duration::from_millis(at), rng.usize(..size.nodes))
            })
            .collect();
        submits.sort_by_key(|(at, _)| *at);
        // A cancel or a pause goes to a run submitted in the last dozen seconds, likely still
        // running; else to the latest one.
        let recent = |at: Duration| {
            let runs: Vec<usize> = (0..submits.len())
                .filter(|run| {
                    let (submitted, _) = submits[*run];
                    submitted <= at && at < submitted + Duration::from_secs(12)
                })
                .collect();
            let latest = submits.iter().filter(|(s, _)| *s <= at).count().max(1) - 1;
            if runs.is_empty() { vec![latest] } else { runs }
        };
        let mut faults: Vec<(Duration, Fault)> = Vec::new();
        // The store's faults: both kinds of restart in every schedule, each once at least.
        let mut kinds: Vec<u8> = vec![0, 1, 2, 3, 4, 5, 6];
        while kinds.len() < size.faults {
            kinds.push(rng.u8(0..7));
        }
        rng.shuffle(&mut kinds);
        for kind in kinds.into_iter().take(size.faults) {
            let at = Duration::from_millis(rng.u64(2_000..window));
            let node = rng.usize(..size.nodes);
            let fault = match kind {
                0 => Fault::StopDaemon {
                    node,
                    for_: Duration::from_millis(rng.u64(lease * 3 / 2..lease * 3)),
                },
                1 => Fault::StopNode {
                    node,
                    for_: Duration::from_millis(rng.u64(lease * 3 / 2..lease * 3)),
                },
                2 => Fault::Kill {
                    node,
                    restart_after: Duration::from_millis(rng.u64(1_000..lease * 2)),
                },
                3 => Fault::StoreDown {
                    how: Shutdown::Immediate,
                    for_: Duration::from_millis(rng.u64(500..lease * 2)),
                },
                4 => Fault::StoreRestart {
                    how: Shutdown::Fast,
                },
                5 => Fault::Cancel {
                    run: pick(&mut rng, &recent(at)),
                    via: node,
                },
                _ => Fault::Pause {
                    run: pick(&mut rng, &recent(at)),
                    via: node,
                    resume_via: rng.usize(..size.nodes),
                    for_: Duration::from_millis(rng.u64(500..lease * 2)),
                },
            };
            faults.push((at, fault));
        }
        faults.sort_by_key(|(at, _)| *at);
        // One fault at a time per node, and at least one node up: a fault on a node that is
        // still out moves to another node, or is left out when none is free.
        let mut out_until = vec![Duration::ZERO; size.nodes];
        // The store's faults one at a time (a restart of a stopped server would start it, and
        // the stop's own start would then find it running): a later one waits for the earlier
        // one's healing, and a few seconds more for the nodes to find the server again.
        let mut store_until = Duration::ZERO;
        faults.retain_mut(|(at, fault)| {
            if matches!(fault, Fault::StoreDown { .. } | Fault::StoreRestart { .. }) {
                *at = (*at).max(store_until);
                store_until = *at + fault.lasts() + STORE_SETTLES;
                return true;
            }
            let Some(node) = fault.node() else {
                return true;
            };
            let others_out = |n: usize| {
                out_until
                    .iter()
                    .enumerate()
                    .filter(|(k, until)| *k != n && **until > *at)
                    .count()
            };
            let chosen = (0..size.nodes)
                .map(|k| (node + k) % size.nodes)
                .find(|n| out_until[*n] <= *at && others_out(*n) + 1 < size.nodes);
            let Some(chosen) = chosen else {
                return false;
            };
            match fault {
                Fault::StopDaemon { node, .. }
                | Fault::StopNode { node, .. }
                | Fault::Kill { node, .. } => *node = chosen,
                _ => {}
            }
            // A restarted daemon needs a moment to start before it is taken out again.
            out_until[chosen] = *at + fault.lasts() + Duration::from_millis(1_500);
            true
        });
        faults.sort_by_key(|(at, _)| *at);
        Schedule {
            seed,
            size,
            submits,
            faults,
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "fault schedule, seed {} ({} nodes, {} runs of {} tasks, lease {} ms); run it \
             again: {}LOOP_FAULT_SEED={} cargo test -p loopd --test it faults:: -- --nocapture",
            self.seed,
            self.size.nodes,
            self.size.runs,
            self.size.tasks,
            self.size.lease.as_millis(),
            if self.size == Size::LONG {
                "LOOP_FAULT_SIZE=long "
            } else {
                ""
            },
            self.seed
        )?;
        let mut lines: Vec<(Duration, String)> = self
            .submits
            .iter()
            .enumerate()
            .map(|(run, (at, via))| (*at, format!("submit run {run} through {}", name(*via))))
            .collect();
        lines.extend(
            self.faults
                .iter()
                .map(|(at, fault)| (*at, fault.to_string())),
        );
        lines.sort_by_key(|(at, _)| *at);
        for (at, line) in lines {
            writeln!(f, "  +{:.1}s {line}", at.as_secs_f64())?;
        }
        Ok(())
    }
}

#[test]
fn a_seed_draws_the_same_schedule_and_never_takes_every_node_out() {
    for seed in 0..200 {
        let one = Schedule::draw(seed, Size::SHORT);
        let two = Schedule::draw(seed, Size::SHORT);
        assert_eq!(one.to_string(), two.to_string());
        let mut outs: Vec<(Duration, Duration, usize)> = one
            .faults
            .iter()
            .filter_map(|(at, fault)| fault.node().map(|n| (*at, *at + fault.lasts(), n)))
            .collect();
        outs.sort_by_key(|out| out.0);
        let store: Vec<(Duration, Duration)> = one
            .faults
            .iter()
            .filter(|(_, fault)| {
                matches!(fault, Fault::StoreDown { .. } | Fault::StoreRestart { .. })
            })
            .map(|(at, fault)| (*at, *at + fault.lasts()))
            .collect();
        for pair in store.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1 + STORE_SETTLES,
                "seed {seed}: the store's faults overlap: {one}"
            );
        }
        for (start, _, node) in &outs {
            let out_now: Vec<usize> = outs
                .iter()
                .filter(|(from, to, _)| from <= start && start < to)
                .map(|(_, _, n)| *n)
                .collect();
            assert!(out_now.len() < one.size.nodes, "seed {seed}: {one}");
            assert_eq!(
                out_now.iter().filter(|n| *n == node).count(),
                1,
                "seed {seed}: node {node} taken out twice at once: {one}"
            );
        }
    }
}
