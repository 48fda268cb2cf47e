//! A run's review comments as the API shows them (`GET /runs/{id}/comments`): each with when
//! it was made and whether it has gone back to the agent with a request for changes.

use serde::{Deserialize, Serialize};

use crate::event::{DiffSide, Event, EventRecord};
use crate::ids::Seq;
use crate::time::rfc3339_ms;

/// One comment on a line of a run's diff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Comment))]
pub struct CommentView {
    /// The `REVIEW_COMMENT` event's seq: the comment's identity.
    pub seq: Seq,
    /// RFC 3339.
    pub created_at: String,
    pub path: String,
    pub line: u32,
    pub side: DiffSide,
    pub body: String,
    /// Which request for changes took it to the agent (1 for the run's first), `None` while it
    /// waits for one.
    pub request: Option<u32>,
}

/// The fold: the run's comments in the order they were made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comments {
    pub comments: Vec<CommentView>,
    requests: u32,
}

impl Comments {
    pub fn fold<'a>(records: impl IntoIterator<Item = &'a EventRecord>) -> Comments {
        let mut comments = Comments::default();
        for record in records {
            comments.apply(record);
        }
        comments
    }

    pub fn apply(&mut self, record: &EventRecord) {
        match &record.event {
            Event::ReviewComment(comment) => self.comments.push(CommentView {
                seq: record.seq,
                created_at: rfc3339_ms(record.ts_ms),
                path: comment.path.clone(),
                line: comment.line,
                side: comment.side,
                body: comment.body.clone(),
                request: None,
            }),
            Event::ChangesRequested(_) => {
                self.requests += 1;
                for comment in &mut self.comments {
                    comment.request.get_or_insert(self.requests);
                }
            }
            _ => {}
        }
    }
}
