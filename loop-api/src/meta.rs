//! What every answer may carry: errors, the health check, a run's files, output frames.

use loop_core::StepId;
use serde::{Deserialize, Serialize};

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// What went wrong, for programs: a snake_case word such as `not_found`,
    /// `illegal_transition` or `bad_request`.
    pub code: String,
}

/// `GET /health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok`, or `degraded` while the event log refuses writes.
    pub status: String,
    /// The daemon's version.
    pub version: String,
    /// Why the log refuses writes, while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

/// One file of a run directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Artifact {
    /// Path relative to the run directory, `/`-separated.
    pub name: String,
    pub bytes: u64,
}

/// `{"artifacts": [Artifact]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ArtifactsEnvelope {
    pub artifacts: Vec<Artifact>,
}

/// The data of an output frame: a piece of a step's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OutputChunk {
    pub step_id: StepId,
    /// Byte offset of `content` in the step's output.
    pub offset: u64,
    pub content: String,
}
