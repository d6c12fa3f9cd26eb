//! A stand-in for a workflow whose structure is wrong, so the checks that need a
//! whole workflow (references, templates, providers, cycles) still run and every
//! problem is reported in one pass, not the structural ones first and the rest
//! only after they are fixed.
//!
//! A misspelt field is read as the field it is closest to (`promt` as `prompt`);
//! any other value the schema rejects is taken out; a required field that is
//! missing or taken out, and an entry of `inputs`, `providers` or `agents` that
//! is not a mapping, get a neutral stand-in that no later check complains about
//! (an empty prompt, a `mock/` model). So one mistake is reported once, not again
//! as what follows from it. When the document cannot be mended that way
//! (the agents themselves are not a mapping, say), there is no stand-in and only
//! the structural problems are reported.

use jsonschema::error::ValidationErrorKind;
use serde_json::{Value as Json, json};

use super::schema;
use crate::suggest;

/// How many rounds of mending to try: taking a value out can reveal a missing one.
const ROUNDS: usize = 4;

/// The document with every rejected value taken out or stood in for, if it can be.
pub fn stand_in(document: &Json) -> Option<Json> {
    let mut fixed = document.clone();
    for _ in 0..ROUNDS {
        let changes: Vec<Fix> = schema::validator()
            .iter_errors(&fixed)
            .filter(|e| !super::load::in_tool_entry(e.instance_path().as_str()))
            .flat_map(|e| {
                fixes_for(
                    e.instance_path().as_str(),
                    e.schema_path().as_str(),
                    e.kind(),
                )
            })
            .collect();
        if changes.is_empty() {
            return Some(fixed);
        }
        for fix in changes {
            apply(&mut fixed, fix)?;
        }
    }
    None
}

/// One change to the document.
enum Fix {
    /// Take the value at this pointer out.
    Remove(String),
    /// Put a stand-in for a required field under this parent.
    Require(String, String),
    /// Read a misspelt field under this parent as the field it is closest to.
    Rename(String, String, String),
}

fn fixes_for(pointer: &str, schema_path: &str, kind: &ValidationErrorKind) -> Vec<Fix> {
    match kind {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let parent = schema_path.rsplit_once('/').map_or("", |(p, _)| p);
            let fields: Vec<String> = schema::schema_at(parent)
                .and_then(|s| s.get("properties"))
                .and_then(Json::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            unexpected
                .iter()
                .map(
                    |name| match suggest::closest(name, fields.iter().map(String::as_str)) {
                        Some(field) => {
                            Fix::Rename(pointer.to_string(), name.clone(), field.to_string())
                        }
                        None => Fix::Remove(format!("{pointer}/{}", super::tree::escape(name))),
                    },
                )
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            vec![Fix::Require(
                pointer.to_string(),
                property.as_str().unwrap_or_default().to_string(),
            )]
        }
        _ => vec![Fix::Remove(pointer.to_string())],
    }
}

/// A value for a required field that no later check finds fault with.
fn neutral(field: &str) -> Option<Json> {
    Some(match field {
        "version" => json!(1),
        "model" => json!("mock/stand-in"),
        "prompt" => json!(""),
        "max_usd" | "input" | "output" => json!(0.0),
        _ => return None,
    })
}

/// A stand-in for an entry of a top-level mapping that is not itself a mapping.
fn neutral_entry(section: &str) -> Option<Json> {
    match section {
        "/inputs" | "/providers" | "/agents" => Some(json!({})),
        "/outputs" => Some(json!("")),
        _ => None,
    }
}

fn apply(document: &mut Json, fix: Fix) -> Option<()> {
    match fix {
        Fix::Rename(parent, from, to) => {
            let map = document.pointer_mut(&parent)?.as_object_mut()?;
            let value = map.remove(&from)?;
            // A field given twice (`promt` and `prompt`): keep the correct one.
            map.entry(to).or_insert(value);
        }
        Fix::Require(parent, field) => {
            document
                .pointer_mut(&parent)?
                .as_object_mut()?
                .insert(field.clone(), neutral(&field)?);
        }
        Fix::Remove(pointer) => {
            let (parent, last) = pointer.rsplit_once('/')?;
            let name = last.replace("~1", "/").replace("~0", "~");
            let container = document.pointer_mut(parent)?;
            match container {
                Json::Object(map) => {
                    map.remove(&name);
                    if let Some(value) = neutral_entry(parent).or_else(|| neutral(&name)) {
                        map.insert(name, value);
                    }
                }
                // A bad list item: the list goes (a list field is always optional).
                Json::Array(_) => return apply(document, Fix::Remove(parent.to_string())),
                _ => return None,
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_out_what_is_wrong_and_stands_in_for_what_is_required() {
        let doc = json!({
            "version": 2,
            "inputs": {"topic": "a string, not a mapping"},
            "agents": {
                "a": {"model": "gpt4", "prompt": "hi", "temperature": "hot", "max_token": 5, "bogus": 1},
                "b": {"prompt": "{{agents.a.output}}", "needs": [3]}
            }
        });
        let fixed = stand_in(&doc).expect("mendable");
        assert_eq!(fixed["version"], 1);
        assert_eq!(fixed["inputs"]["topic"], json!({}));
        assert_eq!(
            fixed["agents"]["a"],
            json!({"model": "mock/stand-in", "prompt": "hi", "max_tokens": 5})
        );
        assert_eq!(
            fixed["agents"]["b"],
            json!({"model": "mock/stand-in", "prompt": "{{agents.a.output}}"})
        );
    }

    #[test]
    fn gives_up_when_the_agents_are_not_a_mapping() {
        assert_eq!(stand_in(&json!({"version": 1, "agents": ["a", "b"]})), None);
    }
}
