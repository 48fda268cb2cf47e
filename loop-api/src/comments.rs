//! Review comments on a finished run's diff, and the request that sends the run back to work
//! with them (contract §7).

use loop_core::event::DiffSide;
use serde::{Deserialize, Serialize};

pub use loop_core::projection::CommentView as Comment;

/// `POST /runs/{id}/comments`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommentBody {
    /// The file, as the diff names it.
    pub path: String,
    /// The line, counted from 1, in the run branch's version of the file (or the base's, with
    /// `side: old`).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub line: u32,
    /// What to change, in the person's words.
    pub body: String,
    /// `new` (the default: an added or unchanged line) or `old` (a removed line).
    #[serde(default)]
    pub side: DiffSide,
}

/// `{"comment": Comment}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommentEnvelope {
    pub comment: Comment,
}

/// `{"comments": [Comment]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommentsEnvelope {
    pub comments: Vec<Comment>,
}

/// `POST /runs/{id}/request-changes` (may be empty when there are comments).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestChangesBody {
    /// Words about the change as a whole, beside the line comments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}
