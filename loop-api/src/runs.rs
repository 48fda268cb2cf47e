//! Runs: the `POST /runs` body and the envelopes the run endpoints answer with.

use std::collections::BTreeMap;

use loop_core::config::{self, ConfigError, Layer};
use loop_core::projection::{RunView, StepView};
use loop_core::{EventRecord, RunId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::flags::RunFlags;

/// `POST /runs`: the request, configuration keys, and any run flag as a `snake_case` field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateRun {
    /// The spec, relative to `workspace_root`.
    pub spec_path: String,
    /// The plan; `<plans_dir>/<spec stem>-plan.md` unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_path: Option<String>,
    /// The repository the run works on: an absolute path to its top directory. Empty when the
    /// run names `repo_url` instead.
    #[serde(default)]
    pub workspace_root: String,
    /// The repository by URL (`file://`, ssh, https) instead of a path: the node mirrors it,
    /// starts the run from `base_branch` there, pushes the run branch after each step, and
    /// merges by pushing. Any node of a cluster can continue the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Configuration keys (`.loop/config` names) and their values: strings, numbers or
    /// booleans. Below the flags, above the workspace's `.loop/config`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, ConfigValue>))]
    pub config: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub flags: RunFlags,
}

/// Why a `POST /runs` body was refused: the field at fault and what is wrong with it.
#[derive(Debug, Error)]
pub enum BodyError {
    #[error("invalid JSON body: {0}")]
    Syntax(String),
    #[error("field `{field}`: {problem}")]
    Field { field: String, problem: String },
    #[error("invalid body: {0}")]
    Shape(String),
}

/// The fields of [`CreateRun`] that are not flags.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    spec_path: String,
    #[serde(default)]
    plan_path: Option<String>,
    #[serde(default)]
    workspace_root: String,
    #[serde(default)]
    repo_url: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    config: BTreeMap<String, Value>,
}

const REQUEST_FIELDS: [&str; 6] = [
    "spec_path",
    "plan_path",
    "workspace_root",
    "repo_url",
    "name",
    "config",
];

impl CreateRun {
    /// Reads a body, every mistake naming its field (`field \`iterations\`: invalid type…`,
    /// `unknown field \`colour\``). An empty body is an empty object.
    pub fn from_json(bytes: &[u8]) -> Result<CreateRun, BodyError> {
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            bytes
        };
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| BodyError::Syntax(e.to_string()))?;
        let Value::Object(mut all) = value else {
            return Err(BodyError::Shape(format!("expected an object, got {value}")));
        };
        // The flags are what is left once the request's own fields are taken out; an unknown
        // field is refused by the flags, which deny them.
        let mut request = serde_json::Map::new();
        for field in REQUEST_FIELDS {
            if let Some(value) = all.remove(field) {
                request.insert(field.to_owned(), value);
            }
        }
        let request: Request = typed(Value::Object(request))?;
        let flags: RunFlags = typed(Value::Object(all))?;
        match (request.workspace_root.is_empty(), &request.repo_url) {
            (true, None) => {
                return Err(BodyError::Field {
                    field: "workspace_root".to_owned(),
                    problem: "missing: name the repository by workspace_root (a path) or \
                              repo_url"
                        .to_owned(),
                });
            }
            (false, Some(_)) => {
                return Err(BodyError::Field {
                    field: "repo_url".to_owned(),
                    problem: "give workspace_root or repo_url, not both".to_owned(),
                });
            }
            _ => {}
        }
        Ok(CreateRun {
            spec_path: request.spec_path,
            plan_path: request.plan_path,
            workspace_root: request.workspace_root,
            repo_url: request.repo_url,
            name: request.name,
            config: request.config,
            flags,
        })
    }

    /// The `config` values as a configuration layer (strings, numbers and booleans as text),
    /// each checked; a value of another type names its key.
    pub fn config_layer(&self) -> Result<Layer, BodyError> {
        let mut layer = Layer::new();
        for (key, value) in &self.config {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => {
                    return Err(BodyError::Field {
                        field: format!("config.{key}"),
                        problem: format!("expected a string, number or boolean, got {other}"),
                    });
                }
            };
            layer.insert(key.clone(), text);
        }
        Ok(layer)
    }

    /// The run's configuration layer from this request: the flags over the `config` values,
    /// each checked (a mistake names its key).
    pub fn layer(&self) -> Result<Layer, CreateRunError> {
        let mut layer = Layer::new();
        for (key, value) in self.config_layer()? {
            layer.insert(key.clone(), config::check_value("request", &key, &value)?);
        }
        layer.extend(self.flags.layer("request")?);
        Ok(layer)
    }
}

/// A request that does not make a run configuration.
#[derive(Debug, Error)]
pub enum CreateRunError {
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, BodyError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let problem = error.into_inner().to_string();
        if path == "." {
            BodyError::Shape(problem)
        } else {
            BodyError::Field {
                field: path,
                problem,
            }
        }
    })
}

/// The schema of a configuration value in `POST /runs`: a string, a number or a boolean.
#[cfg(feature = "openapi")]
#[derive(Debug)]
pub struct ConfigValue;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ConfigValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(String::schema())
            .item(f64::schema())
            .item(bool::schema())
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ConfigValue {}

/// `{"run": Run}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunEnvelope {
    pub run: RunView,
}

/// A page of runs, newest first; `next` is the `before` of the next page, `null` on the last.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunsPage {
    pub runs: Vec<RunView>,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub next: Option<RunId>,
}

/// `{"steps": [Step]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepsEnvelope {
    pub steps: Vec<StepView>,
}

/// `{"events": [Event]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventsEnvelope {
    pub events: Vec<EventRecord>,
}

/// A run named ambiguously: the runs the reference could mean (`GET /runs/lookup`, 409).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Candidates {
    pub error: String,
    pub code: String,
    pub runs: Vec<RunView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_reads_back_what_a_client_writes() {
        let body = CreateRun {
            spec_path: "specs/feature.md".to_owned(),
            workspace_root: "/repo".to_owned(),
            config: BTreeMap::from([("reviewer".to_owned(), Value::Bool(false))]),
            flags: RunFlags {
                iterations: Some(3),
                no_worktree: true,
                ..RunFlags::default()
            },
            ..CreateRun::default()
        };
        let json = serde_json::to_vec(&body).expect("json");
        assert_eq!(CreateRun::from_json(&json).expect("reads"), body);
        let layer = body.layer().expect("valid");
        assert_eq!(layer["reviewer"], "false");
        assert_eq!(layer["iterations"], "3");
    }

    #[test]
    fn mistakes_name_their_field() {
        let error = |text: &str| {
            CreateRun::from_json(text.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert!(
            error(r#"{"spec_path":"s","workspace_root":"/","iterations":"many"}"#)
                .starts_with("field `iterations`")
        );
        assert!(error(r#"{"spec_path":"s","workspace_root":"/","colour":1}"#).contains("colour"));
        assert!(error("{not json").starts_with("invalid JSON body"));
        assert!(error(r#"{"workspace_root":"/"}"#).contains("spec_path"));
        assert!(error(r#"{"spec_path":"s"}"#).starts_with("field `workspace_root`: missing"));
        assert!(
            error(r#"{"spec_path":"s","workspace_root":"/","repo_url":"file:///r.git"}"#)
                .starts_with("field `repo_url`")
        );
        let by_url = CreateRun::from_json(
            br#"{"spec_path":"s","repo_url":"file:///r.git","base_branch":"main"}"#,
        )
        .expect("reads");
        assert_eq!(by_url.repo_url.as_deref(), Some("file:///r.git"));
        assert_eq!(by_url.layer().expect("valid")["base_branch"], "main");
        let nested = CreateRun::from_json(
            br#"{"spec_path":"s","workspace_root":"/","config":{"model":[1]}}"#,
        )
        .expect("reads");
        assert!(
            nested
                .layer()
                .unwrap_err()
                .to_string()
                .contains("config.model")
        );
    }
}
