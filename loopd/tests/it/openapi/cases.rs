//! One request per operation of the document, with known and garbage path values and generated
//! bodies, and the check of its answer against the document.

use super::schema::*;
use super::*;

/// A request to send, described for the report.
pub(super) struct Case {
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) last_event_id: Option<HeaderValue>,
    pub(super) body: Option<Vec<u8>>,
    /// What the body is, for the report.
    pub(super) shape: String,
}

/// The values a path parameter takes: ids that exist, ids that do not, and garbage.
pub(super) fn path_value(name: &str, known: &Known, rng: &mut Rng) -> String {
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
pub(super) fn segment(text: &str) -> String {
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
pub(super) struct Known {
    pub(super) workspace: Value,
    pub(super) run: String,
    pub(super) steps: Vec<String>,
    pub(super) artifacts: Vec<String>,
}

pub(super) fn case(
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
pub(super) fn body(doc: &Value, schema: &Value, rng: &mut Rng) -> (Option<Vec<u8>>, String) {
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
pub(super) fn documented_response(operation: &Value, status: StatusCode) -> Option<&Value> {
    let responses = &operation["responses"];
    let range = format!("{}XX", status.as_u16() / 100);
    [status.as_str(), range.as_str(), "default"]
        .into_iter()
        .find_map(|key| responses.get(key))
}

/// What is wrong with an answer, if anything.
pub(super) fn check(doc: &Value, operation: &Value, response: Response) -> Option<String> {
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
