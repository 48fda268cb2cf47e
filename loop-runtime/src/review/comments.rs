//! A person's comments on lines of a finished run's diff: each recorded as `REVIEW_COMMENT`,
//! listed as a fold of the run's log. [`crate::Runtime::request_changes`] sends them back to
//! the agent.

use loop_core::event::ReviewComment;
use loop_core::projection::{CommentView, Comments};
use loop_core::{Command, RunId};

use super::invalid;
use crate::error::RuntimeError;
use crate::services::Services;

/// Records `comment` on the run; the comment as listed.
pub(crate) async fn comment(
    services: &Services,
    run_id: RunId,
    comment: ReviewComment,
) -> Result<CommentView, RuntimeError> {
    if let Some(missing) = comment.missing() {
        return Err(invalid(
            format!("comment on run {run_id}"),
            format!("a comment needs {missing}"),
        ));
    }
    let records = services
        .journal
        .execute(run_id, vec![Command::Comment(comment)])
        .await?;
    Comments::fold(&records)
        .comments
        .pop()
        .ok_or(RuntimeError::UnknownRun(run_id))
}

/// The run's comments, in the order they were made.
pub(crate) async fn comments(
    services: &Services,
    run_id: RunId,
) -> Result<Vec<CommentView>, RuntimeError> {
    let records = services.journal.read_run(run_id).await?;
    if records.is_empty() {
        return Err(RuntimeError::UnknownRun(run_id));
    }
    Ok(Comments::fold(&records).comments)
}
