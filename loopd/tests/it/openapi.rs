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

/// Seeded: the same seed gives the same requests, so a failure can be replayed with
/// `LOOPD_API_FUZZ_SEED`.
struct Rng(fastrand::Rng);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.u64(..)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }

    fn text(&mut self) -> String {
        let pieces = [
            "a", "Z", "0", "-", "_", ".", "..", "/", " ", "%", "é", "✓", "🦀", "\u{0}", "'", "\"",
            "\\", "?", "#", "&", "=", "\n", "$(x)", "ﬀ",
        ];
        let len = *self.pick(&[0, 1, 3, 8, 20, 300]);
        (0..len).map(|_| *self.pick(&pieces)).collect()
    }
}

/// Strings that have broken servers before.
const NASTY: &[&str] = &[
    "",
    "..",
    "../../../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%00",
    "null",
    "-1",
    "18446744073709551616",
    "99999999999999999999999999",
    "1e309",
    "NaN",
    "é✓🦀",
    "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    "00000000-0000-0000-0000-000000000000",
    " RUNNING ",
    "json",
];

/// The schema at `#/components/schemas/Name`, through any chain of references.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let mut schema = schema;
    while let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
        schema = &doc["components"]["schemas"][name];
    }
    schema
}

/// A schema and, for one made of `allOf` parts (a flattened struct), each part, resolved.
fn parts<'a>(doc: &'a Value, schema: &'a Value) -> Vec<&'a Value> {
    let schema = resolve(doc, schema);
    match schema.get("allOf").and_then(Value::as_array) {
        Some(parts) => parts.iter().map(|part| resolve(doc, part)).collect(),
        None => vec![schema],
    }
}

fn types(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// A value the schema accepts, with some values at its edges.
fn generate(doc: &Value, schema: &Value, rng: &mut Rng, depth: usize) -> Value {
    let schema = resolve(doc, schema);
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        // A flattened struct: the fields of every part in one object.
        let mut merged = Map::new();
        for part in parts {
            if let Value::Object(fields) = generate(doc, part, rng, depth) {
                merged.extend(fields);
            }
        }
        return Value::Object(merged);
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        return rng.pick(options).clone();
    }
    if let Some(items) = schema.get("oneOf").and_then(Value::as_array) {
        return generate(doc, rng.pick(items), rng, depth);
    }
    let types = types(schema);
    let kind = if types.is_empty() {
        "any"
    } else if types.len() > 1 && rng.chance(4) {
        *rng.pick(&types)
    } else {
        types
            .iter()
            .find(|t| **t != "null")
            .copied()
            .unwrap_or("null")
    };
    match kind {
        "null" => Value::Null,
        "boolean" => json!(rng.chance(2)),
        "integer" => {
            let min = schema["minimum"].as_f64().unwrap_or(-1e6);
            let max = schema["maximum"]
                .as_f64()
                .unwrap_or(match schema["format"].as_str() {
                    Some("int32") => f64::from(u32::MAX),
                    _ => 9e18,
                });
            let edges = [min, max, 0.0, 1.0, 2.0, 100.0];
            let n = rng.pick(&edges).clamp(min, max);
            json!(n as i64)
        }
        "number" => {
            let min = schema["minimum"].as_f64().unwrap_or(-1e300);
            let n = rng.pick(&[0.0, 0.5, 1.0, 3.25, 1e9, 1e300, f64::MAX, -1.0]);
            json!(n.max(min))
        }
        "string" => match schema["format"].as_str() {
            Some("uuid") => json!(rng.uuid()),
            _ if rng.chance(3) => json!(rng.pick(NASTY)),
            _ => json!(rng.text()),
        },
        "array" if depth < 4 => {
            let n = rng.below(4);
            Value::Array(
                (0..n)
                    .map(|_| generate(doc, &schema["items"], rng, depth + 1))
                    .collect(),
            )
        }
        "object" if depth < 4 => {
            let mut object = Map::new();
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    if required.contains(&name.as_str()) || rng.chance(2) {
                        object.insert(name.clone(), generate(doc, property, rng, depth + 1));
                    }
                }
            }
            if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for _ in 0..rng.below(3) {
                    object.insert(rng.text(), generate(doc, extra, rng, depth + 1));
                }
            }
            Value::Object(object)
        }
        _ => json!(rng.text()),
    }
}

/// A value of the wrong type for the schema.
fn wrong_type(doc: &Value, schema: &Value) -> Value {
    let schema = resolve(doc, schema);
    let types = types(schema);
    if types.contains(&"string") || schema.get("enum").is_some() {
        json!({"not": "a string"})
    } else if types.contains(&"object") {
        json!([1, 2, 3])
    } else {
        json!("not of the type")
    }
}

/// Where `value` breaks `schema`, if it does (the subset of JSON Schema utoipa writes).
fn violation(doc: &Value, schema: &Value, value: &Value, at: &str) -> Option<String> {
    let schema = resolve(doc, schema);
    if let Some(items) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = items
            .iter()
            .filter(|item| violation(doc, item, value, at).is_none())
            .count();
        return (matching != 1).then(|| format!("{at}: {matching} of oneOf match {value}"));
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Some(format!("{at}: {value} is not one of {options:?}"));
    }
    let types = types(schema);
    if !types.is_empty() {
        let fits = types.iter().any(|t| match *t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => true,
        });
        if !fits {
            return Some(format!("{at}: {value} is not {types:?}"));
        }
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), value.as_f64())
        && n < min
    {
        return Some(format!("{at}: {n} < {min}"));
    }
    if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), value.as_f64())
        && n > max
    {
        return Some(format!("{at}: {n} > {max}"));
    }
    if let Value::Array(items) = value
        && let Some(item_schema) = schema.get("items")
    {
        for (i, item) in items.iter().enumerate() {
            if let Some(found) = violation(doc, item_schema, item, &format!("{at}[{i}]")) {
                return Some(found);
            }
        }
    }
    if let Value::Object(object) = value {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or("");
            if !object.contains_key(name) {
                return Some(format!("{at}: `{name}` is missing"));
            }
        }
        let properties = schema["properties"].as_object();
        for (name, field) in object {
            let at = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(property) => {
                    if let Some(found) = violation(doc, property, field, &at) {
                        return Some(found);
                    }
                }
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => return Some(format!("{at}: not in the schema")),
                    Some(extra @ Value::Object(_)) => {
                        if let Some(found) = violation(doc, extra, field, &at) {
                            return Some(found);
                        }
                    }
                    // Undocumented fields in an answer are drift too.
                    _ if properties.is_some() => {
                        return Some(format!("{at}: not in the schema"));
                    }
                    _ => {}
                },
            }
        }
    }
    None
}

/// A request to send, described for the report.
struct Case {
    method: Method,
    url: Url,
    last_event_id: Option<HeaderValue>,
    body: Option<Vec<u8>>,
    /// What the body is, for the report.
    shape: String,
}

/// The values a path parameter takes: ids that exist, ids that do not, and garbage.
fn path_value(name: &str, known: &Known, rng: &mut Rng) -> String {
    match (name, rng.below(5)) {
        ("id", 0 | 1) => known.run.clone(),
        ("name", 0 | 1) => rng.pick(&known.artifacts).clone(),
        ("name", 2) => rng
            .pick(&[
                "a/b/c.txt",
                "..%2F..%2Fspecs",
                "%2Fetc%2Fpasswd",
                "x/../../y",
            ])
            .to_string(),
        (_, 2) => rng.uuid(),
        (_, 3) => rng.pick(NASTY).to_string(),
        _ => rng.text(),
    }
}

/// Percent-encodes one path segment, except the `%XX` escapes it already has.
fn segment(text: &str) -> String {
    let mut out = String::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || escape {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        i += 1;
    }
    // An empty, `.` or `..` segment (even escaped) is resolved by the client, as by any: such
    // requests reach another route, or the fallback.
    out
}

/// What exists in the daemon: a finished run, its steps and files, its workspace.
struct Known {
    workspace: Value,
    run: String,
    steps: Vec<String>,
    artifacts: Vec<String>,
}

fn case(
    daemon: &Daemon,
    doc: &Value,
    method: &str,
    path: &str,
    known: &Known,
    rng: &mut Rng,
) -> Case {
    let operation = &doc["paths"][path][method.to_lowercase()];
    let parameters = operation["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut concrete = String::new();
    for part in path.split('/').skip(1) {
        concrete.push('/');
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => concrete.push_str(&segment(&path_value(name, known, rng))),
            None => concrete.push_str(part),
        }
    }
    let mut url = Url::parse(&daemon.url(&concrete)).expect("url");
    let mut last_event_id = None;
    for parameter in &parameters {
        let name = parameter["name"].as_str().unwrap_or("");
        let location = parameter["in"].as_str().unwrap_or("");
        if location == "path" || rng.chance(3) {
            continue;
        }
        let value = match rng.below(6) {
            0 | 1 => match generate(doc, &parameter["schema"], rng, 0) {
                Value::String(text) => text,
                other => other.to_string(),
            },
            2 if name == "step" => rng.pick(&known.steps).clone(),
            3 => rng.pick(NASTY).to_string(),
            4 => rng.text(),
            _ => rng
                .pick(&["abc", "-5", "1.5", "99999999999999999999999"])
                .to_string(),
        };
        match location {
            "query" => {
                url.query_pairs_mut().append_pair(name, &value);
            }
            "header" => {
                let bytes = if rng.chance(4) {
                    b"\xc3\xa9:\xff".to_vec()
                } else {
                    value.into_bytes()
                };
                last_event_id = HeaderValue::from_bytes(&bytes).ok();
            }
            other => panic!("a parameter in {other}"),
        }
    }
    let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
    let (body, shape) = match (method, path) {
        // Half the valid runs asked for are in a real workspace, so that they start: with the
        // stub agent and a harmless check, whatever else was generated.
        ("POST", "/runs") if rng.chance(4) => {
            let mut value = generate(doc, schema, rng, 0);
            value["workspace_root"] = known.workspace.clone();
            value["spec_path"] = json!("specs/feature.md");
            value["agent"] = json!("command");
            value["verify_cmds"] = json!(["true"]);
            value["config"]["agent_cmd"] = json!(stub("one_task.sh"));
            (
                Some(value.to_string().into_bytes()),
                "valid, in a workspace".to_owned(),
            )
        }
        _ if schema.is_null() => (None, String::new()),
        _ => body(doc, schema, rng),
    };
    Case {
        method: Method::from_bytes(method.as_bytes()).expect("method"),
        url,
        last_event_id,
        body,
        shape,
    }
}

/// A body from the schema, or one of its mutations.
fn body(doc: &Value, schema: &Value, rng: &mut Rng) -> (Option<Vec<u8>>, String) {
    let valid = generate(doc, schema, rng, 0);
    let properties: Vec<(String, Value)> = parts(doc, schema)
        .iter()
        .filter_map(|part| part["properties"].as_object())
        .flat_map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())))
        .collect();
    let text = |value: &Value| Some(value.to_string().into_bytes());
    match rng.below(13) {
        0..=3 => (text(&valid), "valid".to_owned()),
        4 if !properties.is_empty() => {
            let (name, property) = rng.pick(&properties).clone();
            let mut value = valid;
            value[&name] = wrong_type(doc, &property);
            (text(&value), format!("wrong type for {name}"))
        }
        5 => {
            let mut value = valid;
            let required: Value = parts(doc, schema)
                .iter()
                .flat_map(|part| part["required"].as_array().cloned().unwrap_or_default())
                .collect();
            if let (Some(object), Some(name)) = (
                value.as_object_mut(),
                required.as_array().and_then(|r| r.first()),
            ) {
                object.remove(name.as_str().unwrap_or(""));
            }
            (text(&value), "a required field missing".to_owned())
        }
        6 => {
            let mut value = valid;
            if let Some(object) = value.as_object_mut() {
                object.insert("colour".to_owned(), json!("blue"));
            }
            (text(&value), "an unknown field".to_owned())
        }
        7 => {
            let depth = 10_000;
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let shaped = match properties.first() {
                Some((name, _)) => format!("{{\"{name}\": {nested}}}"),
                None => nested,
            };
            (Some(shaped.into_bytes()), "deeply nested".to_owned())
        }
        8 => (
            rng.pick(&[None, Some(Vec::new()), Some(b"  \n".to_vec())])
                .clone(),
            "empty".to_owned(),
        ),
        9 => (
            Some(
                rng.pick(&[
                    b"{not json".to_vec(),
                    b"\xff\xfe\x00garbage".to_vec(),
                    b"null".to_vec(),
                    b"[]".to_vec(),
                    b"42".to_vec(),
                    b"\"text\"".to_vec(),
                    b"{\"a\":1e400}".to_vec(),
                ])
                .clone(),
            ),
            "not an object".to_owned(),
        ),
        10 => {
            // Just under the limit: read, then refused or answered on its merits.
            let mut value = valid;
            if let Some((name, _)) = properties
                .iter()
                .find(|(_, p)| types(resolve(doc, p)).contains(&"string"))
            {
                value[name] = json!("x".repeat(1024 * 1024 - 4096));
            }
            (text(&value), "about 1 MiB".to_owned())
        }
        11 => (Some(vec![b' '; 1024 * 1024 + 1]), "over 1 MiB".to_owned()),
        _ => {
            let mut value = valid;
            if let Some(object) = value.as_object_mut() {
                for (name, property) in &properties {
                    let numeric = types(resolve(doc, property))
                        .iter()
                        .any(|t| *t == "integer" || *t == "number");
                    if numeric {
                        let huge = [
                            json!(u64::MAX),
                            json!(-1),
                            json!(1e300),
                            json!(f64::MAX),
                            json!(i64::MIN),
                        ];
                        object.insert(name.clone(), rng.pick(&huge).clone());
                    }
                }
            }
            (text(&value), "extreme numbers".to_owned())
        }
    }
}

/// The documented answer for a status: its own entry, else its range (`4XX`), else `default`.
fn documented_response(operation: &Value, status: StatusCode) -> Option<&Value> {
    let responses = &operation["responses"];
    let range = format!("{}XX", status.as_u16() / 100);
    [status.as_str(), range.as_str(), "default"]
        .into_iter()
        .find_map(|key| responses.get(key))
}

/// What is wrong with an answer, if anything.
fn check(doc: &Value, operation: &Value, response: Response) -> Option<String> {
    let status = response.status();
    if status.is_server_error() {
        let body = response.text().unwrap_or_default();
        return Some(format!("answered {status}: {body}"));
    }
    let kind = content_type(&response);
    let Some(documented) = documented_response(operation, status) else {
        return Some(format!("answered {status}, which is not documented"));
    };
    if kind == "text/event-stream" {
        // A stream is not read: a few may never end.
        return documented["content"]
            .get("text/event-stream")
            .is_none()
            .then(|| format!("answered {status} with a stream, documented as not one"));
    }
    let text = response.text().unwrap_or_default();
    if !status.is_success() {
        let body: Value = match serde_json::from_str(&text) {
            Ok(body) if kind == "application/json" => body,
            _ => {
                return Some(format!(
                    "answered {status} with {kind:?}, not JSON: {text:.200}"
                ));
            }
        };
        let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
        return violation(doc, &error_body, &body, "error").map(|v| format!("{status}: {v}"));
    }
    let Some(content) = documented["content"].get(&kind) else {
        return Some(format!("answered {status} with {kind:?}, not documented"));
    };
    match content.get("schema") {
        Some(schema) if kind == "application/json" => match serde_json::from_str(&text) {
            Ok(body) => violation(doc, schema, &body, "body").map(|v| format!("{status}: {v}")),
            Err(error) => Some(format!("{status}: not JSON ({error}): {text:.200}")),
        },
        _ => None,
    }
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
    let run = created["run"]["id"].as_str().expect("id").to_owned();
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
