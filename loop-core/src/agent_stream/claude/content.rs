//! The content blocks of a Claude Code message: its text, its tool calls and its tool results,
//! each as the transcript keeps it.

use serde_json::{Map, Value};

use crate::agent_stream::object_field;
use crate::agent_stream::str_field;
use crate::agent_stream::tool_lines::{one_line, result_summary};

/// `Bash(cargo test)`, `Edit(src/lib.rs)`, `Grep(fn parse_plan)`: each `tool_use` block of a
/// message, named with the one argument that says what it does.
pub(super) fn tool_calls_of(message: &Map<String, Value>) -> Vec<String> {
    let Some(Value::Array(blocks)) = message.get("content") else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter_map(Value::as_object)
        .filter(|block| str_field(block, "type") == Some("tool_use"))
        .map(|block| {
            let name = str_field(block, "name").unwrap_or("tool");
            let input = object_field(block, "input");
            let argument = [
                "command",
                "file_path",
                "path",
                "pattern",
                "url",
                "query",
                "description",
                "prompt",
            ]
            .iter()
            .find_map(|key| input.and_then(|input| str_field(input, key)));
            match argument {
                Some(argument) => format!("{name}({})", one_line(argument, 80)),
                None => name.to_owned(),
            }
        })
        .collect()
}

/// Each `tool_result` block of a (user) message, summed up on one line.
pub(super) fn tool_results_of(message: &Map<String, Value>) -> Vec<String> {
    let Some(Value::Array(blocks)) = message.get("content") else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter_map(Value::as_object)
        .filter(|block| str_field(block, "type") == Some("tool_result"))
        .map(|block| {
            let text = match block.get("content") {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter_map(Value::as_object)
                    .filter_map(|part| str_field(part, "text"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            };
            result_summary(&text, block.get("is_error") == Some(&Value::Bool(true)))
        })
        .collect()
}

/// A message's text blocks joined with newlines (`content` may also be a plain string).
pub(super) fn text_of(message: &Map<String, Value>) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(Value::as_object)
            .filter(|block| str_field(block, "type") == Some("text"))
            .filter_map(|block| str_field(block, "text"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}
