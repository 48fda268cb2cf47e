//! Values drawn from the document's schemas, and the check of a value against its schema: the
//! generator and the validator behind the API fuzz test.

use super::*;

/// Seeded: the same seed gives the same requests, so a failure can be replayed with
/// `LOOPD_API_FUZZ_SEED`.
pub(super) struct Rng(pub(super) fastrand::Rng);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0.u64(..)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub(super) fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub(super) fn uuid(&mut self) -> String {
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

    pub(super) fn text(&mut self) -> String {
        let pieces = [
            "a", "Z", "0", "-", "_", ".", "..", "/", " ", "%", "é", "✓", "🦀", "\u{0}", "'", "\"",
            "\\", "?", "#", "&", "=", "\n", "$(x)", "ﬀ",
        ];
        let len = *self.pick(&[0, 1, 3, 8, 20, 300]);
        (0..len).map(|_| *self.pick(&pieces)).collect()
    }
}

/// Strings that have broken servers before.
pub(super) const NASTY: &[&str] = &[
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
pub(super) fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
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
pub(super) fn parts<'a>(doc: &'a Value, schema: &'a Value) -> Vec<&'a Value> {
    let schema = resolve(doc, schema);
    match schema.get("allOf").and_then(Value::as_array) {
        Some(parts) => parts.iter().map(|part| resolve(doc, part)).collect(),
        None => vec![schema],
    }
}

pub(super) fn types(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// A value the schema accepts, with some values at its edges.
pub(super) fn generate(doc: &Value, schema: &Value, rng: &mut Rng, depth: usize) -> Value {
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
pub(super) fn wrong_type(doc: &Value, schema: &Value) -> Value {
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
pub(super) fn violation(doc: &Value, schema: &Value, value: &Value, at: &str) -> Option<String> {
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
