//! The driver's hold on its run, checked where an effect lands (`specs/event-log.md`,
//! "Effects and their fences"): the claim in the log, read afresh right before a push or a
//! merge; the run's fence on the remote for a run by URL in a cluster, seized before any other
//! effect there and moved with every push; the run branch pushed under both.

use std::path::PathBuf;
use std::time::Duration;

use loop_core::RunState;
use loop_core::fence::{FenceEntry, FenceVerdict};

use super::Driver;
use crate::error::RuntimeError;
use crate::fencing::Taken;
use crate::repos::fence::{FenceError, Update};

impl Driver {
    /// `Ok` while the log, read now (not the folded copy), says this node's claim on the run
    /// holds and the run is RUNNING; [`RuntimeError::Fenced`] once another node claimed it or
    /// it was paused, canceled or ended through any node. Outside a cluster, while RUNNING.
    /// While the store cannot be reached, it waits for it (the effect waits with it).
    pub(super) async fn still_holds(&self) -> Result<(), RuntimeError> {
        let run_id = self.run.run_id;
        let journal = &self.services.journal;
        let records = crate::journal::patiently(&self.cancel, Duration::from_secs(2), || {
            journal.read_run(run_id)
        })
        .await?;
        let state =
            RunState::fold(&records).map_err(|error| RuntimeError::CorruptRun { run_id, error })?;
        let mine = match self.services.journal.node_id() {
            Some(node) => state.claimed_by() == Some(node),
            None => true,
        };
        if mine && state.status() == Some(loop_core::RunStatus::Running) {
            return Ok(());
        }
        Err(RuntimeError::Fenced {
            run_id,
            node: state
                .claimed_by()
                .map_or_else(|| "(none: the run was stopped)".to_owned(), str::to_owned),
        })
    }

    /// The remote refused an effect for the run's fence (`moved`: what the fence says now):
    /// judged against the log, either this node lost the run ([`RuntimeError::Fenced`]: the
    /// driver stops), or the entry is one the log never took or has yet to take (`Ok`: the
    /// driver takes the fence again before its next effect).
    pub(super) async fn fence_moved(
        &mut self,
        moved: Option<&FenceEntry>,
    ) -> Result<(), RuntimeError> {
        self.fence = None;
        let (Some(node), Some(version)) = (
            self.services.journal.node_id().map(str::to_owned),
            self.claimed_at,
        ) else {
            return Ok(());
        };
        let verdict = crate::fencing::judge(
            &self.services.journal,
            self.run.run_id,
            moved,
            &node,
            version,
        )
        .await?;
        match verdict {
            FenceVerdict::Lost { node, .. } => {
                tracing::info!(run_id = %self.run.run_id, %node, "the remote refused this node's effect: another node holds the run");
                Err(RuntimeError::Fenced {
                    run_id: self.run.run_id,
                    node,
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether a push to a run's remote may go now: always on a node of its own; in a cluster
    /// only with the claim read afresh as this node's and the run's fence taken (a fence that
    /// cannot be taken yet leaves the push for the next step).
    async fn ready_to_push(&mut self) -> Result<bool, RuntimeError> {
        if self.services.journal.node_id().is_none() {
            return Ok(true);
        }
        self.still_holds().await?;
        self.take_fence().await?;
        Ok(self.fence.is_some())
    }

    /// A run by URL in a cluster: takes the run's fence on the remote for this node's claim
    /// (adopting it when the claim's own entry is there, as after the claim), before any
    /// effect there. A fence held for a later claim, pause or cancel means this node lost the
    /// run ([`RuntimeError::Fenced`]); a remote that cannot be reached leaves the driver
    /// without a fence, and it tries again before its next push.
    pub(super) async fn take_fence(&mut self) -> Result<(), RuntimeError> {
        if self.run.repo_url.is_none() || self.fence.is_some() {
            return Ok(());
        }
        let Some(node) = self.services.journal.node_id().map(str::to_owned) else {
            return Ok(());
        };
        let state = self.services.journal.state(self.run.run_id).await?;
        let (Some(by), Some(claim)) = (state.claimed_by(), state.claimed_at()) else {
            return Err(RuntimeError::Fenced {
                run_id: self.run.run_id,
                node: String::new(),
            });
        };
        if by != node {
            return Err(RuntimeError::Fenced {
                run_id: self.run.run_id,
                node: by.to_owned(),
            });
        }
        self.claimed_at = Some(claim);
        let checkout = PathBuf::from(&self.run.created.workspace_root);
        let taken = crate::fencing::take(
            &self.services.journal,
            &checkout,
            "origin",
            self.run.run_id,
            claim,
            "claim",
        )
        .await?;
        match taken {
            Taken::Held(fence) => {
                self.fence = Some(fence);
                Ok(())
            }
            Taken::Lost { node } => Err(RuntimeError::Fenced {
                run_id: self.run.run_id,
                node,
            }),
            Taken::Unavailable(why) => {
                tracing::warn!(run_id = %self.run.run_id, %why, "cannot take the run's fence on the remote; trying again before the next push");
                Ok(())
            }
        }
    }

    /// A run by URL: its branch pushed to the repository once it moved, so that another node
    /// can go on from there; in a cluster only while the log says this node holds the run
    /// (checked right before), and atomically with the run's fence. A push that fails is tried
    /// again after the next step; one the remote refuses for the fence stops the driver if
    /// the log says another node holds the run.
    pub(super) async fn push_run_branch(&mut self) -> Result<(), RuntimeError> {
        let (Some(url), Some(worktree)) = (&self.run.repo_url, &self.run.worktree) else {
            return Ok(());
        };
        if self.cancel.is_cancelled() || !self.run.workdir.is_dir() {
            return Ok(());
        }
        let (url, branch) = (url.clone(), worktree.run_branch.clone());
        let checkout = PathBuf::from(&self.run.created.workspace_root);
        if !crate::repos::branch_moved(&self.run.workdir, &branch).await {
            return Ok(());
        }
        if !self.ready_to_push().await? {
            return Ok(());
        }
        let pushed = crate::repos::push_run_branch(
            &checkout,
            &self.run.workdir,
            &branch,
            self.fence.as_mut(),
        )
        .await;
        match pushed {
            Ok(true) => tracing::debug!(%url, %branch, "pushed the run branch"),
            Ok(false) => {}
            Err(FenceError::Moved(now)) => self.fence_moved(now.as_ref()).await?,
            Err(error) => {
                tracing::warn!(%error, "cannot push the run branch; trying again after the next step")
            }
        }
        Ok(())
    }

    /// A run by URL: every discarded experiment candidate's ref
    /// (`refs/loop/experiments/<run>/<iteration>`) pushed to the remote, so the candidates stay
    /// reachable where the run's branch is, not only in this node's checkout. Fenced like the
    /// branch (the claim read afresh, the remote's fence moved on in the same atomic push), and
    /// each ref expected absent there: a candidate's ref never moves once made. A driver that
    /// starts again (after a crash, on another node) pushes again what it has not seen pushed;
    /// the remote refuses a ref it already has, and then says which it has.
    pub(super) async fn push_kept_refs(&mut self) -> Result<(), RuntimeError> {
        if self.run.repo_url.is_none() || self.cancel.is_cancelled() {
            return Ok(());
        }
        let pending: Vec<(String, String)> = self
            .experiment
            .trials
            .iter()
            .filter_map(|trial| Some((trial.kept_ref.clone()?, trial.commit.clone()?)))
            .filter(|(kept_ref, _)| !self.kept_refs_pushed.contains(kept_ref))
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        if !self.ready_to_push().await? {
            return Ok(());
        }
        let checkout = PathBuf::from(&self.run.created.workspace_root);
        let updates: Vec<Update<'_>> = pending
            .iter()
            .map(|(reference, commit)| Update {
                reference,
                old: None,
                new: commit,
            })
            .collect();
        match crate::repos::push_new_refs(&checkout, &updates, self.fence.as_mut()).await {
            Ok(()) => {
                tracing::debug!(
                    refs = pending.len(),
                    "pushed the discarded candidates' refs"
                );
                self.kept_refs_pushed
                    .extend(pending.into_iter().map(|(reference, _)| reference));
            }
            Err(FenceError::Moved(now)) => self.fence_moved(now.as_ref()).await?,
            Err(error) => {
                // Most likely a ref the remote already has (pushed before a crash): learn which,
                // so the next push carries only the others.
                let prefix = format!("refs/loop/experiments/{}/", self.run.run_id);
                match crate::repos::remote_refs(&checkout, &prefix).await {
                    Ok(there) => {
                        for (reference, commit) in &pending {
                            if there.iter().any(|(r, c)| r == reference && c == commit) {
                                self.kept_refs_pushed.insert(reference.clone());
                            }
                        }
                    }
                    Err(listing) => tracing::warn!(%listing, "cannot list the remote's refs"),
                }
                tracing::warn!(%error, "cannot push the discarded candidates' refs; trying again after the next step");
            }
        }
        Ok(())
    }
}
