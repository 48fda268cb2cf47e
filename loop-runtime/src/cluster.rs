//! This runtime as one node of a cluster: several runtimes (on several machines) sharing one
//! log, which only PostgreSQL makes possible.
//!
//! - A node drives a run only after appending its claim (`RUN_CLAIMED`), and its driver's
//!   appends are fenced by that claim ([`crate::journal`]).
//! - The claim holds while the node's heartbeat, a row of the store it rewrites every fifth of
//!   the lease, is younger than the lease. A node that dies stops beating; once its lease is
//!   over, another node's scheduler takes its RUNNING runs as it would after a crash (the open
//!   step is recorded INTERRUPTED) by appending its own claim.
//! - A node that sees another's claim on a run it drives stops that driver at once, and one
//!   that cannot beat for a whole lease stops all of its drivers: either way the agents stop
//!   before another node's work on the same worktree could begin in earnest.
//! - A clean shutdown says goodbye, which ends the node's leases at once.
//! - A node is a member only if its heartbeat proves the cluster's token ([`trust`]); any other
//!   row is never a proxy's destination nor sent the token, though its claims, being the
//!   log's, are left to it while it beats ([`may_take`]).
//!
//! [`Membership`] is the subsystem the runtime owns for this, beside the scheduler: the
//! scheduler asks it which runs this node may take and has it claim them; its own task beats,
//! follows the log and acts on the scheduler's drivers only through [`Drivers`], so it knows
//! nothing of how they are scheduled.

pub mod trust;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use loop_core::event::Event;
use loop_core::projection::RunView;
use loop_core::{Command, RunId};
use loop_store::{EventStore, NodeBeat, NodeSeen};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::trust::ClusterKey;
use crate::error::RuntimeError;
use crate::journal::{Fence, Journal, blocking};

/// Who this runtime is in the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Stable across restarts (loopd keeps it in its data dir), so a restarted node takes its
    /// own runs back at once.
    pub id: String,
    pub name: String,
    /// Where its API answers, for people and other nodes.
    pub address: String,
    /// How long a claim holds after the node's last heartbeat.
    pub lease: Duration,
    /// The cluster's token, which this node proves and checks others' proofs with.
    pub key: ClusterKey,
}

impl Node {
    /// How often the node beats: five beats a lease, so one or two lost beats cost nothing.
    pub fn heartbeat_every(&self) -> Duration {
        self.lease / 5
    }

    /// Whether `node` is a member of this node's cluster: it proves the same token.
    pub fn trusts(&self, node: &NodeSeen) -> bool {
        self.key.proves(&node.beat)
    }
}

/// The drivers of this node, as membership acts on them (the scheduler's).
pub(crate) trait Drivers: Send + Sync + 'static {
    /// The most runs it drives at once.
    fn capacity(&self) -> usize;
    /// How many runs have a driver now.
    fn running_count(&self) -> usize;
    fn is_running(&self, run_id: RunId) -> bool;
    /// Something changed that may make runs claimable.
    fn wake(&self);
    /// Stops the run's driver, if it has one, and waits for it to end.
    fn stop(&self, run_id: RunId) -> impl Future<Output = ()> + Send + '_;
    /// Stops every driver.
    fn stop_all(&self) -> impl Future<Output = ()> + Send + '_;
}

/// This runtime's membership of the cluster: its node, whether its lease holds, and its claims.
pub(crate) struct Membership {
    node: Arc<Node>,
    journal: Journal,
    /// Node rows and the follower's subscription are the store's, not the journal's: they
    /// are not events of a run.
    store: Arc<dyn EventStore>,
    /// Set while this node cannot renew its lease. It then takes no run, even the runs the log
    /// still says are its own: another node may be taking them over.
    lease_lost: AtomicBool,
    /// Where this node keeps the repository it takes runs' fences from ([`crate::fencing`]).
    data_dir: std::path::PathBuf,
    /// The live nodes seen not to prove the token, each named in a warning once.
    strangers: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Membership {
    pub(crate) fn new(
        node: Node,
        journal: Journal,
        store: Arc<dyn EventStore>,
        data_dir: std::path::PathBuf,
    ) -> Membership {
        Membership {
            node: Arc::new(node),
            journal,
            store,
            lease_lost: AtomicBool::new(false),
            data_dir,
            strangers: Default::default(),
        }
    }

    pub(crate) fn node(&self) -> &Node {
        &self.node
    }

    /// Keeps of `candidates` the runs this node may take now: none while its lease is lost,
    /// else not the runs other live nodes drive, nor those whose workspace this machine cannot
    /// see. Returns how many runs other live nodes drive in each workspace (the per-workspace
    /// limit is the cluster's).
    pub(crate) async fn keep_takeable(
        &self,
        candidates: &mut Vec<RunView>,
    ) -> Result<HashMap<String, usize>, RuntimeError> {
        let mut elsewhere: HashMap<String, usize> = HashMap::new();
        if self.lease_lost.load(Ordering::SeqCst) {
            candidates.clear();
        }
        let store = Arc::clone(&self.store);
        let nodes = blocking(move || store.nodes()).await?;
        self.name_strangers(&nodes);
        candidates.retain(|view| {
            if !may_take(view, &self.node, &nodes) {
                *elsewhere.entry(view.workspace_root.clone()).or_default() += 1;
                return false;
            }
            sees_workspace(view)
        });
        Ok(elsewhere)
    }

    /// Warns, once per node, of a live node that does not prove this node's token: most likely
    /// a node given another token, whose runs this node then leaves to it ([`may_take`]).
    fn name_strangers(&self, nodes: &[NodeSeen]) {
        let mut named = self.strangers.lock().unwrap_or_else(|e| e.into_inner());
        for seen in nodes {
            if seen.holds_lease()
                && !self.node.trusts(seen)
                && named.insert(seen.beat.node_id.clone())
            {
                tracing::warn!(
                    node = %seen.beat.node_id,
                    name = %seen.beat.name,
                    address = %seen.beat.address,
                    "a live node does not prove this node's token: it is sent nothing, and the \
                     runs it claims are left to it; give every node of the cluster the same token \
                     (--token-file or LOOPD_AUTH_TOKEN)"
                );
            }
        }
    }

    /// Claims the run for this node, unless its latest claim is no longer `seen` (another node
    /// claimed it since the scheduler looked): [`RuntimeError::Fenced`] then. A run by URL gets
    /// its fence on the remote first ([`crate::fencing::before_claim`]), and the claim is then
    /// appended only if the run did not move on meanwhile. A run already this node's is left
    /// as it is (its driver takes the fence).
    pub(crate) async fn claim(
        &self,
        run_id: RunId,
        seen: Option<&str>,
    ) -> Result<(), RuntimeError> {
        let node = &self.node;
        let state = self.journal.state(run_id).await?;
        if state.claimed_by() == Some(node.id.as_str()) {
            return Ok(());
        }
        let at =
            crate::fencing::before_claim(&self.journal, &self.data_dir, run_id, &state).await?;
        let claim = Command::Claim(loop_core::event::RunClaimed {
            node_id: node.id.clone(),
            lease_ms: node.lease.as_millis() as u64,
            took_over_from: seen.map(str::to_owned),
        });
        self.journal
            .execute_fenced(run_id, vec![claim], Fence::StillClaimedBy(seen, at))
            .await
            .map(drop)
    }

    /// Whether the log, read now, says this node may no longer drive `run_id`: another node's
    /// claim is its latest, or it is neither RUNNING nor PENDING. A record the follower hands
    /// over late (a pause before the resume this node is driving after) does not stop a driver
    /// that still holds the run.
    async fn has_lost(&self, run_id: RunId) -> bool {
        let Ok(records) = self.journal.read_run(run_id).await else {
            return false;
        };
        let Ok(state) = loop_core::RunState::fold(&records) else {
            return false;
        };
        let others = state.claimed_by().is_some_and(|by| by != self.node.id);
        let stopped = !matches!(
            state.status(),
            Some(loop_core::RunStatus::Running | loop_core::RunStatus::Pending)
        );
        others || stopped
    }

    /// Says whether this node's lease is lost (its heartbeat cannot be recorded for a lease).
    fn set_lease_lost(&self, lost: bool, drivers: &impl Drivers) {
        let was = self.lease_lost.swap(lost, Ordering::SeqCst);
        if was && !lost {
            tracing::info!("this node's heartbeat is recorded again: it claims runs again");
            drivers.wake();
        }
    }
}

/// Whether `me` may take `view` now, given what the store says of every node: a run whose
/// claim is another node's is left to it while that node holds its lease. (A claim ends when
/// the run is paused, ends or is retried, so a claimed run is one a node is driving.)
///
/// A node that does not prove the token is left its claims too: a claim is a fact of the log,
/// fenced by the log, and whoever can write the `nodes` row can append to the log anyway. Taking
/// its runs over gained nothing and cost a livelock: two nodes with different tokens on one
/// database each took the other's run back, over 1,600 claims in three minutes and the agent
/// never past its start. Trust is what is sent to a node (the token, a client's request),
/// never [`Node::trusts`] here.
pub(crate) fn may_take(view: &RunView, me: &Node, nodes: &[NodeSeen]) -> bool {
    match view.node.as_deref() {
        None => true,
        Some(owner) if owner == me.id => true,
        Some(owner) => !nodes
            .iter()
            .any(|node| node.beat.node_id == owner && node.holds_lease()),
    }
}

/// Whether this node can work on `view`'s repository: any node can reach one named by URL,
/// only the machines that see it a local path.
pub(crate) fn sees_workspace(view: &RunView) -> bool {
    crate::repos::url_of(&view.workspace_root).is_some()
        || std::path::Path::new(&view.workspace_root).is_dir()
}

/// Beats, wakes the scheduler for runs other nodes created or gave up, and stops drivers
/// that lost their run; until `shutdown`, then says goodbye.
pub(crate) async fn serve(
    membership: Arc<Membership>,
    scheduler: Arc<impl Drivers>,
    shutdown: CancellationToken,
) {
    let node = Arc::clone(&membership.node);
    let (lost, mut lost_runs) = mpsc::unbounded_channel::<RunId>();
    let watcher = watch_claims(&membership, &scheduler, &shutdown, lost);
    let mut last_beat = Instant::now();
    // Whether the last beat failed: a store that is down is warned of once, not at every beat
    // (five a lease), and `/health` says it meanwhile.
    let mut failing = false;
    let mut every = tokio::time::interval(node.heartbeat_every());
    loop {
        tokio::select! {
            _ = every.tick() => {
                let store = Arc::clone(&membership.store);
                let beat = NodeBeat {
                    node_id: node.id.clone(),
                    name: node.name.clone(),
                    address: node.address.clone(),
                    capacity: scheduler.capacity() as u32,
                    runs: scheduler.running_count() as u32,
                    lease_ms: node.lease.as_millis() as u64,
                    proof: node.key.prove(&node.id, &node.address),
                };
                match blocking(move || store.beat(&beat)).await {
                    Ok(()) => {
                        last_beat = Instant::now();
                        // (A node whose lease was lost meanwhile says so as it claims again.)
                        if std::mem::take(&mut failing)
                            && !membership.lease_lost.load(Ordering::SeqCst)
                        {
                            tracing::info!("this node's heartbeat is recorded again");
                        }
                        membership.set_lease_lost(false, scheduler.as_ref());
                    }
                    Err(error) => {
                        if std::mem::replace(&mut failing, true) {
                            tracing::debug!(%error, "cannot record this node's heartbeat");
                        } else {
                            tracing::warn!(%error, "cannot record this node's heartbeat; trying at every beat");
                        }
                        if last_beat.elapsed() >= node.lease {
                            // Another node may be taking these runs over: stop first, and take
                            // none (not even those still claimed by this node) until a beat
                            // is recorded again.
                            if !membership.lease_lost.load(Ordering::SeqCst) {
                                tracing::warn!("this node's lease is over: stopping its drivers");
                            }
                            membership.set_lease_lost(true, scheduler.as_ref());
                            scheduler.stop_all().await;
                        }
                    }
                }
                // A node whose lease ended may have left runs to take.
                scheduler.wake();
            }
            Some(run_id) = lost_runs.recv() => {
                if scheduler.is_running(run_id) {
                    // Stopping waits for the driver (its agent's grace): not in this loop, which
                    // beats.
                    let membership = Arc::clone(&membership);
                    let scheduler = Arc::clone(&scheduler);
                    tokio::spawn(async move {
                        if membership.has_lost(run_id).await {
                            tracing::info!(%run_id, "another node claimed, paused or canceled this run: stopping its driver and its agent");
                            scheduler.stop(run_id).await;
                        }
                    });
                }
            }
            () = shutdown.cancelled() => break,
        }
    }
    drop(watcher);
    let store = Arc::clone(&membership.store);
    let id = node.id.clone();
    if let Err(error) = blocking(move || store.leave(&id)).await {
        tracing::warn!(%error, "cannot record that this node leaves");
    }
}

/// Reads every event committed from now on (other nodes' too) on a thread of its own and hands
/// each to the event streams; a claim by another node, a pause or a cancel is sent to `lost`,
/// and whatever may make a run claimable wakes the scheduler. Ends when the returned guard is dropped.
fn watch_claims(
    membership: &Membership,
    scheduler: &Arc<impl Drivers>,
    shutdown: &CancellationToken,
    lost: mpsc::UnboundedSender<RunId>,
) -> tokio_util::sync::DropGuard {
    let stop = shutdown.child_token();
    let guard = stop.clone().drop_guard();
    let store = Arc::clone(&membership.store);
    let journal = membership.journal.clone();
    let scheduler = Arc::clone(scheduler);
    let me = membership.node.id.clone();
    std::thread::spawn(move || {
        // From the log's end as first read; a store that cannot be reached yet (the node
        // started while its server was down) is waited for, or the node would never hear of
        // another's claim, pause or cancel.
        let mut said = false;
        let mut subscription = loop {
            match store.last_seq().and_then(|last| store.subscribe(last)) {
                Ok(subscription) => break subscription,
                Err(error) if error.is_unavailable() && !stop.is_cancelled() => {
                    if !said {
                        tracing::warn!(%error, "cannot follow the log for other nodes' claims yet; trying again");
                        said = true;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot follow the log for other nodes' claims");
                    return;
                }
            }
        };
        while !stop.is_cancelled() {
            let record = match subscription.recv_timeout(Duration::from_millis(500)) {
                Ok(Some(record)) => record,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%error, "stopped following the log for other nodes' claims");
                    return;
                }
            };
            match &record.event {
                Event::RunClaimed(claimed) if claimed.node_id != me => {
                    let _ = lost.send(record.run_id);
                }
                // Paused or canceled through any node: the driving node stops at once (one
                // that recorded it itself stopped its driver first).
                Event::RunPaused(_) | Event::RunCanceled(_) => {
                    let _ = lost.send(record.run_id);
                    scheduler.wake();
                }
                Event::RunCreated(_)
                | Event::RunResumed(_)
                | Event::RunRetried(_)
                | Event::ChangesRequested(_)
                | Event::RunCompleted(_)
                | Event::RunFailed(_) => scheduler.wake(),
                _ => {}
            }
            journal.learned(&record);
        }
    });
    guard
}

#[cfg(test)]
mod tests {
    use loop_core::RunStatus;

    use super::*;

    fn node(id: &str) -> Node {
        Node {
            id: id.to_owned(),
            name: id.to_owned(),
            address: String::new(),
            lease: Duration::from_secs(15),
            key: ClusterKey::new(TOKEN),
        }
    }

    const TOKEN: &str = "the cluster's token";

    fn seen(id: &str, age_ms: u64, left: bool) -> NodeSeen {
        proven_by(id, age_ms, left, TOKEN)
    }

    fn proven_by(id: &str, age_ms: u64, left: bool, token: &str) -> NodeSeen {
        NodeSeen {
            beat: NodeBeat {
                node_id: id.to_owned(),
                name: id.to_owned(),
                address: String::new(),
                capacity: 3,
                runs: 1,
                lease_ms: 15_000,
                proof: ClusterKey::new(token).prove(id, ""),
            },
            started_ms: 0,
            heartbeat_ms: 0,
            age_ms,
            left,
        }
    }

    fn view(status: RunStatus, owner: Option<&str>) -> RunView {
        let json = serde_json::json!({
            "id": "01a21350-1f27-75a5-bc3b-0076ab9d10be",
            "name": "n", "name_source": "spec_slug", "status": status.as_str(),
            "workspace_root": "file:///srv/w.git", "spec_path": "s", "plan_path": "p",
            "created_at": "", "updated_at": "", "created_ms": 0, "updated_ms": 0,
            "worktree": {"enabled": true, "provider": null, "worktree_path": null,
                "base_branch": null, "run_branch": null, "merge_target_branch": null,
                "merge_strategy": "squash", "removed": false},
            "iteration": 0, "tasks_done": 0, "tasks_total": 0, "current_step": null,
            "exit_reason": null, "failure_reason": null, "cost_usd": 0.0, "postmortem": null,
            "last_seq": 1, "version": 1, "node": owner,
        });
        serde_json::from_value(json).expect("a run view")
    }

    #[test]
    fn a_running_run_stays_with_a_node_that_holds_its_lease() {
        let me = node("b");
        let nodes = [seen("a", 2_000, false)];
        assert!(!may_take(&view(RunStatus::Running, Some("a")), &me, &nodes));
        // Its own or unclaimed: free to take.
        assert!(may_take(&view(RunStatus::Running, Some("b")), &me, &nodes));
        assert!(may_take(&view(RunStatus::Running, None), &me, &nodes));
        assert!(!may_take(&view(RunStatus::Pending, Some("a")), &me, &nodes));
        assert!(may_take(&view(RunStatus::Pending, None), &me, &nodes));
    }

    /// Two nodes with different tokens each took the other's run over, again and again: a
    /// claim is left to a live node whether or not it proves the token (it is sent nothing).
    #[test]
    fn a_live_node_keeps_its_claim_whatever_its_proof_so_two_tokens_do_not_fight() {
        let me = node("b");
        let running = view(RunStatus::Running, Some("a"));
        assert!(!may_take(&running, &me, &[seen("a", 10, false)]));
        let stranger = proven_by("a", 10, false, "another token");
        assert!(!me.trusts(&stranger));
        assert!(!may_take(&running, &me, &[stranger]));
        assert!(may_take(
            &running,
            &me,
            &[proven_by("a", 15_000, false, "another token")]
        ));
    }

    #[test]
    fn a_silent_a_departed_or_an_unknown_node_loses_its_runs() {
        let me = node("b");
        let running = view(RunStatus::Running, Some("a"));
        assert!(may_take(&running, &me, &[seen("a", 15_000, false)]));
        assert!(may_take(&running, &me, &[seen("a", 10, true)]));
        assert!(may_take(&running, &me, &[]));
    }

    #[test]
    fn a_run_on_a_path_goes_only_to_a_node_that_sees_the_path_one_by_url_anywhere() {
        let here = tempfile::tempdir().expect("a directory");
        let mut run = view(RunStatus::Pending, None);
        assert!(sees_workspace(&run), "{}", run.workspace_root);
        run.workspace_root = here.path().to_string_lossy().into_owned();
        assert!(sees_workspace(&run));
        run.workspace_root = here.path().join("elsewhere").to_string_lossy().into_owned();
        assert!(!sees_workspace(&run), "a path this node cannot see");
    }
}
