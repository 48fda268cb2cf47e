//! Asking another node of the cluster for what only its machine has: a step's output or a
//! run's files, when the run works in that node's data dir (a run by URL).
//!
//! The request carries the cluster's token, so it goes only where the runtime says a member is
//! (a node that proves the token, `loop-runtime`'s `cluster/trust.rs`), and only for one of a
//! fixed set of paths ([`Upstream`]) built from values already checked: a run id, a step id, an
//! offset, an artifact name of plain parts, each part percent-encoded. No redirect is
//! followed. The answer is passed through as it arrives, its status kept, but served as this
//! node's: its content type only when it is one this API answers with (JSON, plain text, an
//! event stream; anything else becomes `application/octet-stream`), and with this node's
//! `Content-Security-Policy` and `nosniff`, so no page from elsewhere runs on this origin.

use std::path::{Component, Path};

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use loop_core::{RunId, StepId};

use crate::error::ApiError;
use crate::state::AppState;

/// What may be asked of another node.
#[derive(Clone, Debug)]
pub enum Upstream<'a> {
    /// `GET /runs/{id}/output?step=&offset=`
    Output {
        run: RunId,
        step: StepId,
        offset: u64,
    },
    /// `GET /runs/{id}/artifacts`
    Artifacts { run: RunId },
    /// `GET /runs/{id}/artifacts/{name}`
    Artifact { run: RunId, name: &'a str },
}

impl Upstream<'_> {
    /// The path and query on the other node; an artifact name that is not plain parts (`..`,
    /// an absolute path, an empty part) is refused.
    fn path(&self) -> Result<String, ApiError> {
        Ok(match self {
            Upstream::Output { run, step, offset } => {
                format!("/runs/{run}/output?step={step}&offset={offset}")
            }
            Upstream::Artifacts { run } => format!("/runs/{run}/artifacts"),
            Upstream::Artifact { run, name } => {
                let parts: Vec<&str> = name.split('/').collect();
                let plain = !name.is_empty()
                    && Path::new(name)
                        .components()
                        .all(|part| matches!(part, Component::Normal(_)))
                    && parts
                        .iter()
                        .all(|part| !part.is_empty() && *part != "." && *part != "..");
                if !plain {
                    return Err(ApiError::bad_request(format!(
                        "artifact name {name:?} must be a plain path inside the run directory"
                    )));
                }
                let encoded: Vec<String> = parts.iter().map(|part| encode(part)).collect();
                format!("/runs/{run}/artifacts/{}", encoded.join("/"))
            }
        })
    }
}

/// A path segment with everything but unreserved characters percent-encoded.
fn encode(part: &str) -> String {
    part.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The content types an answer of this API has; any other is not passed on as it is.
const PASSED_TYPES: &[&str] = &["application/json", "text/plain", "text/event-stream"];

/// What every proxied answer says of itself, whatever the other node said.
const CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

/// `GET <owner><upstream>` with the cluster's token; `None` when the node does not answer (it
/// just died, say): the caller then serves what this node has.
pub async fn get(
    state: &AppState,
    owner: &str,
    upstream: Upstream<'_>,
) -> Result<Option<Response>, ApiError> {
    let url = format!("{}{}", owner.trim_end_matches('/'), upstream.path()?);
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "cannot make a client to ask another node");
            return Ok(None);
        }
    };
    let mut request = client.get(&url);
    if let Some(token) = &state.token {
        request = request.bearer_auth(token);
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::info!(%owner, %error, "the node that has the run's files did not answer: serving from here");
            return Ok(None);
        }
    };
    let status = answer.status();
    let content_type = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .filter(|value| {
            let media = value.split(';').next().unwrap_or("").trim();
            PASSED_TYPES
                .iter()
                .any(|passed| media.eq_ignore_ascii_case(passed))
        })
        .and_then(|value| HeaderValue::from_str(value).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = axum::body::Body::from_stream(answer.bytes_stream()).into_response();
    *response.status_mut() = axum::http::StatusCode::from_u16(status.as_u16()).unwrap_or_default();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(Some(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunId {
        "01a21350-1f27-75a5-bc3b-0076ab9d10be".parse().unwrap()
    }

    #[test]
    fn only_plain_artifact_names_are_asked_for_each_part_encoded() {
        let path = |name| Upstream::Artifact { run: run(), name }.path();
        assert_eq!(
            path("iter-01-impl.log").unwrap(),
            format!("/runs/{}/artifacts/iter-01-impl.log", run())
        );
        assert_eq!(
            path("analysis/a b?.md").unwrap(),
            format!("/runs/{}/artifacts/analysis/a%20b%3F.md", run())
        );
        assert_eq!(
            path("%2e%2e").unwrap(),
            format!("/runs/{}/artifacts/%252e%252e", run()),
            "an escape is sent as the characters it is, not decoded again"
        );
        for bad in [
            "../../admin",
            "..",
            "a/../../b",
            "/etc/passwd",
            "",
            "a//b",
            "./a",
            "a/",
        ] {
            assert!(path(bad).is_err(), "{bad:?}");
        }
    }

    /// Percent-decodes one path segment as the receiving node does.
    fn decode(segment: &str) -> Vec<u8> {
        let bytes = segment.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("two hex digits");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Whatever name a client gives, the request sent upstream is one of the fixed paths:
        /// its name's parts, each one path segment that decodes back to the part, none of
        /// them empty, `.` or `..`; and a name is refused exactly when it has such a part.
        #[test]
        fn an_artifact_name_is_sent_as_its_own_parts_or_not_at_all(
            name in "[a-z./%?#\\\\ é-]{0,24}",
        ) {
            let parts: Vec<&str> = name.split('/').collect();
            let plain = parts
                .iter()
                .all(|part| !part.is_empty() && *part != "." && *part != "..");
            let sent = Upstream::Artifact { run: run(), name: &name }.path();
            proptest::prop_assert_eq!(sent.is_ok(), plain, "{:?}", name);
            if let Ok(path) = sent {
                let prefix = format!("/runs/{}/artifacts/", run());
                let rest = path.strip_prefix(&prefix).expect("the fixed prefix");
                proptest::prop_assert!(
                    rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%/".contains(&b)),
                    "{}", rest
                );
                let segments: Vec<Vec<u8>> = rest.split('/').map(decode).collect();
                let expected: Vec<Vec<u8>> = parts.iter().map(|p| p.as_bytes().to_vec()).collect();
                proptest::prop_assert_eq!(segments, expected);
            }
        }
    }
}
