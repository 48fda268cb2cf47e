//! The OpenAPI document against the routes served, and the API against its document: requests
//! generated from the document for every operation (valid ones, and mutations of them) are
//! never answered 5xx, every error is JSON `{error, code}`, and every JSON answer matches the
//! schema the document gives for its status (a Rust stand-in for schemathesis).

use std::fmt::Write as _;
use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value, json};

use crate::support::{Daemon, client, repo, run_body, start_daemon, stub, wait_for_end};

mod cases;
mod schema;

use cases::{Known, case, check};
use schema::{Rng, violation};

/// The routes of contract §3 (and the worktree routes), as `METHOD /path` with OpenAPI
/// parameter names. Each one that is served must be in the document.
const CONTRACT_ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("POST", "/runs"),
    ("GET", "/runs"),
    ("GET", "/runs/{id}"),
    ("GET", "/runs/{id}/steps"),
    ("GET", "/runs/{id}/plan"),
    ("POST", "/runs/{id}/pause"),
    ("POST", "/runs/{id}/resume"),
    ("POST", "/runs/{id}/cancel"),
    ("POST", "/runs/{id}/retry"),
    ("GET", "/runs/{id}/events"),
    ("GET", "/events"),
    ("GET", "/runs/{id}/output"),
    ("GET", "/runs/{id}/artifacts"),
    ("GET", "/runs/{id}/artifacts/{name}"),
    ("POST", "/runs/{id}/postmortem"),
    ("GET", "/runs/{id}/postmortem"),
    ("GET", "/runs/{id}/diff"),
    ("POST", "/runs/{id}/merge"),
    ("POST", "/runs/{id}/scrap"),
    ("POST", "/runs/{id}/create-pr"),
    ("GET", "/stats"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
    ("GET", "/worktrees"),
    ("POST", "/worktrees/remove"),
    ("POST", "/gc"),
];

/// The routes every build serves: they must be there, not only documented if present.
const ALWAYS_SERVED: &[&str] = &[
    "/health",
    "/runs",
    "/runs/{id}",
    "/runs/{id}/events",
    "/events",
    "/runs/{id}/diff",
    "/openapi.json",
    "/metrics",
];

/// The dashboard's routes (`loopd/src/dashboard.rs`): pages, scripts, styles and the login's
/// cookie, served beside the API and deliberately not in its document. Every other route served
/// is documented.
const DASHBOARD_ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/ui/app.js"),
    ("GET", "/ui/app.css"),
    ("GET", "/ui/login.js"),
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document(daemon: &Daemon, client: &Client) -> Value {
    let response = client
        .get(daemon.url("/openapi.json"))
        .send()
        .expect("openapi.json");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), "application/json");
    response.json().expect("the document is JSON")
}

fn content_type(response: &Response) -> String {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// Every `(METHOD, path)` the document describes.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                found.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    found
}

/// Whether a request was answered by the router's fallbacks: no such route, or not that method.
fn fell_back(response: Response) -> bool {
    let status = response.status();
    let body: Value = response.json().unwrap_or(Value::Null);
    let message = body["error"].as_str().unwrap_or("");
    status == StatusCode::METHOD_NOT_ALLOWED
        || (status == StatusCode::NOT_FOUND && message.starts_with("no route "))
}

#[test]
fn the_document_describes_exactly_the_routes_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let client = client();
    let doc = document(&daemon, &client);
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "{version}");
    let documented = operations(&doc);

    // Every documented operation is served (it does not reach a fallback)...
    let concrete = |path: &str| {
        path.replace("{id}", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
            .replace("{name}", "summary.json")
    };
    for (method, path) in &documented {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let response = client
            .request(method.clone(), daemon.url(&concrete(path)))
            .timeout(Duration::from_secs(10))
            .send()
            .expect("send");
        assert!(
            !fell_back(response),
            "{method} {path} is documented, not served"
        );
    }
    // ...and every contract route served is documented; the core ones are always served.
    for (method, path) in CONTRACT_ROUTES {
        let documented = documented.iter().any(|(m, p)| m == method && p == path);
        let response = client
            .request(
                Method::from_bytes(method.as_bytes()).expect("method"),
                daemon.url(&concrete(path)),
            )
            .timeout(Duration::from_secs(10))
            .send()
            .expect("send");
        let served = !fell_back(response);
        assert!(
            documented || !served,
            "{method} {path} is served, not documented"
        );
        assert!(
            served || !ALWAYS_SERVED.contains(path),
            "{method} {path} is not served"
        );
    }
    // The dashboard's routes are served, and kept out of the API's document (none of them
    // answers the API's JSON types).
    for (method, path) in DASHBOARD_ROUTES {
        let template = if path.starts_with("/ui/") {
            "/ui/{file}"
        } else {
            path
        };
        assert!(
            !documented
                .iter()
                .any(|(m, p)| m == method && (p == path || p == template)),
            "{method} {path} is the dashboard's, yet in the API's document"
        );
        let mut request = client
            .request(
                Method::from_bytes(method.as_bytes()).expect("method"),
                daemon.url(path),
            )
            .timeout(Duration::from_secs(10));
        if *method == "POST" {
            request = request.header(CONTENT_TYPE, "application/json").body("{}");
        }
        let response = request.send().expect("send");
        assert!(!fell_back(response), "{method} {path} is not served");
    }
}

#[test]
fn the_document_needs_the_token_like_every_route_but_health() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(
        &dir.path().join("data"),
        &[],
        &[("LOOPD_AUTH_TOKEN", "s3cret")],
    );
    let client = client();
    let refused = client
        .get(daemon.url("/openapi.json"))
        .send()
        .expect("send");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let doc: Value = client
        .get(daemon.url("/openapi.json"))
        .bearer_auth("s3cret")
        .send()
        .expect("send")
        .json()
        .expect("json");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[test]
fn generated_requests_never_get_a_server_error_and_every_answer_matches_the_document() {
    let seed = std::env::var("LOOPD_API_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_1009);
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let client = client();

    // A finished run, so that some requests reach past the "no such run" answer.
    let created: Value = client
        .post(daemon.url("/runs"))
        .json(&run_body(&repo, "one_task.sh", json!({})))
        .send()
        .expect("create")
        .json()
        .expect("json");
    let run = crate::support::run_id(&created);
    wait_for_end(&daemon, &run);
    let steps: Value = client
        .get(daemon.url(&format!("/runs/{run}/steps")))
        .send()
        .expect("steps")
        .json()
        .expect("json");
    let artifacts: Value = client
        .get(daemon.url(&format!("/runs/{run}/artifacts")))
        .send()
        .expect("artifacts")
        .json()
        .expect("json");
    let known = Known {
        workspace: json!(repo),
        run,
        steps: steps["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect(),
        artifacts: artifacts["artifacts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["name"].as_str().map(str::to_owned))
            .collect(),
    };
    assert!(!known.steps.is_empty() && !known.artifacts.is_empty());

    let doc = document(&daemon, &client);
    // A new connection for each request: one whose body the daemon refused unread (401, 404,
    // 413) is closed after the answer, and reusing it would fail the next request, not this one.
    let fresh = Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let trace = std::env::var_os("LOOPD_API_FUZZ_TRACE").is_some();
    let mut rng = Rng(fastrand::Rng::with_seed(seed));
    let mut sent = 0;
    let mut statuses = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for (method, path) in operations(&doc) {
        let operation = &doc["paths"][&path][method.to_lowercase()];
        let cases = if operation.get("requestBody").is_some() {
            24
        } else {
            12
        };
        for _ in 0..cases {
            let case = case(&daemon, &doc, &method, &path, &known, &mut rng);
            let mut request = fresh.request(case.method.clone(), case.url.clone());
            if let Some(value) = &case.last_event_id {
                request = request.header("Last-Event-ID", value.clone());
            }
            if let Some(body) = &case.body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            sent += 1;
            // A `.` or `..` segment is resolved by the client: the request then reaches
            // another route (the dashboard's `/`, say), whose answer this operation's document
            // does not describe. It must still not fail.
            let elsewhere = case.url.path_segments().map_or(0, Iterator::count)
                != path.split('/').skip(1).count();
            let (status, problem) = match request.send() {
                Ok(response) if elsewhere => {
                    let status = response.status();
                    let problem = status
                        .is_server_error()
                        .then(|| format!("answered {status}"));
                    (status.as_u16(), problem)
                }
                Ok(response) => (response.status().as_u16(), check(&doc, operation, response)),
                Err(error) => (0, Some(format!("no answer: {error}"))),
            };
            *statuses.entry(status).or_insert(0) += 1;
            if trace {
                eprintln!("{status} {} {} [{}]", case.method, case.url, case.shape);
            }
            if let Some(problem) = problem {
                let what = format!("{} {} [{}]", case.method, case.url, case.shape);
                failures.push(format!("{what:.300}\n    {problem}"));
            }
        }
    }
    eprintln!("{sent} generated requests (seed {seed}), answers by status: {statuses:?}");
    // The daemon is still up and answering.
    let health = client.get(daemon.url("/health")).send().expect("health");
    assert_eq!(health.status(), StatusCode::OK);
    assert!(sent >= 200, "only {sent} requests");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests (seed {seed}) went wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What the generated requests found, kept: each was a dropped connection (a panic) or a
/// plain-text error before it was fixed.
#[test]
fn inputs_that_once_broke_the_api_get_json_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let client = client();
    let cases: &[(&str, &str, Option<Value>, StatusCode)] = &[
        // `Duration::from_secs_f64` panicked on an age no `Duration` holds.
        (
            "POST",
            "/gc",
            Some(json!({"older_than_days": 1e300})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/gc",
            Some(json!({"older_than_days": f64::MAX})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/gc",
            Some(json!({"older_than_days": 1.5})),
            StatusCode::OK,
        ),
        // axum's own rejections of a query or a path were text/plain.
        ("GET", "/runs?limit=abc", None, StatusCode::BAD_REQUEST),
        (
            "GET",
            "/runs?limit=99999999999999999999999",
            None,
            StatusCode::BAD_REQUEST,
        ),
        ("GET", "/runs/%FF", None, StatusCode::BAD_REQUEST),
        (
            "GET",
            "/runs/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/output?offset=-1",
            None,
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, path, body, expected) in cases {
        let mut request = client.request(
            Method::from_bytes(method.as_bytes()).expect("method"),
            daemon.url(path),
        );
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().expect("an answer, not a dropped connection");
        let status = response.status();
        let kind = content_type(&response);
        let text = response.text().expect("body");
        assert_eq!(status, *expected, "{method} {path}: {text}");
        assert_eq!(kind, "application/json", "{method} {path}: {text}");
        if !status.is_success() {
            let error: Value = serde_json::from_str(&text).expect("JSON");
            assert!(
                error["error"].is_string() && error["code"].is_string(),
                "{method} {path}: {text}"
            );
        }
    }
}

/// The answer checker is not vacuous: it refuses what a drifted handler would send.
#[test]
fn the_checker_refuses_answers_that_drift_from_their_schema() {
    let doc = json!({"components": {"schemas": {
        "Page": {
            "type": "object",
            "required": ["runs"],
            "properties": {
                "runs": {"type": "array", "items": {"$ref": "#/components/schemas/Status"}},
                "next": {"oneOf": [{"type": "null"}, {"type": "string", "format": "uuid"}]},
                "limit": {"type": "integer", "minimum": 1},
            },
        },
        "Status": {"type": "string", "enum": ["RUNNING", "PAUSED"]},
    }}});
    let page = json!({"$ref": "#/components/schemas/Page"});
    let cases = [
        (json!({"runs": ["RUNNING"], "next": null, "limit": 2}), true),
        (
            json!({"runs": [], "next": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}),
            true,
        ),
        (json!({"next": null}), false),
        (json!({"runs": ["running"]}), false),
        (json!({"runs": [], "next": 7}), false),
        (json!({"runs": [], "limit": 0}), false),
        (json!({"runs": [], "limit": 1.5}), false),
        (json!({"runs": [], "colour": "blue"}), false),
        (json!([]), false),
    ];
    for (value, fits) in cases {
        let found = violation(&doc, &page, &value, "body");
        assert_eq!(found.is_none(), fits, "{value}: {found:?}");
    }
}
